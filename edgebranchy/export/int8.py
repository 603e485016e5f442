"""The INT8 half of `export --precision int8`: every segment graph and the baseline quantized (export/quantize.py),
each checked on the calibration samples against its FP32 graph, written beside the FP32 graphs."""
from __future__ import annotations

from typing import Callable, List

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.export.quantize import agreement, check_entropy, feeds, method_record, quantize_graph, samples_sha256

#: file name suffix, manifest keys of each flavour's graph and check (export/quantize.py FLAVOURS)
FILES = {"onnxruntime": "int8", "tensorrt": "int8.tensorrt"}
FILE_KEYS = {"onnxruntime": "int8_file", "tensorrt": "int8_tensorrt_file"}
CHECK_KEYS = {"onnxruntime": "int8_check", "tensorrt": "int8_tensorrt_check"}


def _run(data: bytes, names: List[str], inputs: List[str], tensors: List[np.ndarray]) -> List[np.ndarray]:
    """The graph's outputs `names` on `tensors`, batch by batch, concatenated."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    parts = [sess.run(names, f) for f in feeds(inputs, tensors)]
    return [np.concatenate([p[i] for p in parts]) for i in range(len(names))]


def write_int8(segs: List[dict], fp32_segments: List[bytes], base_entry: dict, fp32_baseline: bytes,
               x: np.ndarray, normalize: bool, temps: List[float], put, log: Callable[[str], None],
               split: str = "validation") -> dict:
    """Quantize every segment (calibrated on the features the FP32 chain passes on) and the baseline on the
    calibration samples `x`; add `int8_file` and `int8_check` to their manifest entries; return the method record."""
    if len(x) < 1:
        raise EdgeBranchyError("INT8 export needs calibration samples (`calibration_samples` >= 1)")
    chain = [np.ascontiguousarray(x, dtype=np.float32)]
    for k, (entry, data) in enumerate(zip(segs, fp32_segments)):
        what = f"segment {k} (int8)"
        names = entry["outputs"]
        ref = _run(data, names, entry["inputs"], chain)
        temp = float(temps[entry["model_exit"]])
        for flavour, suffix in FILES.items():
            q = quantize_graph(data, feeds(entry["inputs"], chain), f"{what}, {flavour}", flavour)
            got = dict(zip(names, _run(q, names, entry["inputs"], chain)))
            check = agreement(got["logits"], ref[names.index("logits")])
            check["entropy_diff"] = check_entropy(got["logits"], got["entropy"], normalize, temp, what)
            check["samples"] = len(x)
            rel = f"segments/seg{k}.{suffix}.onnx"
            put(rel, q)
            entry.update({FILE_KEYS[flavour]: rel, CHECK_KEYS[flavour]: check})
            log(f"segment {k} (int8, {flavour}): top-1 agreement with fp32 {check['top1_agreement']:.1%} on {len(x)} "
                f"calibration samples, max logit difference {check['max_logit_diff_rel']:.2g} of the logit range")
        chain = [ref[names.index(n)] for n in names if n.startswith("features")]
    ref = _run(fp32_baseline, ["logits"], ["x"], [x])
    for flavour, suffix in FILES.items():
        q = quantize_graph(fp32_baseline, feeds(["x"], [x]), f"baseline (int8, {flavour})", flavour)
        got = _run(q, ["logits"], ["x"], [x])
        check = {**agreement(got[0], ref[0]), "samples": len(x)}
        put(f"baseline.{suffix}.onnx", q)
        base_entry.update({FILE_KEYS[flavour]: f"baseline.{suffix}.onnx", CHECK_KEYS[flavour]: check})
        log(f"baseline (int8, {flavour}): top-1 agreement with fp32 {check['top1_agreement']:.1%}")
    return method_record(len(x), samples_sha256(x), split)
