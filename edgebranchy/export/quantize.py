"""INT8 segment graphs with explicit quantization (QuantizeLinear/DequantizeLinear pairs), made by ONNX Runtime's
quantization tools from the exported FP32 graphs (needs onnx and onnxruntime; no torch).

Per graph: `quant_pre_process` (shape inference, then ONNX Runtime's graph optimisation, which folds BatchNorm into
the convolutions: without it Q/DQ pairs sit around every BatchNorm and INT8 barely pays), then `quantize_static` in
the QDQ format, weights int8 symmetric per output channel, activation ranges (MinMax) from a calibration pass over N
validation samples. The exit head's softmax and entropy stay FP32: every node downstream of `logits` is excluded,
and `logits` itself is not quantized (an int8 logit vector can tie two classes), so the entropy is computed in FP32
from the logits the graph returns.

Two flavours of the same quantization (same tool, samples and ranges), because the two runtimes take different
Q/DQ forms:

- `onnxruntime`: activations uint8 with a zero point (ONNX Runtime's x86 fast path is u8 activations x s8 weights;
  with int8 activations its CPU provider fuses only the convolutions not followed by a ReLU into QLinearConv, and
  ResNet-18 at 3x64x64 ran 1.29x faster than FP32 instead of 4.65x: benchmarks/results/int8_table.md).
- `tensorrt`: activations int8 symmetric (TensorRT takes only zero-valued zero points: NvInfer.h 8.6.1 lines
  6026-6028 and 6112-6114, 10.3.0 lines 5329-5331) and FP32 biases (its DequantizeLinear takes int8, not the int32
  of a quantized bias: NvInfer.h 8.6.1 lines 6104 and 6121-6122).

Segment k > 0 is calibrated on the features the FP32 chain passes on (run here with ONNX Runtime), as the
artifact's FP32 graphs compute them.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from edgebranchy.errors import EdgeBranchyError

METHOD = "onnxruntime.quantization.quantize_static"
#: batches of the calibration pass (MinMax ranges do not depend on how the samples are batched)
CALIB_BATCH = 32


def samples_sha256(x: np.ndarray) -> str:
    """The sha256 of the calibration samples as the quantizer saw them (float32, C order, shape included)."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def head_nodes(model, logits: str = "logits") -> List[str]:
    """Names of every node downstream of the `logits` tensor (the exit head's softmax and entropy)."""
    seen, names = {logits}, []
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if any(i in seen for i in node.input):
            names.append(node.name)
            seen.update(node.output)
    return names


def _producer(model, tensor: str):
    return next((n for n in model.graph.node if tensor in n.output), None)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[Dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._feeds)


def feeds(names: Sequence[str], tensors: Sequence[np.ndarray]) -> List[Dict[str, np.ndarray]]:
    """The calibration pass's feeds: `tensors` (one array per input name, same batch) in batches."""
    n = len(tensors[0])
    return [{k: np.ascontiguousarray(t[i:i + CALIB_BATCH]) for k, t in zip(names, tensors)}
            for i in range(0, n, CALIB_BATCH)]


#: the quantizer's settings per flavour (see above): activation type name, symmetric activations, quantized bias
FLAVOURS = {"onnxruntime": ("QUInt8", False, True), "tensorrt": ("QInt8", True, False)}


def quantize_graph(data: bytes, calib: Sequence[Dict[str, np.ndarray]], what: str,
                   flavour: str = "onnxruntime") -> bytes:
    """The INT8 Q/DQ graph of the FP32 graph `data` in `flavour`, activation ranges from the feeds `calib`."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="eb-int8-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(data)
        try:
            quant_pre_process(str(src), str(pre))
            model = onnx.load(str(pre))
            exclude = head_nodes(model)
            logits = _producer(model, "logits")
            act, symmetric, bias = FLAVOURS[flavour]
            extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": bias}
            if logits is not None:
                extra["OpTypesToExcludeOutputQuantization"] = [logits.op_type]
            quantize_static(str(pre), str(out), _Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=getattr(QuantType, act), weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                            extra_options=extra)
        except EdgeBranchyError:
            raise
        except Exception as e:  # noqa: BLE001 - the quantizer raises many types; one line names the graph
            raise EdgeBranchyError(f"{what}: INT8 quantization failed: {type(e).__name__}: "
                                   f"{str(e).splitlines()[0][:300] if str(e) else ''}") from None
        q = onnx.load(str(out))
    onnx.checker.check_model(q)
    if not any(n.op_type == "QuantizeLinear" for n in q.graph.node):
        raise EdgeBranchyError(f"{what}: the quantizer wrote no QuantizeLinear node (nothing was quantized)")
    return q.SerializeToString()


def method_record(n_samples: int, sha: str, split: str) -> dict:
    """What the manifest records about how the INT8 graphs were made."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ort_version = version("onnxruntime")
    except PackageNotFoundError:  # pragma: no cover - quantization ran, so it is installed
        ort_version = None
    return {"method": METHOD, "format": "QDQ", "pre_process": "quant_pre_process (shape inference, BatchNorm "
            "folded)", "weights": "int8 symmetric, per output channel",
            "activations": {"onnxruntime": "uint8 with a zero point, per tensor (int8_file)",
                            "tensorrt": "int8 symmetric, per tensor; biases FP32 (int8_tensorrt_file)"},
            "calibration": "MinMax", "samples": int(n_samples), "samples_sha256": sha, "samples_split": split,
            "fp32_kept": ["segment entropy (every node after logits)", "logits"], "onnxruntime": ort_version}


def agreement(got: List[np.ndarray], ref: List[np.ndarray]) -> dict:
    """How the INT8 graph's logits compare with the FP32 graph's on the same inputs: top-1 agreement and the
    largest logit difference relative to the FP32 logits' range."""
    g, r = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if not np.isfinite(g).all():
        raise EdgeBranchyError("INT8 graph: non-finite logits on the check samples (a broken scale?)")
    span = max(1e-12, float(r.max() - r.min()))
    return {"top1_agreement": float((g.argmax(1) == r.argmax(1)).mean()),
            "max_logit_diff_rel": float(np.abs(g - r).max() / span)}


def check_entropy(logits: np.ndarray, ent: np.ndarray, normalize: bool, temperature: float, what: str) -> float:
    """The INT8 graph's entropy must be the FP32 entropy of its own logits (the head is not quantized)."""
    from edgebranchy.exits.entropy import entropy

    want = entropy(np.asarray(logits, np.float32), normalize=normalize, temperature=temperature)
    diff = float(np.max(np.abs(np.asarray(ent, np.float64) - want))) if len(want) else 0.0
    if not diff <= 1e-4:
        raise EdgeBranchyError(f"{what}: the INT8 graph's entropy differs from the entropy of its own logits by "
                               f"{diff:.3g}: the exit head was quantized")
    return diff
