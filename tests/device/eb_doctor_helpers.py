"""Helpers of the `doctor ARTIFACT` tests: a broken backend, a broken graph, and the outputs computed independently."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgebranchy.runtime.backends.base import Backend, Launch
from edgebranchy.runtime.backends.onnxruntime import OnnxRuntimeBackend


class FlippingBackend(OnnxRuntimeBackend):
    """ONNX Runtime whose last segment hands back its logits in reverse class order (the entropy, which does not
    depend on the order, stays right): every sample answering at the last exit gets another label."""

    name = "flipping"
    OPTIONS = tuple(replace(o, flag=None) for o in OnnxRuntimeBackend.OPTIONS)  # the CLI flags stay ONNX Runtime's

    def launch(self, k: int, x, lane: int = 0) -> Launch:
        got = super().launch(k, x, lane)
        if k == self.num_segments - 1:
            got.logits = np.ascontiguousarray(got.logits[:, ::-1])
        return got

    def step_one(self, k: int, x):
        return Backend.step_one(self, k, x)  # through launch (not the IOBinding path)


def perturb_graph(art_dir, rel: str, scale: float = 0.3, seed: int = 0) -> str:
    """Multiply the first weight tensor of graph `rel` by (1 + scale * noise) and record its new sha256 in the
    manifest, as someone replacing a graph would: the loader accepts it. Returns the initializer's name."""
    import onnx
    from onnx import numpy_helper

    from edgebranchy.artifact.manifest import Artifact

    art = Artifact.load(art_dir)
    path = art.root / rel
    model = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.ndim >= 2:
            noisy = (w.astype(np.float64) * (1 + scale * rng.standard_normal(w.shape))).astype(w.dtype)
            init.CopyFrom(numpy_helper.from_array(noisy, init.name))
            onnx.save(model, str(path))
            art.add_files([rel])
            return init.name
    raise AssertionError(f"{rel} has no weight tensor")


def chain(art_dir, x: np.ndarray, precision: str = "fp32"):
    """Every exit's logits and entropy of the artifact's graphs on ONNX Runtime (independently of the doctor)."""
    import onnxruntime as ort

    from edgebranchy.artifact.manifest import Artifact

    art = Artifact.load(art_dir)
    logits, ents, h = [], [], x
    for k in range(art.num_exits):
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(str(art.segment_file(k, precision)), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        out = dict(zip(names, sess.run(names, {"x": h})))
        logits.append(out["logits"].astype(np.float64))
        ents.append(out["entropy"].astype(np.float64))
        h = out.get("features")
    return logits, ents
