"""What precision "auto" takes on a backend: the choice `runtime/precision_choice.choose_precision` recorded in the
manifest (`quantization.measured[backend]`), fp32 where none is recorded."""
from __future__ import annotations

from typing import Tuple

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
