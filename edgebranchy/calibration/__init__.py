"""Calibration: one use case, `calibrate(source, target, costs) -> CalibrationRecord`, above `runtime/` and `train/`.

Two sources give every exit's logits on the recorded validation and test splits: a checkpoint (`checkpoint_source.py`,
torch collects them) and an artifact run on a backend (`artifact_source.py`, no torch: the deployed graphs' own
entropies). The same target (`target.py`), costs (`costs.py`), exact search (`exits/`, numpy) and record
(`artifact/calibration.py`, checked when made) serve both; two stores keep the record: the checkpoint's config
and the artifact manifest's `device_calibration`. `calibrate_checkpoint` and `calibrate_artifact` do all of it.
Nothing here imports torch at import time.
"""
from edgebranchy.calibration.artifact_source import ArtifactSource, calibrate_artifact, store_in_manifest
from edgebranchy.calibration.checkpoint_source import CheckpointSource, calibrate_checkpoint, store_in_checkpoint
from edgebranchy.calibration.choose import Outputs, calibrate, choose
from edgebranchy.calibration.costs import MACS, Costs, resolve_costs
from edgebranchy.calibration.target import Target, make_target

__all__ = ["ArtifactSource", "CheckpointSource", "Costs", "MACS", "Outputs", "Target", "calibrate",
           "calibrate_artifact", "calibrate_checkpoint", "choose", "make_target", "resolve_costs",
           "store_in_checkpoint", "store_in_manifest"]
