"""Engine builds against the strict TensorRT double (8.5, 10.3, 11.4): files, manifest, cache hits,
version decisions, builder settings, parser errors, refusal of engines built for another device."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np

import pytest
from trt_double import VERSIONS, assert_clean, fake_trt, install

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.tensorrt import compat as trt_compat
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.tensorrt.build import build_engines
from edgebranchy.tensorrt.device import device_facts, gpu_info
from edgebranchy.tensorrt.load import load_engine
from edgebranchy.tensorrt.settings import validate_settings

GPU_A = ("Orin (nvgpu)", (8, 7))
GPU_B = ("NVIDIA GeForce RTX 4090", (8, 9))
#: the engines of the tiny (two-segment) artifact: segments, baseline, the gathers of segment 0's features and of logits
ENGINES = ("seg0", "seg1", "baseline", "gather0", "gather_logits")


def engines(double) -> tuple:
    """The engine set a version builds: from 10.0 also the single early-exit graph's (TensorRT imports `If`)."""
    return ENGINES + (("single",) if major(double) >= 10 else ())
SETTINGS = {"precision": "fp16", "workspace_mb": 512, "builder_optimization_level": 4, "max_batch": 16,
            "dla_core": -1, "gpu_fallback": True}


@pytest.fixture
def art(tiny_artifact, tmp_path):
    """A private copy of the session artifact (builds modify it)."""
    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact, dst)
    return dst


@pytest.fixture(params=VERSIONS)
def double(request, monkeypatch):
    d = install(monkeypatch, request.param, gpu=GPU_A, dla_cores=2)
    yield d
    assert_clean(d)


def build(art, double, logs=None, **kw):
    settings = {**SETTINGS, **kw.pop("settings", {})}
    return build_engines(art, settings, log=(logs.append if logs is not None else lambda s: None),
                         gpu=lambda: (double.state.gpu, double.state.cc), **kw)


def major(double) -> int:
    return int(double.state.version.split(".")[0])


# ---------------------------------------------------------------- trt_compat: pure decisions

@pytest.mark.parametrize("text,want", [("10.3.0.30", (10, 3, 0)), ("8.5.2.2", (8, 5, 2)), ("11.4", (11, 4, 0)),
                                       (" 10.0.1b2", (10, 0, 1))])
def test_parse_version(text, want):
    assert trt_compat.parse_version(text) == want


def test_parse_version_rejects_garbage():
    with pytest.raises(EdgeBranchyError, match="cannot read"):
        trt_compat.parse_version("dev")


@pytest.mark.parametrize("v,precision,mode,graph,explicit,typed,flag", [
    ((8, 5, 2), "fp16", "builder-flag", "fp32", True, False, True),
    ((8, 5, 2), "fp32", "default", "fp32", True, False, False),
    ((9, 3, 0), "fp16", "builder-flag", "fp32", True, False, True),
    ((10, 3, 0), "fp16", "strongly-typed-graph", "fp16", False, True, False),  # FP16 flag deprecated from 10.12
    ((10, 3, 0), "fp32", "default", "fp32", False, False, False),
    ((11, 4, 0), "fp16", "strongly-typed-graph", "fp16", False, True, False),
    ((11, 4, 0), "fp32", "strongly-typed-graph", "fp32", False, True, False),
])
def test_plan_build_per_version(v, precision, mode, graph, explicit, typed, flag):
    p = trt_compat.plan_build(v, precision, 3)
    assert (p.precision_mode, p.graph_precision, p.explicit_batch_flag, p.strongly_typed_flag, p.fp16_flag) == \
        (mode, graph, explicit, typed, flag)
    assert p.optimization_level == (None if v < (8, 6, 0) else 3)


