"""One ONNX graph with the exit decisions inside: segment 0, then `If(entropy < T0)`, later segments in the else-branch.

Built from an artifact's exported per-segment graphs with the onnx helper API
(no torch). The graph is for batch 1 (ONNX `If` takes one boolean; a batch's
samples would all have to leave together, so batches keep the per-segment path
with compaction). Inputs: `x` [1, C, H, W]; outputs: `label` [1] (ArgMax in the
graph), `logits` [1, C], `entropy` [1] and `exit` [1] (int64).

The rule is the runner's, bit for bit: a side exit answers when its entropy is
finite and strictly below the threshold: `Greater(e, -FLT_MAX)` and `Less(e, T)`
are both false for NaN, the first rejects -inf and the second +inf. (Not `IsInf`:
TensorRT 8.5's ONNX parser has no importer for it, onnx-tensorrt release/8.5-GA
operators.md; Greater, Less and And it has.) Thresholds are float32 initializers named `threshold_k`,
each the smallest float32 >= the float64 threshold, so a float32 entropy
compares exactly as the runner's float64 comparison does; ONNX Runtime can
replace them at session creation (`SessionOptions.add_initializer`) without a
re-export. The other form, thresholds as graph inputs, is built with
`threshold_mode="input"` (benchmarks/runner_bench.py measures both).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import float32_threshold

SINGLE_FILE = "single.onnx"
#: the float32 scalar the finiteness test compares with: the lowest finite float32
LOWEST = "lowest_float32"
OUTPUTS = ("label", "logits", "entropy", "exit")
THRESHOLD_MODES = ("initializer", "input")


def threshold_name(k: int) -> str:
    """Name of exit k's threshold (an initializer, or a graph input) in the single graph."""
    return f"threshold_{k}"


def _renamed_segment(model, k: int, inputs: dict, out_names: dict | None = None):
    """Nodes and initializers of segment k with every name prefixed `s{k}/`, its inputs read from the names
    `inputs` maps them to ({"x": "x"}; {"x.0": "s0/features.0", ...}), and graph outputs renamed by `out_names`
    (e.g. {"logits": "e0/logits"})."""
    import onnx

    g = model.graph
    got = [i.name for i in g.input]
    if sorted(got) != sorted(inputs) or g.sparse_initializer:
        raise EdgeBranchyError(f"segment {k}: expected the inputs {sorted(inputs)} and no sparse initializers, "
                               f"got {got}")

    def rn(name: str) -> str:
        if not name:
            return name  # an omitted optional input
        if name in inputs:
            return inputs[name]
        return (out_names or {}).get(name) or f"s{k}/{name}"

    nodes = []
    for n in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
            raise EdgeBranchyError(f"segment {k}: node {n.name or n.op_type} has a subgraph; not supported")
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = f"s{k}/{n.name or n.op_type}"
        m.input[:] = [rn(i) for i in n.input]
        m.output[:] = [rn(o) for o in n.output]
        nodes.append(m)
    inits = []
    for t in g.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(t)
        c.name = rn(t.name)
        inits.append(c)
    outs = {o.name: o for o in g.output}
    for want in ("logits", "entropy"):
        if want not in outs:
            raise EdgeBranchyError(f"segment {k}: no output named {want!r} (outputs: {', '.join(outs)})")
    return nodes, inits, outs


