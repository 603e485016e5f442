"""The one exception type for user errors."""


class EdgeBranchyError(Exception):
    """A user-facing error: the CLI prints its message and exits with status 2."""