def test_plan_build_refusals_and_notes():
    with pytest.raises(EdgeBranchyError, match="too old"):
        trt_compat.plan_build((8, 4, 3), "fp16", 3)
    with pytest.raises(EdgeBranchyError, match="bf16"):
        trt_compat.plan_build((10, 3, 0), "bf16", 3)
    with pytest.raises(EdgeBranchyError, match="FP16"):
        trt_compat.plan_build((10, 3, 0), "fp32", 3, dla_core=0)
    p = trt_compat.plan_build((8, 5, 2), "fp16", 5, dla_core=1, gpu_fallback=True)
    assert p.dla_core == 1 and p.gpu_fallback is True and any("not applied" in n for n in p.notes)
    assert trt_compat.plan_build((10, 3, 0), "fp16", 3, dla_core=-1, gpu_fallback=True).gpu_fallback is None
    assert any("newer" in n for n in trt_compat.plan_build((12, 0, 0), "fp16", 3).notes)


def test_lanes_profiles_and_the_single_graph_per_version():
    """A lane per pipeline stage (at least two); one shared profile from 8.6, one per lane on 8.5; the If graph only
    from 10.0, with the host synchronisation said."""
    assert [trt_compat.lanes_for(k) for k in (1, 2, 3, 5)] == [2, 2, 3, 5]
    assert [trt_compat.lane_profiles(v, 3) for v in ((8, 5, 2), (8, 6, 1), (9, 3, 0), (10, 3, 0))] == [3, 1, 1, 1]
    assert (trt_compat.lane_profile(2, shared=True), trt_compat.lane_profile(2, shared=False)) == (0, 2)
    for v, ok in (((8, 5, 2), False), ((8, 6, 1), False), ((9, 3, 0), False), ((10, 0, 0), True), ((11, 4, 0), True)):
        got, why = trt_compat.single_graph_support(v)
        assert got is ok and ("copies each `If` condition to the host" in why if ok else "If` importer" in why)


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("change,match", [
    ({"precision": "bf16"}, "precision"), ({"workspace_mb": 0}, "workspace_mb"),
    ({"workspace_mb": "1024"}, "workspace_mb"), ({"workspace_mb": True}, "workspace_mb"),
    ({"builder_optimization_level": 6}, "builder_optimization_level"), ({"max_batch": 0}, "max_batch"),
    ({"dla_core": -2}, "dla_core"), ({"gpu_fallback": "yes"}, "gpu_fallback"), ({"workspace": 1}, "unknown"),
])
def test_invalid_settings_are_refused(change, match):
    with pytest.raises(EdgeBranchyError, match=match):
        validate_settings({**SETTINGS, **change})


def test_missing_setting_and_precision_override():
    s = dict(SETTINGS)
    del s["max_batch"]
    with pytest.raises(EdgeBranchyError, match="max_batch is missing"):
        validate_settings(s)
    assert validate_settings(SETTINGS, precision="fp32").precision == "fp32"
    with pytest.raises(EdgeBranchyError, match="table"):
        validate_settings(["fp16"])


def test_settings_from_every_shipped_profile():
    from edgebranchy.device.profile_loading import list_profiles, load_profile

    for name in list_profiles():
        cfg = load_profile(name).tensorrt
        assert validate_settings(cfg) == validate_settings(dataclasses.asdict(cfg))


def test_invalid_settings_fail_before_any_build(monkeypatch, art):
    d = install(monkeypatch, "10.3.0", gpu=GPU_A)
    with pytest.raises(EdgeBranchyError, match="max_batch"):
        build(art, d, settings={"max_batch": -1})
    assert d.builds == [] and not (art / "engines").exists()
    assert_clean(d)


# ---------------------------------------------------------------- building