def build_single_graph(segments: Sequence, thresholds: Sequence[float], classes: int,
                       threshold_mode: str = "initializer", guard: bool = True):
    """The single early-exit ModelProto from the K segment ModelProtos (segment k feeds k+1's `x`).

    `guard=False` drops the finiteness check (two nodes): then an entropy of -inf would exit, which the
    rule forbids; kept only to measure what the check costs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    K = len(segments)
    opsets = _check_segments(segments, thresholds, threshold_mode)
    x_info = segments[0].graph.input[0]
    x_shape = [d.dim_value if d.HasField("dim_value") else 0 for d in x_info.type.tensor_type.shape.dim]
    if len(x_shape) < 2 or 0 in x_shape[1:]:
        raise EdgeBranchyError(f"segment 0 input has shape {x_shape}; expected N x C x H x W with fixed C, H, W")
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    chain = _Chain(segments, classes, guard)
    nodes, inits = chain.level(0, {"x": "x"}, "")
    nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], name="label", axis=1, keepdims=0))
    ts = [float32_threshold(t) for t in thresholds]
    inputs = [helper.make_tensor_value_info("x", x_info.type.tensor_type.elem_type, [1] + x_shape[1:])]
    if guard and K > 1:
        inits = [helper.make_tensor(LOWEST, f32, [], [float(-np.finfo(np.float32).max)])] + inits
    if threshold_mode == "initializer":
        inits = [helper.make_tensor(threshold_name(k), f32, [], [t]) for k, t in enumerate(ts)] + inits
    else:
        inputs += [helper.make_tensor_value_info(threshold_name(k), f32, []) for k in range(K - 1)]
    outputs = [helper.make_tensor_value_info("label", i64, [1])] + chain.out_infos("")
    graph = helper.make_graph(nodes, "edgebranchy_single", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("" if d == "ai.onnx" else d, v)
                                                    for d, v in opsets.items()],
                              producer_name="edgebranchy", ir_version=segments[0].ir_version)
    helper.set_model_props(model, {"edgebranchy.single_graph": json.dumps(
        {"batch": 1, "threshold_mode": threshold_mode, "thresholds": [float(t) for t in thresholds]})})
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise EdgeBranchyError(f"the single graph fails onnx.checker: {str(err).splitlines()[0][:300]}") from None
    return model


def _check_segments(segments: Sequence, thresholds: Sequence[float], threshold_mode: str) -> dict:
    """The segments' common opsets, after checking there is one threshold per side exit and a known mode."""
    K = len(segments)
    if K < 1:
        raise EdgeBranchyError("the single graph needs at least one segment")
    if len(thresholds) != K - 1:
        raise EdgeBranchyError(f"{K} segments need {K - 1} thresholds, got {len(thresholds)}")
    if threshold_mode not in THRESHOLD_MODES:
        raise EdgeBranchyError(f"threshold_mode must be one of {', '.join(THRESHOLD_MODES)}")
    opsets = {(o.domain or "ai.onnx"): o.version for o in segments[0].opset_import}
    for k, m in enumerate(segments[1:], 1):
        if {(o.domain or "ai.onnx"): o.version for o in m.opset_import} != opsets:
            raise EdgeBranchyError(f"segment {k} uses other opsets than segment 0; re-export the artifact")
    return opsets


class _Chain:
    """The nested levels of the single graph: segment k, then `If` (leave at exit k) with the rest in the else."""

    def __init__(self, segments: Sequence, classes: int, guard: bool):
        self.segments, self.classes, self.guard = segments, classes, guard

    def out_infos(self, prefix: str) -> list:
        from onnx import TensorProto, helper

        return [helper.make_tensor_value_info(f"{prefix}logits", TensorProto.FLOAT, [1, self.classes]),
                helper.make_tensor_value_info(f"{prefix}entropy", TensorProto.FLOAT, [1]),
                helper.make_tensor_value_info(f"{prefix}exit", TensorProto.INT64, [1])]

    @staticmethod
    def exit_const(k: int, name: str):
        from onnx import TensorProto, helper

        return helper.make_node("Constant", [], [name], name=f"exit{k}/const",
                                value=helper.make_tensor(f"exit{k}/value", TensorProto.INT64, [1], [k]))

    def level(self, k: int, inputs: dict, prefix: str):
        """Nodes + initializers that compute segment k onwards (its inputs read from the names `inputs` maps
        them to) and leave `{prefix}logits/entropy/exit`."""
        from onnx import TensorProto, helper

        last = k == len(self.segments) - 1
        direct = {n: f"{prefix}{n}" for n in ("logits", "entropy")} if last else None
        nodes, inits, outs = _renamed_segment(self.segments[k], k, inputs, direct)
        for name in ("logits", "entropy"):
            if outs[name].type.tensor_type.elem_type != TensorProto.FLOAT:
                raise EdgeBranchyError(f"segment {k}: {name} is not float32")
        if last:
            return nodes + [self.exit_const(k, f"{prefix}exit")], inits
        passed = {n: f"s{k}/{n}" for n in outs if n.startswith("features")}
        wanted = [i.name for i in self.segments[k + 1].graph.input]
        if not passed or len(passed) != len(wanted):
            raise EdgeBranchyError(f"segment {k} passes on {sorted(passed) or 'no features'}; segment {k + 1} "
                                   f"takes {wanted}")
        e = f"s{k}/entropy"
        nodes += self.decision(k, e)
        then_nodes = [helper.make_node("Identity", [f"s{k}/logits"], [f"t{k}/logits"], name=f"t{k}/logits"),
                      helper.make_node("Identity", [e], [f"t{k}/entropy"], name=f"t{k}/entropy"),
                      self.exit_const(k, f"t{k}/exit")]
        then_g = helper.make_graph(then_nodes, f"exit{k}", [], self.out_infos(f"t{k}/"))
        # x <- features; x.i <- features.i (segment_io_names: the same order on both sides of a split)
        feed = {x: passed["features" + x[1:]] for x in wanted}
        else_nodes, else_inits = self.level(k + 1, feed, f"e{k}/")
        else_g = helper.make_graph(else_nodes, f"after_exit{k}", [], self.out_infos(f"e{k}/"), else_inits)
        nodes.append(helper.make_node("If", [f"d{k}/leave"], [f"{prefix}logits", f"{prefix}entropy", f"{prefix}exit"],
                                      name=f"if{k}", then_branch=then_g, else_branch=else_g))
        return nodes, inits

    def decision(self, k: int, e: str) -> list:
        """The nodes that compute `d{k}/leave`: exit k's entropy finite and below its threshold."""
        from onnx import helper

        # `If` takes a one-element boolean; TensorRT's IIfConditional wants it 0-D, so the [1] entropy is
        # squeezed (no axes: every size-1 dimension, valid in every opset) before the test
        nodes = [helper.make_node("Squeeze", [e], [f"d{k}/e"], name=f"d{k}/squeeze")]
        e0 = f"d{k}/e"
        if self.guard:  # finite and below: Greater(e, lowest float32) is false for -inf and NaN, Less for +inf
            return nodes + [
                helper.make_node("Less", [e0, threshold_name(k)], [f"d{k}/below"], name=f"d{k}/less"),
                helper.make_node("Greater", [e0, LOWEST], [f"d{k}/finite"], name=f"d{k}/greater"),
                helper.make_node("And", [f"d{k}/below", f"d{k}/finite"], [f"d{k}/leave"], name=f"d{k}/and")]
        return nodes + [helper.make_node("Less", [e0, threshold_name(k)], [f"d{k}/leave"], name=f"d{k}/less")]


