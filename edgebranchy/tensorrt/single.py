"""The single early-exit graph (ONNX `If`) on TensorRT, for the tensorrt backend.

Only TensorRT 10.0+ imports the graph (`compat.single_graph_support`: the 8.5/8.6 `If` importer loses branch
outputs, and 8.5 has no `IsInf` importer), so only engine sets built there have a `single` engine. The choice
is made here: TensorRT copies each `If` condition to the host inside enqueue (a synchronisation per exit, and
no CUDA-graph capture, NVIDIA/TensorRT#2836) and the thresholds are constants of the engine, so it is offered
only where built and with the thresholds in force, and the runner takes it at batch 1 only where `choose_form`
measured it faster than the segments (branch engines have cost more than either branch alone: #4402, #4059).

tensorrt is never imported here. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from edgebranchy.artifact.engines import rebuild_hint
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import float32_threshold

ENGINE = "single"
OUTPUTS = ("label", "logits", "entropy", "exit")


def float32s(ts: list) -> list:
    """Thresholds as the single graph holds them (float32, rounded up: exits.rule.float32_threshold)."""
    return [float32_threshold(float(t)) for t in ts]


def open_engine(backend: Any) -> Tuple[Optional[Any], bool, str]:
    """(the If engine's lanes or None, whether the backend offers the single graph, why / what it costs)."""
    info = backend.record.get("single_graph") or {}
    note = info.get("reason") or "no single-graph engine in this engine set (built before TensorRT 10.0 support)"
    if ENGINE not in backend._loaded.engines:
        return None, False, note
    art = backend.artifact
    eng = backend._engine(ENGINE, ["x"], {"x": art.input_shape, "label": (), "logits": (len(art.classes),),
                                          "entropy": (), "exit": ()})
    if float32s(info.get("thresholds") or []) != float32s(art.thresholds):
        return eng, False, (f"its engine holds the thresholds single.onnx was exported with, "
                            f"{info.get('thresholds')} (constants of an engine); the artifact's are {art.thresholds} "
                            "since: the segments answer; re-export the single graph, then "
                            f"{rebuild_hint(art.root)}")
    return eng, True, note


def check_thresholds(backend: Any, thresholds: list) -> None:
    """Refuse thresholds other than the ones the If engine was built with."""
    built = (backend.record.get("single_graph") or {}).get("thresholds") or []
    if backend._single is None or float32s(thresholds) != float32s(built):
        raise EdgeBranchyError(f"the tensorrt backend runs the single graph only with the thresholds its engine was "
                               f"built with ({backend.single_graph_note}); use form='segments'")


def run_engine(backend: Any, eng: Any, x: np.ndarray) -> list:
    """One batch-1 call of the If engine on lane 0: [label, logits, entropy, exit] on the host, one wait."""
    dtype = eng.io["x"][1]
    with backend._current():
        t = backend._upload(np.ascontiguousarray(x, dtype=dtype), dtype, backend._copy)
        backend._wait_for(t, 0)
        outs = {n: backend._new(eng.io[n][1], eng.io[n][2], 1, 0) for n in eng.outputs}
        eng.run(0, backend._streams[0], {"x": t.shape}, {"x": t.ptr, **{n: o.ptr for n, o in outs.items()}},
                "the single graph")
        back = backend._readback([outs[n] for n in OUTPUTS], 0)
        back.wait()
    return [back.read(i) for i in range(len(OUTPUTS))]