def test_build_writes_engines_and_records_them(double, art):
    logs = []
    r = build(art, double, logs)
    v = double.state.version
    key = r["device_key"]
    assert key.startswith(f"orin-nvgpu-sm87-trt{v}-fp16-") and r["cached"] is False
    a = Artifact.load(art)  # every hash, including the new files, verifies
    rec = a.manifest["tensorrt"][key]
    assert set(rec["files"]) == set(engines(double)) | {"engine.json"}
    lane_profiles = 2 if double.state.version.startswith("8.5") else 1  # 8.5: one identical profile per lane
    assert rec["lane_profiles"] == lane_profiles and rec["lanes"] == 2
    for name in ("seg0", "seg1", "baseline"):
        rel = rec["files"][name]
        assert rel == f"engines/{key}/{name}.plan" and rel in a.manifest["files"]
        h = fake_trt.plan_header((art / rel).read_bytes())
        assert h["version"] == v and h["gpu"] == GPU_A[0] and h["precision"] == "fp16"
        assert h["workspace"] == 512 << 20 and h["timing_cache"] is True
        shape = a.manifest["segments"][int(name[3:])]["input_shape"] if name != "baseline" else list(a.input_shape)
        assert h["profiles"] == [{"x": [[1, *shape], [1, *shape], [16, *shape]]}] * lane_profiles
        assert rec["profiles"][name] == {"input": "x", "min": [1, *shape], "opt": [1, *shape], "max": [16, *shape]}
    assert json.loads((art / rec["files"]["engine.json"]).read_text()) == rec["components"]
    assert (rec["tensorrt"], rec["gpu"], rec["compute_capability"]) == (v, GPU_A[0], "8.7")
    assert rec["dla_core"] is None and rec["max_batch"] == 16
    assert (art / rec["timing_cache"]["file"]).is_file() and rec["timing_cache"]["file"] == \
        f"engines/timing-orin-nvgpu-{v}.cache"
    assert len(double.builds) == len(engines(double))
    assert any("building TensorRT engines" in line for line in logs)


def test_second_build_is_a_cache_hit_unless_forced_or_damaged(double, art):
    first = build(art, double)
    second = build(art, double)
    n = len(engines(double))
    assert second["cached"] is True and second["device_key"] == first["device_key"] and len(double.builds) == n
    forced = build(art, double, force=True)
    assert forced["cached"] is False and len(double.builds) == 2 * n
    assert forced["timing_cache"]["state"] == "loaded"
    plan = art / first["files"]["seg1"]
    plan.write_bytes(plan.read_bytes() + b"x")
    logs = []
    again = build(art, double, logs)
    assert again["cached"] is False and any("modified" in line for line in logs)
    assert Artifact.load(art).manifest["files"][first["files"]["seg1"]]["bytes"] == plan.stat().st_size


def test_changed_settings_give_another_key(double, art):
    a = build(art, double)
    b = build(art, double, settings={"max_batch": 8})
    c = build(art, double, precision="fp32")
    assert len({a["device_key"], b["device_key"], c["device_key"]}) == 3
    assert set(Artifact.load(art).manifest["tensorrt"]) == {a["device_key"], b["device_key"], c["device_key"]}


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_precision_decision_is_taken_and_recorded(double, art, precision):
    r = build(art, double, precision=precision)
    h = fake_trt.plan_header((art / r["files"]["seg1"]).read_bytes())
    assert h["precision"] == precision
    if major(double) >= 11 or (major(double) == 10 and precision == "fp16"):  # 10.x: the fp16 graph, typed
        assert r["precision_mode"] == "strongly-typed-graph" and h["mode"] == "strongly-typed"
        want = "segments/seg1.fp16.onnx" if precision == "fp16" else "segments/seg1.onnx"
    else:
        assert r["precision_mode"] == ("builder-flag" if precision == "fp16" else "default")
        assert h["mode"] == r["precision_mode"]
        want = "segments/seg1.onnx"
    assert r["graphs"]["seg1"] == want
    assert h["explicit_batch_flag"] is (major(double) < 10)
    assert Artifact.load(art).manifest["tensorrt"][r["device_key"]]["precision_mode"] == r["precision_mode"]


