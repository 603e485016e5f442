"""What a run on a precision takes from the artifact: its thresholds (int8 graphs: the ones recalibrated on them), and
for precision "auto" the choice `runtime/precision_choice.choose_precision` recorded in the manifest
(`quantization.measured[backend]`), fp32 where none is recorded."""
from __future__ import annotations

from typing import List, Tuple

from edgebranchy.vocab import PRECISIONS, RECALIBRATED

INT8 = RECALIBRATED[0]
FP32 = PRECISIONS[0]


def auto_precision(artifact, backend: str) -> Tuple[str, str]:
    """(precision, why) for precision "auto" on `backend`: the recorded choice, fp32 where none is recorded."""
    q = artifact.manifest.get("quantization")
    if not q:
        return FP32, "auto: the artifact has no int8 graphs: fp32"
    rec = (q.get("measured") or {}).get(backend)
    if not isinstance(rec, dict) or rec.get("choice") not in (FP32, INT8):
        return FP32, f"auto: no measurement of the int8 graphs on {backend}: fp32"
    return rec["choice"], (f"auto: the artifact records {rec['choice']} faster on {backend} (fp32 "
                           f"{rec['fp32_us']:.1f} us, int8 {rec['int8_us']:.1f} us per sample)")


def thresholds_for(art, precision: str, backend: str) -> Tuple[List[float], str]:
    """The thresholds a run of `precision` graphs on `backend` uses, and where they come from: the artifact's
    (`exits`) for fp32 and fp16; for a precision whose graphs hold their own quantization (int8), the device
    calibration recorded on those graphs (this backend's, else ONNX Runtime's), the fp32 ones only where none is."""
    from edgebranchy.artifact.manifest import MANIFEST
    from edgebranchy.util.checks import validate_thresholds

    if precision not in RECALIBRATED:
        return art.thresholds, "the artifact's thresholds"
    recs = (art.manifest.get("device_calibration") or {}).get("records") or {}
    for key in dict.fromkeys((f"{backend}/{precision}", f"onnxruntime/{precision}")):
        rec = recs.get(key)
        if isinstance(rec, dict):
            where = f"{art.root / MANIFEST}: device_calibration {key} thresholds"
            return (validate_thresholds(rec.get("thresholds"), art.num_exits - 1, where=where),
                    f"recalibrated on the {precision} graphs ({key})")
    return art.thresholds, (f"the fp32 thresholds: not recalibrated on the {precision} graphs (run `edgebranchy "
                            f"calibrate ARTIFACT --in-place --precision {precision}`)")
