"""The artifact directory and the records it keeps (engine sets, ...)."""