def test_optimisation_level_applied_or_recorded_as_unused(double, art):
    r = build(art, double)
    h = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    if double.state.version.startswith("8.5"):
        assert r["builder_optimization_level"] is None and h["opt_level"] is None
        assert any("not applied" in n for n in r["notes"])
    else:
        assert r["builder_optimization_level"] == 4 and h["opt_level"] == 4
    assert r["builder_optimization_level_requested"] == 4


def test_dla_with_gpu_fallback(double, art):
    r = build(art, double, settings={"dla_core": 1, "gpu_fallback": True})
    assert "-dla1-" in r["device_key"] and r["dla_core"] == 1 and r["gpu_fallback"] is True
    h = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    assert h["dla_core"] == 1 and h["gpu_fallback"] is True
    with pytest.raises(EdgeBranchyError, match="2 DLA core"):
        build(art, double, settings={"dla_core": 2})
    with pytest.raises(EdgeBranchyError, match="FP16"):
        build(art, double, settings={"dla_core": 0}, precision="fp32")


def test_gpu_identified_through_pycuda_by_default(double, art):
    assert gpu_info() == (GPU_A[0], GPU_A[1], 16)
    r = build_engines(art, SETTINGS, log=lambda s: None)
    assert r["gpu"] == GPU_A[0] and r["compute_capability"] == "8.7"


def test_tensorrt_11_needs_fp16_graphs(monkeypatch, art):
    d = install(monkeypatch, "11.4.0", gpu=GPU_A)
    a = Artifact.load(art)
    segs = [{**s, "fp16_file": None} for s in a.manifest["segments"]]
    a.add_files([], {"segments": segs})
    with pytest.raises(EdgeBranchyError, match="--precision fp16"):
        build(art, d)
    assert build(art, d, precision="fp32")["precision_mode"] == "strongly-typed-graph"
    assert_clean(d)


def test_too_old_tensorrt_is_refused(monkeypatch, art):
    d = install(monkeypatch, "8.2.1", gpu=GPU_A)
    with pytest.raises(EdgeBranchyError, match="too old"):
        build(art, d)


def test_missing_tensorrt_is_a_clear_error(monkeypatch, art):
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EdgeBranchyError, match="TensorRT Python bindings"):
        build_engines(art, SETTINGS, log=lambda s: None, gpu=lambda: GPU_A)


# ---------------------------------------------------------------- parser errors

def _replace_graph(art, rel, data):
    (art / rel).write_bytes(data)
    Artifact.load(art, verify=False).add_files([rel])


def test_parser_error_names_the_node_and_the_reason(double, art):
    import onnx

    rel = "segments/seg1.onnx"
    model = onnx.load(str(art / rel))
    i = 2
    model.graph.node[i].op_type = "FancyAttention"
    name = model.graph.node[i].name
    _replace_graph(art, rel, model.SerializeToString())
    with pytest.raises(EdgeBranchyError) as e:
        build(art, double, precision="fp32")
    msg = str(e.value)
    assert rel in msg and f"node {i} (FancyAttention {name!r})" in msg
    assert "No importer registered for op: FancyAttention" in msg and "UNSUPPORTED_NODE" in msg
    assert not (art / "engines").exists() or not any((art / "engines").rglob("engine.json"))


def test_parser_error_on_a_damaged_graph(double, art):
    _replace_graph(art, "segments/seg0.onnx", b"\x08\x07garbage")
    with pytest.raises(EdgeBranchyError, match=r"the model: Failed to parse ONNX model"):
        build(art, double, precision="fp32")


# ---------------------------------------------------------------- refusing engines of another device

def test_engines_of_another_gpu_are_refused(monkeypatch, art):
    d = install(monkeypatch, "10.3.0", gpu=GPU_A)
    build(art, d)
    assert_clean(d)
    d2 = install(monkeypatch, "10.3.0", gpu=GPU_B)
    with pytest.raises(EdgeBranchyError) as e:
        load_engine(Artifact.load(art), device_facts(d2.trt, lambda: GPU_B))
    msg = str(e.value)
    assert f"edgebranchy build {art}" in msg and "gpu" in msg and "compute_capability" in msg
    assert_clean(d2)