def single_graph_bytes(artifact, thresholds: Sequence[float] | None = None,
                       threshold_mode: str = "initializer", guard: bool = True) -> bytes:
    """Serialized single graph for a loaded artifact (fp32 segments; the artifact's thresholds by default)."""
    import onnx

    segs = [onnx.load(str(artifact.segment_file(k))) for k in range(artifact.num_exits)]
    ts = artifact.thresholds if thresholds is None else list(thresholds)
    return build_single_graph(segs, ts, len(artifact.classes), threshold_mode, guard).SerializeToString()


def single_graph_entry(thresholds: Sequence[float], rel: str = SINGLE_FILE, threshold_mode: str = "initializer",
                       check: dict | None = None) -> dict:
    """The manifest entry that describes the single graph (the file's hash goes in 'files' beside it)."""
    return {"file": rel, "batch": 1, "threshold_mode": threshold_mode,
            "thresholds": [threshold_name(k) for k in range(len(thresholds))],
            "thresholds_at_export": [float(t) for t in thresholds], "outputs": list(OUTPUTS),
            "rule": "exit k when isfinite(entropy_k) and entropy_k < threshold_k (float32, rounded up)",
            "check": check}


def add_single_graph(artifact_dir: str | Path, threshold_mode: str = "initializer") -> dict:
    """Write `single.onnx` into an existing artifact and list it in the manifest (with its sha256)."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.util.files import atomic_write_bytes

    art = Artifact.load(artifact_dir)
    data = single_graph_bytes(art, threshold_mode=threshold_mode)
    atomic_write_bytes(art.root / SINGLE_FILE, data)
    entry = single_graph_entry(art.thresholds, SINGLE_FILE, threshold_mode)
    art.add_files([SINGLE_FILE], updates={"single_graph": entry})
    return entry


def check_single_graph(data: bytes, segments: Sequence[bytes], thresholds: Sequence[float],
                       samples) -> dict:
    """Run the single graph and the per-segment chain (host rule) on each sample with ONNX Runtime;
    EdgeBranchyError unless exits and labels agree exactly. Returns what was compared."""
    import numpy as np
    import onnxruntime as ort

    from edgebranchy.exits.rule import confident_one

    so = ort.SessionOptions()
    so.log_severity_level = 3
    one = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    segs = [ort.InferenceSession(s, so, providers=["CPUExecutionProvider"]) for s in segments]
    names = [[o.name for o in s.get_outputs()] for s in segs]
    ins = [[i.name for i in s.get_inputs()] for s in segs]
    worst = 0.0
    exits = []
    for i in range(len(samples)):
        feed = {"x": np.ascontiguousarray(samples[i:i + 1], dtype=np.float32)}
        for k, s in enumerate(segs):
            out = dict(zip(names[k], s.run(None, feed)))
            e = float(out["entropy"][0])
            if k == len(segs) - 1 or confident_one(e, float(thresholds[k])):
                break
            feed = {x: out["features" + x[1:]] for x in ins[k + 1]}  # x <- features, x.i <- features.i
        label, logits, ent, ex = one.run(None, {"x": np.ascontiguousarray(samples[i:i + 1], dtype=np.float32)})
        if int(ex[0]) != k or int(label[0]) != int(out["logits"].argmax()):
            raise EdgeBranchyError(f"single graph: sample {i} leaves at exit {int(ex[0])} with label {int(label[0])}, "
                                   f"the per-segment chain at exit {k} with label {int(out['logits'].argmax())}")
        worst = max(worst, float(np.max(np.abs(logits - out["logits"]))))
        exits.append(k)
    return {"samples": len(samples), "max_abs_diff_logits": worst,
            "exit_counts": [exits.count(k) for k in range(len(segs))]}
