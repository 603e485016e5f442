"""The single early-exit graph (ONNX If): valid, listed in the manifest, and the per-segment runner's answers."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.rule import float32_threshold
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.export.single_graph import add_single_graph, single_graph_bytes
from edgebranchy.runtime.runner import EarlyExitRunner


@pytest.fixture(scope="module")
def single_artifact(tiny_artifact):
    """`edgebranchy export` writes the single graph by default (read-only here)."""
    return tiny_artifact


@pytest.fixture(scope="module")
def segments_only(tiny_artifact, tmp_path_factory):
    """The same artifact as an older export without a single graph."""
    out = tmp_path_factory.mktemp("segonly") / "art"
    shutil.copytree(tiny_artifact, out)
    m = json.loads((out / "manifest.json").read_text())
    del m["files"][m.pop("single_graph")["file"]]
    (out / "single.onnx").unlink()
    (out / "manifest.json").write_text(json.dumps(m))
    return out


@pytest.fixture(scope="module")
def three_exit_artifact(tmp_path_factory):
    """B-AlexNet (3 exits) trained a few steps on the synthetic set, thresholds that split the samples."""
    from edgebranchy.export.onnx import export_checkpoint
    from edgebranchy.calibration import calibrate_checkpoint
    from edgebranchy.train.trainer import TrainConfig, Trainer

    d = tmp_path_factory.mktemp("alex")
    ck = d / "alex.pt"
    Trainer(TrainConfig(model="b-alexnet", dataset="synthetic", epochs=1, baseline_epochs=1, max_steps=8,
                        batch_size=32, seed=0), ck, progress=False).run()
    calibrate_checkpoint(ck, thresholds=[1e9, 1e9], log=lambda s: None)  # any; the tests pick their own
    export_checkpoint(ck, d / "art", prune=False, log=lambda s: None)
    return d / "art"


def _pairs(art, thresholds, x, return_logits=True):
    with EarlyExitRunner(art, thresholds=thresholds, form="segments") as seg, \
            EarlyExitRunner(art, thresholds=thresholds, form="single-graph") as one:
        assert seg.batch1_form == "segments" and one.batch1_form == "single-graph"
        for i in range(len(x)):
            yield seg.predict(x[i:i + 1], return_logits), one.predict(x[i:i + 1], return_logits)


def _assert_same(a, b):
    assert a.labels.dtype == b.labels.dtype == np.int64 and a.exits.dtype == b.exits.dtype == np.int64
    assert a.entropy.dtype == b.entropy.dtype == np.float32
    assert np.array_equal(a.exits, b.exits)
    assert np.array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.entropy, b.entropy)  # same nodes, same kernels: bit-identical
    if a.logits is not None:
        np.testing.assert_array_equal(a.logits, b.logits)


def test_checker_and_manifest(single_artifact):
    import onnx

    m = onnx.load(str(single_artifact / "single.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert [n.op_type for n in m.graph.node].count("If") == 1
    assert [o.name for o in m.graph.output] == ["label", "logits", "entropy", "exit"]
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # batch 1 by construction
    art = Artifact.load(single_artifact)  # verifies every listed hash, the single graph's included
    entry = art.manifest["single_graph"]
    assert entry["file"] == "single.onnx" and "single.onnx" in art.manifest["files"]
    assert entry["thresholds"] == ["threshold_0"] and entry["batch"] == 1
    assert entry["check"]["samples"] == 16 and sum(entry["check"]["exit_counts"]) == 16  # checked at export
    props = {p.key: p.value for p in m.metadata_props}
    assert json.loads(props["edgebranchy.single_graph"])["thresholds"] == art.thresholds


def test_same_answers_as_segments(single_artifact, synthetic_test):
    _, x, _ = synthetic_test
    exits = []
    for a, b in _pairs(single_artifact, None, x[:150]):
        _assert_same(a, b)
        exits.append(int(a.exits[0]))
    assert 0 < exits.count(0) < len(exits), "the fixture threshold should split the samples"


# thresholds are finite (the manifest is JSON, and validate_thresholds refuses inf): one above every
# finite entropy stands for "always exit"
ABOVE_ALL = 1e30


def test_threshold_edges(single_artifact, synthetic_test):
    _, x, _ = synthetic_test
    x = x[:40]
    with EarlyExitRunner(single_artifact, form="segments") as r:
        e0 = np.array([r.backend.launch(0, x[i:i + 1]).entropy()[0] for i in range(len(x))])
    e = float(e0[3])
    cases = {0.0: None, ABOVE_ALL: None, e: None, float(np.nextafter(np.float32(e), np.float32(np.inf))): None,
             e + 1e-12: None}
    for t in cases:
        got = []
        for a, b in _pairs(single_artifact, [t], x):
            _assert_same(a, b)
            got.append(int(a.exits[0]))
        cases[t] = got
    assert set(cases[0.0]) == {1} and set(cases[ABOVE_ALL]) == {0}
    assert cases[e][3] == 1, "entropy equal to the threshold is not confident"
    assert cases[float(np.nextafter(np.float32(e), np.float32(np.inf)))][3] == 0
    assert cases[e + 1e-12][3] == 0, "float64 threshold just above a float32 entropy must still let it exit"


def test_nan_and_inf_inputs(single_artifact, synthetic_test):
    _, x, _ = synthetic_test
    bad = np.repeat(x[:1], 4, axis=0).copy()
    bad[0] = np.nan
    bad[1, 0, 3, 3] = np.nan
    bad[2] = np.inf
    bad[3, 0, 0, 0] = -np.inf
    for a, b in _pairs(single_artifact, [ABOVE_ALL], bad):
        assert int(b.exits[0]) == 1 or math.isfinite(float(b.entropy[0]))
        assert np.array_equal(a.exits, b.exits) and np.array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.entropy, b.entropy)
    with EarlyExitRunner(single_artifact, thresholds=[ABOVE_ALL], form="single-graph") as r:
        assert r.predict(bad[:1]).exits[0] == 1, "a NaN input must never exit early"


def test_thresholds_change_without_reexport(single_artifact, synthetic_test):
    _, x, _ = synthetic_test
    before = (single_artifact / "single.onnx").read_bytes()
    for t in (0.05, 0.5, 2.0):
        for a, b in _pairs(single_artifact, [t], x[:30], return_logits=False):
            _assert_same(a, b)
    assert (single_artifact / "single.onnx").read_bytes() == before


def test_threshold_input_mode_equals_initializer(single_artifact, synthetic_test, tmp_path):
    _, x, _ = synthetic_test
    art = tmp_path / "art"
    shutil.copytree(single_artifact, art)
    add_single_graph(art, threshold_mode="input")
    assert Artifact.load(art).manifest["single_graph"]["threshold_mode"] == "input"
    with EarlyExitRunner(art, form="single-graph") as r_in, EarlyExitRunner(single_artifact,
                                                                           form="single-graph") as r_init:
        for i in range(40):
            _assert_same(r_in.predict(x[i:i + 1], True), r_init.predict(x[i:i + 1], True))


def test_three_exits_nested_if(three_exit_artifact, synthetic_test):
    import onnx

    _, x, _ = synthetic_test
    m = onnx.load(str(three_exit_artifact / "single.onnx"))
    else_g = next(a.g for a in m.graph.node[-2].attribute if a.name == "else_branch")
    assert any(n.op_type == "If" for n in else_g.node), "exit 1's decision is nested in exit 0's else-branch"
    with EarlyExitRunner(three_exit_artifact, form="segments") as r:
        h = x[:60]
        l0 = r.backend.launch(0, h)
        l1 = r.backend.launch(1, l0.features)
    ts = [float(np.median(l0.entropy())), float(np.median(l1.entropy()))]
    seen = set()
    for a, b in _pairs(three_exit_artifact, ts, x[:60]):
        _assert_same(a, b)
        seen.add(int(a.exits[0]))
    assert seen == {0, 1, 2}


def _if_conditions(graph, out):
    for n in graph.node:
        if n.op_type == "If":
            out.append((graph, n.input[0]))
            for a in n.attribute:
                if a.name in ("then_branch", "else_branch"):
                    _if_conditions(a.g, out)
    return out


def test_if_conditions_are_0d_booleans(three_exit_artifact):
    """TensorRT's IIfConditional takes a 0-D boolean (ONNX allows a one-element tensor): every `If`,
    nested ones included, is fed a scalar, as shape inference shows."""
    import onnx
    from onnx import TensorProto

    m = onnx.shape_inference.infer_shapes(onnx.load(str(three_exit_artifact / "single.onnx")), strict_mode=True)
    conds = _if_conditions(m.graph, [])
    assert len(conds) == 2
    known = {v.name: v for v in m.graph.value_info}
    for graph, name in conds:
        producer = next(n for n in graph.node if name in n.output)
        assert producer.op_type == "And"  # the guarded test: below the threshold and finite
        info = known.get(name) or next(v for v in graph.value_info if v.name == name)
        t = info.type.tensor_type
        assert t.elem_type == TensorProto.BOOL and len(t.shape.dim) == 0, (name, t)


def test_batches_keep_the_segment_path(single_artifact, synthetic_test):
    _, x, _ = synthetic_test
    with EarlyExitRunner(single_artifact, form="single-graph") as one, \
            EarlyExitRunner(single_artifact, form="segments") as seg:
        a, b = seg.predict(x[:64], True), one.predict(x[:64], True)
        _assert_same(a, b)
        pipe = list(one.predict_stream([x[i:i + 16] for i in range(0, 64, 16)]))
        assert np.array_equal(np.concatenate([p.exits for p in pipe]), a.exits)


def test_auto_form_choice(single_artifact, synthetic_test, tmp_path):
    _, x, _ = synthetic_test
    with EarlyExitRunner(single_artifact) as r:
        assert r.batch1_form == "segments" and "no measurement" in r.form_reason
        rec = r.choose_form(x[:20], rounds=2)
        assert rec["choice"] == r.batch1_form
        assert (rec["single_graph_us"] < rec["segments_us"]) == (r.batch1_form == "single-graph")
        _assert_same(EarlyExitRunner(single_artifact, form="segments").predict(x[:1]), r.predict(x[:1]))
    art = tmp_path / "art"
    shutil.copytree(single_artifact, art)
    a = Artifact.load(art)
    for choice in ("single-graph", "segments"):
        a.manifest["single_graph"]["measured"] = {"onnxruntime": {"choice": choice, "segments_us": 60.0,
                                                                  "single_graph_us": 50.0}}
        a.add_files([])
        with EarlyExitRunner(art) as r:
            assert r.batch1_form == choice and "records" in r.form_reason


def test_form_errors(segments_only, single_artifact):
    with pytest.raises(EdgeBranchyError, match="no single early-exit graph"):
        EarlyExitRunner(segments_only, form="single-graph")
    with pytest.raises(EdgeBranchyError, match="form must be one of"):
        EarlyExitRunner(single_artifact, form="fused")
    with EarlyExitRunner(segments_only) as r:  # auto without a single graph: segments
        assert r.batch1_form == "segments"
        with pytest.raises(EdgeBranchyError, match="no single graph to choose"):
            r.choose_form(np.zeros((1, 1, 28, 28), np.float32))


def test_add_single_graph_to_an_older_artifact(segments_only, tmp_path, synthetic_test):
    _, x, _ = synthetic_test
    art = tmp_path / "art"
    shutil.copytree(segments_only, art)
    add_single_graph(art)
    with EarlyExitRunner(art, form="single-graph") as one, EarlyExitRunner(segments_only) as seg:
        for i in range(10):
            _assert_same(seg.predict(x[i:i + 1]), one.predict(x[i:i + 1]))


@pytest.mark.parametrize("damage, match", [
    (lambda m: m["single_graph"].pop("file"), "single_graph has no 'file'"),
    (lambda m: m["single_graph"].update(thresholds=[]), "one threshold per side exit"),
    (lambda m: m["single_graph"].update(threshold_mode="attribute"), "threshold_mode"),
    (lambda m: m["single_graph"].update(batch=8), "batch 1"),
    (lambda m: m["files"].pop("single.onnx"), "single.onnx is used but has no hash"),
])
def test_loader_validates_the_entry(single_artifact, tmp_path, damage, match):
    art = tmp_path / "art"
    shutil.copytree(single_artifact, art)
    m = json.loads((art / "manifest.json").read_text())
    damage(m)
    (art / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgeBranchyError, match=match):
        Artifact.load(art)


def test_tampered_single_graph_refused(single_artifact, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(single_artifact, art)
    with open(art / "single.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(EdgeBranchyError, match="modified or damaged"):
        Artifact.load(art)


def test_build_refuses_wrong_threshold_count(single_artifact):
    with pytest.raises(EdgeBranchyError, match="need 1 thresholds"):
        single_graph_bytes(Artifact.load(single_artifact), thresholds=[0.1, 0.2])


@pytest.mark.parametrize("t", [0.0, 1e-8, 0.1, 1.058180029803006, 2.302585092994046, 1e30, 1e39, math.inf])
def test_float32_threshold_is_exact(t):
    t32 = float32_threshold(t)
    assert t32 >= t and float(np.float32(t32)) == t32
    below = np.nextafter(np.float32(t32), np.float32(-np.inf))
    assert float(below) < t or math.isinf(t)  # nothing float32 between t and t32
    with np.errstate(over="ignore"):
        near = np.float32(t)
    for e in (near, below, np.float32(t32)):
        if math.isfinite(float(e)):
            assert (float(e) < t) == (np.float32(e) < np.float32(t32))


def test_check_single_graph_catches_a_mismatch(single_artifact, synthetic_test):
    from edgebranchy.export.single_graph import check_single_graph

    _, x, _ = synthetic_test
    art = Artifact.load(single_artifact)
    segs = [art.segment_file(k).read_bytes() for k in range(art.num_exits)]
    good = check_single_graph(single_graph_bytes(art), segs, art.thresholds, x[:24])
    assert good["samples"] == 24 and good["max_abs_diff_logits"] == 0.0 and sum(good["exit_counts"]) == 24
    with pytest.raises(EdgeBranchyError, match="single graph: sample 0 leaves at exit 0"):
        check_single_graph(single_graph_bytes(art, thresholds=[math.inf]), segs, [0.0], x[:4])


def test_fp16_runs_the_segments(single_artifact):
    with EarlyExitRunner(single_artifact, options={"precision": "fp16"}) as r:
        assert not r.single_graph_available and r.batch1_form == "segments"
    with pytest.raises(EdgeBranchyError, match="does not run the single early-exit graph"):
        EarlyExitRunner(single_artifact, options={"precision": "fp16"}, form="single-graph")


def _all_nodes(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.g is not None and a.g.node:
                yield from _all_nodes(a.g)


def test_every_op_of_the_single_graph_has_a_tensorrt_85_importer(three_exit_artifact):
    """Issue 23 item 2: TensorRT 8.5's ONNX parser has no IsInf importer (onnx-tensorrt release/8.5-GA
    operators.md: "IsInf N"), so the finiteness test is Greater(e, lowest float32) and Less(e, T)."""
    import onnx
    from trt_double.fake_network import importable

    m = onnx.load(str(three_exit_artifact / "single.onnx"))
    ops = {n.op_type for n in _all_nodes(m.graph)}
    assert {"If", "Less", "Greater", "And"} <= ops and "IsInf" not in ops
    assert all(importable(op, (8, 5, 2)) for op in ops), sorted(op for op in ops if not importable(op, (8, 5, 2)))


def _toy_segment(last: bool):
    """x [N, 2] -> logits = x, entropy = sum(x) (any value, infinities and NaN included), features = x."""
    from onnx import TensorProto, helper

    f32 = TensorProto.FLOAT
    nodes = [helper.make_node("Identity", ["x"], ["logits"], name="logits"),
             helper.make_node("ReduceSum", ["x", "axes"], ["entropy"], keepdims=0, name="entropy")]
    outs = [helper.make_tensor_value_info("logits", f32, ["N", 2]), helper.make_tensor_value_info("entropy", f32, ["N"])]
    if not last:
        nodes.append(helper.make_node("Identity", ["x"], ["features"], name="features"))
        outs = [helper.make_tensor_value_info("features", f32, ["N", 2])] + outs
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", f32, ["N", 2])], outs,
                          [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("row,exit_", [([0.25, 0.25], 0), ([-np.inf, 0.0], 1), ([np.inf, 0.0], 1),
                                       ([np.nan, 0.0], 1), ([-3.0e38, -3.0e38], 1), ([-1.0e30, 0.0], 0)])
def test_the_guard_exits_only_on_a_finite_entropy_below_the_threshold(row, exit_):
    """The rule: exit k when isfinite(entropy) and entropy < T, with -inf, +inf and NaN going on, as the runner's
    `confident` decides (an entropy that overflows to -inf in float32 is not finite either)."""
    import onnxruntime as ort

    from edgebranchy.exits.rule import confident
    from edgebranchy.export.single_graph import build_single_graph

    model = build_single_graph([_toy_segment(False), _toy_segment(True)], [1.0], classes=2)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.array([row], dtype=np.float32)
    with np.errstate(over="ignore"):  # -3e38 + -3e38 overflows to -inf in float32, as in the graph
        e0 = np.float32(x.sum(dtype=np.float32))
    label, logits, entropy, ex = sess.run(None, {"x": x})
    assert int(ex[0]) == exit_ == (0 if confident(np.array([e0], dtype=np.float64), 1.0)[0] else 1)