@pytest.mark.parametrize("built,now", [("10.3.0", "11.4.0"), ("8.5.2", "10.3.0")])
def test_engines_of_another_tensorrt_version_are_refused(monkeypatch, art, built, now):
    d = install(monkeypatch, built, gpu=GPU_A)
    build(art, d)
    d2 = install(monkeypatch, now, gpu=GPU_A)
    with pytest.raises(EdgeBranchyError, match=r"differs in: tensorrt.*rebuild them on this device with "
                                               r"`edgebranchy build .*`"):
        load_engine(Artifact.load(art), device_facts(d2.trt, lambda: GPU_A))
    assert_clean(d2)


def test_engine_that_tensorrt_refuses_is_reported_with_the_rebuild_hint(monkeypatch, art):
    """engine.json and the manifest claim GPU B, the plans were built on GPU A: deserialisation fails."""
    d = install(monkeypatch, "10.3.0", gpu=GPU_A)
    r = build(art, d)
    a = Artifact.load(art)
    rec = a.manifest["tensorrt"][r["device_key"]]
    rec["components"].update(gpu=GPU_B[0], compute_capability="8.9")
    (art / rec["files"]["engine.json"]).write_text(json.dumps(rec["components"]))
    a.add_files([rec["files"]["engine.json"]], {"tensorrt": a.manifest["tensorrt"]})
    d2 = install(monkeypatch, "10.3.0", gpu=GPU_B)
    with pytest.raises(EdgeBranchyError, match=r"refused the engine .*incompatible device.*edgebranchy build"):
        load_engine(Artifact.load(art), device_facts(d2.trt, lambda: GPU_B))
    assert_clean(d2)


def test_load_engine_refuses_a_tampered_engine_json(monkeypatch, art):
    d = install(monkeypatch, "10.3.0", gpu=GPU_A)
    r = build(art, d)
    p = art / r["files"]["engine.json"]
    p.write_text(json.dumps({**json.loads(p.read_text()), "precision": "fp32"}))
    with pytest.raises(EdgeBranchyError, match="engine.json does not match"):
        load_engine(Artifact.load(art, verify=False), device_facts(d.trt, lambda: GPU_A))
    assert_clean(d)


def test_load_engine_finds_the_engines_of_this_device(double, art):
    r = build(art, double)
    loaded = load_engine(Artifact.load(art), device_facts(double.trt, lambda: GPU_A))
    assert loaded.key == r["device_key"] and set(loaded.engines) == set(engines(double))
    build(art, double, precision="fp32")
    with pytest.raises(EdgeBranchyError, match="several engine sets"):
        load_engine(Artifact.load(art), device_facts(double.trt, lambda: GPU_A))
    only = load_engine(Artifact.load(art), {**device_facts(double.trt, lambda: GPU_A), "precision": "fp32"})
    assert only.record["precision"] == "fp32"


# ---------------------------------------------------------------- the double itself is strict

def test_double_refuses_names_the_claimed_version_lacks(monkeypatch):
    d11 = install(monkeypatch, "11.4.0")
    with pytest.raises(AttributeError, match="FP16"):
        d11.trt.BuilderFlag.FP16
    with pytest.raises(AttributeError, match="EXPLICIT_BATCH"):
        d11.trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    assert not hasattr(d11.trt.Builder(None), "platform_has_fast_fp16")
    assert len(d11.violations) == 3  # even the swallowed hasattr is recorded
    d8 = install(monkeypatch, "8.5.2")
    config = d8.trt.Builder(None).create_builder_config()
    with pytest.raises(AttributeError, match="builder_optimization_level"):
        config.builder_optimization_level = 3
    with pytest.raises(Exception, match="EXPLICIT_BATCH"):
        d8.trt.Builder(None).create_network(0)
    d10 = install(monkeypatch, "10.3.0")
    with pytest.raises(AttributeError, match="max_workspace_size"):
        d10.trt.Builder(None).create_builder_config().max_workspace_size = 1
    assert d10.trt.BuilderFlag.FP16 is not None and len(d10.violations) == 1


