"""Re-exports of `edgebranchy.artifact.manifest`: kept for export/tensorrt.py until the tensorrt package lands."""
from edgebranchy.artifact.manifest import MANIFEST, SCHEMA, SCHEMA_VERSION, Artifact, safe_relpath  # noqa: F401