def test_cli_build_with_profile(art, double, capsys):
    """`edgebranchy build ART --profile P` builds with the profile's settings, then reuses them; the old spelling
    `export ART --tensorrt` still does the same and says, in one line on stderr, what to use."""
    from edgebranchy.cli import main

    assert main(["build", str(art), "--profile", "jetson-orin-nano", "--max-batch", "8"]) == 0
    got = capsys.readouterr()
    assert "engines built" in got.out and "profile: jetson-orin-nano" in got.out and got.err == ""
    rec = next(iter(json.loads((art / "manifest.json").read_text())["tensorrt"].values()))
    assert rec["max_batch"] == 8
    assert main(["export", str(art), "--tensorrt", "--profile", "jetson-orin-nano", "--max-batch", "8"]) == 0
    got = capsys.readouterr()
    assert "reused from the cache" in got.out
    assert got.err.splitlines() == ["edgebranchy export: note: --tensorrt is deprecated; use `edgebranchy build "
                                    "ARTIFACT`"]
    assert main(["build", str(art), "--profile", "jetson-orin-nano", "--max-batch", "8", "--force"]) == 0
    assert "engines built" in capsys.readouterr().out


# ---------------------------------------------------------------- issue 11: opt batch, device key

def test_profile_opt_is_the_typical_batch_not_max_batch(double, art):
    """Kernels are chosen for kOPT (NvInfer.h, IOptimizationProfile::setDimensions): bench runs batch 1."""
    r = build(art, double)
    h = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    shape = Artifact.load(art).manifest["segments"][0]["input_shape"]
    assert h["profile"]["x"] == [[1, *shape], [1, *shape], [16, *shape]]
    assert r["profiles"]["seg0"]["opt"] == [1, *shape] and r["opt_batch"] == 1
    r4 = build(art, double, settings={"opt_batch": 4})
    assert r4["profiles"]["seg0"]["opt"] == [4, *shape] and r4["device_key"] != r["device_key"]
    with pytest.raises(EdgeBranchyError, match="opt_batch"):
        build(art, double, settings={"opt_batch": 17})


def test_orin_modules_with_the_same_name_and_cc_get_different_keys(monkeypatch, art, tmp_path):
    """AGX Orin, Orin NX and Orin Nano all say "Orin (nvgpu)", compute 8.7: SM count and board tell them apart."""
    model = tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    monkeypatch.setattr("edgebranchy.tensorrt.device.DEVICE_TREE_MODEL", str(model))
    d = install(monkeypatch, "10.3.0", gpu=GPU_A, sm_count=16)
    agx = build_engines(art, SETTINGS, log=lambda s: None)
    assert agx["components"]["sm_count"] == 16 and "AGX Orin" in agx["components"]["board"]
    assert_clean(d)
    model.write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    d2 = install(monkeypatch, "10.3.0", gpu=GPU_A, sm_count=8)
    with pytest.raises(EdgeBranchyError, match=r"differs in: .*sm_count"):
        load_engine(Artifact.load(art), device_facts(d2.trt))
    nano = build_engines(art, SETTINGS, log=lambda s: None)
    assert nano["device_key"] != agx["device_key"]
    assert_clean(d2)


def test_fp32_engines_clear_tf32_unless_asked_and_record_it(double, art):
    """BuilderFlag.TF32 is on by default (NvInfer.h 8.5, 10.3, 11.1): an "fp32" engine would compute in TF32."""
    r = build(art, double, precision="fp32")
    h = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    assert h["tf32"] is False and r["tf32"] is False and r["components"]["tf32"] is False
    r2 = build(art, double, precision="fp32", settings={"tf32": True})
    assert fake_trt.plan_header((art / r2["files"]["seg0"]).read_bytes())["tf32"] is True
    assert r2["device_key"] != r["device_key"]


def test_profile_sharing_is_built_in_where_the_version_needs_it(double, art):
    r = build(art, double)
    h = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    want = tuple(int(p) for p in double.state.version.split(".")[:2]) >= (8, 6)
    assert h["profile_sharing"] is want and r["profile_sharing"] is want


# ---------------------------------------------------------------- issue 23: FP32 exit head, cache vs TensorRT builds

@pytest.mark.parametrize("version", VERSIONS)
def test_fp16_engines_decide_in_fp32_on_every_version(monkeypatch, art, synthetic_test, version):
    """Item 3: the entropy (the exit decision) is computed in FP32 from the logits on every TensorRT version, as
    torch, ONNX Runtime and the 11.x strongly typed path do. Before, BuilderFlag.FP16 let 8.5-10.x run the
    entropy head in FP16: a small, systematic error that moves borderline exits per TensorRT version."""
    from edgebranchy.exits.entropy import entropy
    from edgebranchy.runtime.backends.tensorrt import TensorRTBackend

    d = install(monkeypatch, version, gpu=GPU_A)
    r = build_engines(art, SETTINGS, precision="fp16", log=lambda s: None)  # the GPU through pycuda, as the backend
    a = Artifact.load(art)
    x = np.ascontiguousarray(synthetic_test[1][:16], dtype=np.float32)
    temps = a.temperatures or [1.0] * 8
    with TensorRTBackend(a, {"precision": "fp16"}) as b:
        h = b.to_device(x)
        for k in range(a.num_exits):
            launch = b.launch(k, h, 0)
            logits, ent = b.to_host(launch.logits), launch.entropy()
            assert logits.dtype == ent.dtype == np.float32
            t = temps[a.manifest["segments"][k].get("model_exit", k)]
            want = entropy(logits.astype(np.float64), normalize=a.entropy_normalized, temperature=t)
            np.testing.assert_allclose(ent, want, rtol=2e-6, atol=2e-6)
            h = launch.features
    header = fake_trt.plan_header((art / r["files"]["seg0"]).read_bytes())
    if version.startswith("8."):  # the head's layers pinned to FP32 under OBEY_PRECISION_CONSTRAINTS
        assert header["mode"] == "builder-flag" and "/Log" in header["fp32_layers"]
        assert r["exit_head_fp32_layers"]["seg0"] == len(header["fp32_layers"]) and not \
            r["exit_head_fp32_layers"]["baseline"]
    else:  # 10.x and 11.x: the fp16 graph, strongly typed (BuilderFlag.FP16 is deprecated from 10.12)
        assert header["mode"] == "strongly-typed" and r["graphs"]["seg0"] == "segments/seg0.fp16.onnx"
    assert_clean(d)


def test_cache_check_sees_a_tensorrt_build_change_that_keeps_the_version_string(monkeypatch, art):
    """Item 11: a pip wheel says "10.3.0" for builds 10.3.0.26 and 10.3.0.30; an engine of one does not load on
    the other. The cache check deserialises every engine, so export rebuilds instead of saying "up to date"."""
    from edgebranchy.runtime.backends.tensorrt import TensorRTBackend

    d = install(monkeypatch, "10.3.0", gpu=GPU_A, build="10.3.0.26")
    first = build_engines(art, SETTINGS, log=lambda s: None)
    assert not d.violations
    d2 = install(monkeypatch, "10.3.0", gpu=GPU_A, build="10.3.0.30")
    logs = []
    again = build_engines(art, SETTINGS, log=logs.append)
    assert again["device_key"] == first["device_key"] and again["cached"] is False
    assert any("refuses the cached" in line and "10.3.0.26" in line for line in logs)
    with TensorRTBackend(Artifact.load(art)) as b:  # the rebuilt engines load
        assert b.device_key == first["device_key"]
    assert build_engines(art, SETTINGS, log=lambda s: None)["cached"] is True
    assert_clean(d2)
