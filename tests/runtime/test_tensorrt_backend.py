"""TensorRTBackend against the strict TensorRT/pycuda double (8.5, 10.3, 11.4): outputs equal ONNX Runtime
on the same graphs, device chaining across lanes, compaction, buffer reuse, limits, refusals."""
from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from trt_double import StrictDoubleError, assert_clean, install

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.artifact.manifest import Artifact
from edgebranchy.tensorrt.build import build_engines
from edgebranchy.runtime.backends.tensorrt import DeviceTensor, TensorRTBackend

GPU = ("Orin (nvgpu)", (8, 7))
MAX_BATCH = 16
SETTINGS = {"precision": "fp16", "workspace_mb": 256, "builder_optimization_level": 3, "max_batch": MAX_BATCH,
            "dla_core": -1, "gpu_fallback": False}


@pytest.fixture
def trt_settings():
    return SETTINGS


@pytest.fixture
def backend(art):
    b = TensorRTBackend(art)
    yield b
    b.close()


@pytest.fixture(scope="module")
def inputs(synthetic_test):
    return np.ascontiguousarray(synthetic_test[1][:64], dtype=np.float32)


def engine_run(art, backend, name, x):
    """ONNX Runtime on the graph as the engine `name` of `backend`'s set computes it (the double's plan: TensorRT's
    ONNX import, the engine's own precision, its FP32-pinned layers)."""
    import onnxruntime as ort
    from trt_double import fake_trt

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(fake_trt.plan_graph((art.root / backend.record["files"][name]).read_bytes()), so,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"x": x})))


def close(got, want):
    tol = 2e-3 if want.dtype == np.float16 else 1e-5
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)


def fp32_engines(art):
    """FP32 engines beside the fixture's FP16 ones, and a backend on them."""
    build_engines(art.root, SETTINGS, precision="fp32", log=lambda s: None)
    a = Artifact.load(art.root)
    return a, TensorRTBackend(a, {"precision": "fp32"})


def two_lanes(backend):
    """Every version has two lanes at least (8.5: a profile per lane; 8.6+: one shared profile)."""
    assert backend.lanes >= 2


def streams_of(backend):
    return [s.handle for s in backend._streams]


# ---------------------------------------------------------------- outputs

def test_segments_and_baseline_equal_onnxruntime(double, art, backend, inputs):
    x = inputs[:12]
    ref0 = engine_run(art, backend, "seg0", x)
    ref1 = engine_run(art, backend, "seg1", ref0["features"])
    l0 = backend.launch(0, backend.to_device(x), 0)
    l1 = backend.launch(1, l0.features, 0)  # chained on the device
    close(l0.entropy(), ref0["entropy"])
    close(backend.to_host(l0.logits), ref0["logits"])
    close(backend.to_host(l0.features), ref0["features"])
    close(l1.entropy(), ref1["entropy"])
    close(backend.to_host(l1.logits), ref1["logits"])
    assert l1.features is None and (l0.batch, l0.segment, l0.lane) == (12, 0, 0)
    close(backend.run_baseline(x), engine_run(art, backend, "baseline", x)["logits"])
    assert isinstance(l0.features, DeviceTensor)
    assert l0.features.dtype == (np.float32 if double.state.version.startswith("8.") else np.float16)


def test_only_entropy_and_logits_are_copied_back_per_launch(double, backend, inputs):
    before = len(double.ops)
    launch = backend.launch(0, backend.to_device(inputs[:8]), 0)
    launch.entropy()
    kinds = [k for k, _, _ in double.ops[before:]]
    assert kinds.count("htod") == 1 and kinds.count("execute") == 1
    dtoh = [info for k, _, info in double.ops[before:] if k == "dtoh"]
    classes = len(backend.artifact.classes)
    assert [d["bytes"] for d in dtoh] == [8 * 4, 8 * classes * 4]  # B float32 entropies and logits, no features
    assert all(h in streams_of(backend) for _, h, _ in double.ops[before:])  # never the default stream


# ---------------------------------------------------------------- compaction

@pytest.mark.parametrize("index", [[0, 1, 2, 5, 7], [6, 2, 3], [4, 4, 0], [3], list(range(10)), [0, 2, 4, 6, 8]])
def test_gather_keeps_exactly_the_selected_rows_in_one_call(double, backend, inputs, index):
    """Compaction is one gather engine call (plus the index upload), however scattered the rows: issue 23 item 4,
    where one device-to-device copy per run of consecutive rows made ~B/2 driver calls."""
    x = inputs[:10]
    launch = backend.launch(0, backend.to_device(x), 0)
    feats, logits = backend.to_host(launch.features), backend.to_host(launch.logits)
    before = len(double.ops)
    g = backend.gather(launch.features, np.array(index), 0)
    ops = [(k, info) for k, _, info in double.ops[before:] if k in ("dtod", "htod", "execute")]
    assert [k for k, _ in ops] == ["htod", "execute"] and ops[0][1]["bytes"] == 4 * len(index)  # int32 rows
    np.testing.assert_array_equal(backend.to_host(g), feats[index])
    last = backend.lanes - 1
    np.testing.assert_array_equal(backend.to_host(backend.gather(launch.logits, np.array(index), last)), logits[index])


def test_gather_with_a_mask_empty_and_bad_index(backend, inputs):
    launch = backend.launch(0, backend.to_device(inputs[:6]), 0)
    logits = backend.to_host(launch.logits)
    mask = np.array([True, False, True, True, False, False])
    np.testing.assert_array_equal(backend.to_host(backend.gather(launch.logits, mask)), logits[mask])
    empty = backend.gather(launch.logits, np.array([], dtype=np.int64))
    assert backend.to_host(empty).shape == (0, logits.shape[1])
    with pytest.raises(EdgeBranchyError, match="empty batch"):
        backend.launch(1, backend.gather(launch.features, np.array([], dtype=np.int64)))
    with pytest.raises(EdgeBranchyError, match="out of range"):
        backend.gather(launch.logits, np.array([6]))
    with pytest.raises(EdgeBranchyError, match="row numbers"):
        backend.gather(launch.logits, np.array([0.5]))


def test_compacted_features_feed_the_next_segment(double, art, backend, inputs):
    x = inputs[:9]
    keep = np.array([1, 2, 3, 7])
    ref0 = engine_run(art, backend, "seg0", x)
    ref1 = engine_run(art, backend, "seg1", ref0["features"][keep])
    l0 = backend.launch(0, backend.to_device(x), 0)
    l1 = backend.launch(1, backend.gather(l0.features, keep, 0), 0)
    assert l1.batch == 4
    close(l1.entropy(), ref1["entropy"])


# ---------------------------------------------------------------- lanes and events

def test_lane1_waits_for_lane0_on_the_gpu_and_sees_its_results(double, art, backend, inputs):
    two_lanes(backend)
    x = inputs[:8]
    l0 = backend.launch(0, backend.to_device(x), 0)
    before = len(double.ops)
    l1 = backend.launch(1, l0.features, 1)
    lane0, lane1 = streams_of(backend)[:2]
    ops = [(k, h, info) for k, h, info in double.ops[before:] if h == lane1]
    kinds = [k for k, _, _ in ops]
    assert kinds.index("wait") < kinds.index("execute") and ops[kinds.index("wait")][2]["on"] == lane0
    assert double.pending() > 0  # nothing ran yet: both lanes are queued
    ref1 = engine_run(art, backend, "seg1", engine_run(art, backend, "seg0", x)["features"])
    close(l1.entropy(), ref1["entropy"])


def test_without_the_event_wait_lane1_would_read_stale_features(double, backend, inputs, monkeypatch):
    """The double's queued streams make a missing cross-lane wait visible (so the test above can fail)."""
    two_lanes(backend)
    x = inputs[:8]
    l0 = backend.launch(0, backend.to_device(x), 0)
    ref = backend.launch(1, l0.features, 1).entropy()
    with monkeypatch.context() as m:
        m.setattr(type(backend._streams[1]), "wait_for_event", lambda self, ev: None)
        l0 = backend.launch(0, backend.to_device(inputs[8:16]), 0)
        l1 = backend.launch(1, l0.features, 1)
        stale = l1.entropy()
        l0.entropy()
    assert not np.allclose(stale, backend.launch(1, l0.features, 1).entropy())
    assert ref.shape == stale.shape


def test_recycled_buffer_waits_for_its_last_reader(double, art, backend, inputs):
    """Features dropped by the host while lane 1 still has to read them: the buffer is recycled for
    lane 0's next launch, which must wait (on the GPU) for lane 1's read before overwriting it."""
    two_lanes(backend)
    import gc

    x1, x2 = inputs[:8], inputs[8:16]
    l0 = backend.launch(0, backend.to_device(x1), 0)
    l1 = backend.launch(1, l0.features, 1)
    old = l0.features.ptr
    del l0
    gc.collect()
    l0b = backend.launch(0, backend.to_device(x2), 0)
    assert l0b.features.ptr == old  # the buffer really was recycled
    l0b.entropy()  # runs lane 0 first
    ref = engine_run(art, backend, "seg1", engine_run(art, backend, "seg0", x1)["features"])
    close(l1.entropy(), ref["entropy"])


def test_entropy_waits_only_for_its_own_launch(double, backend, inputs):
    two_lanes(backend)
    a = backend.launch(0, backend.to_device(inputs[:8]), 0)
    b = backend.launch(0, backend.to_device(inputs[8:16]), 1)
    lane1 = backend._streams[1]
    a.entropy()
    assert lane1._pending, "lane 1's work ran although only lane 0's entropy was read"
    assert any(op.kind == "execute" for op in lane1._pending)
    b.entropy()
    assert not lane1._pending


def test_same_segment_on_both_lanes_uses_two_contexts(double, backend, inputs):
    two_lanes(backend)
    a = backend.launch(0, backend.to_device(inputs[:4]), 0)
    b = backend.launch(0, backend.to_device(inputs[4:8]), 1)
    ctxs = {info["context"] for k, _, info in double.ops if k == "execute"}
    assert len(ctxs) == 2
    assert a.entropy().shape == b.entropy().shape == (4,)


def test_gpu_time_per_launch_when_timing_is_on(art, inputs):
    with TensorRTBackend(art, {"timing": True}) as b:
        launch = b.launch(0, b.to_device(inputs[:4]), 0)
        launch.entropy()
        assert launch.timing["gpu_ms"] >= 0 and launch.timing["wait_ms"] >= 0
    with TensorRTBackend(art) as b:
        launch = b.launch(0, b.to_device(inputs[:4]), 0)
        launch.entropy()
        assert launch.timing == {}


# ---------------------------------------------------------------- limits, options, lifecycle

def test_batch_above_the_profile_is_refused(backend, inputs):
    big = np.concatenate([inputs, inputs])[:MAX_BATCH + 1]
    with pytest.raises(EdgeBranchyError, match=r"maximum batch 16.*smaller batch or rebuild.*max_batch"):
        backend.to_device(big)
    with pytest.raises(EdgeBranchyError, match="maximum batch 16"):
        backend.run_baseline(big)
    assert backend.to_device(big[:MAX_BATCH]).batch == MAX_BATCH


def test_bad_inputs_and_options(art, backend, inputs):
    with pytest.raises(EdgeBranchyError, match="shape"):
        backend.to_device(inputs[:2, :, :10])
    with pytest.raises(EdgeBranchyError, match="tensor of this backend"):
        backend.launch(0, inputs[:2])
    with pytest.raises(EdgeBranchyError, match="does not fit"):
        backend.launch(1, backend.to_device(inputs[:2]))
    with pytest.raises(EdgeBranchyError, match="lane"):
        backend.launch(0, backend.to_device(inputs[:2]), 2)
    with pytest.raises(EdgeBranchyError, match="unknown tensorrt option"):
        TensorRTBackend(art, {"streams": 3})
    with pytest.raises(EdgeBranchyError, match="precision"):
        TensorRTBackend(art, {"precision": "bf16"})


def test_describe_says_what_was_used(double, art, backend):
    d = backend.describe()
    rec = art.manifest["tensorrt"][d["device_key"]]
    assert (d["backend"], d["tensorrt"], d["gpu"], d["compute_capability"]) == \
        ("tensorrt", double.state.version, GPU[0], "8.7")
    assert d["precision"] == "fp16" and d["precision_mode"] == rec["precision_mode"]
    assert d["precision_mode"] == ("builder-flag" if double.state.version.startswith("8.") else "strongly-typed-graph")
    assert d["dla_core"] is None and d["max_batch"] == MAX_BATCH and d["lanes"] == backend.lanes == 2
    assert d["pci_bus_id"] == double.state.pci_bus_id and d["host_wait"] == "spin" and d["copy_stream"] is True


def test_buffers_are_allocated_once_and_reused(art, backend, inputs):
    from edgebranchy.runtime.runner import EarlyExitRunner

    runner = EarlyExitRunner(art, backend)
    runner.predict(inputs[:16])
    stats = backend.describe()["device_buffers"], backend.describe()["pinned_buffers"]
    for i in range(4):
        runner.predict(inputs[16 * i:16 * i + 16])
    assert (backend.describe()["device_buffers"], backend.describe()["pinned_buffers"]) == stats


def test_closed_backend_refuses_work_and_frees_memory(double, art, inputs):
    b = TensorRTBackend(art)
    t = b.to_device(inputs[:2])
    b.close()
    b.close()
    with pytest.raises(EdgeBranchyError, match="closed"):
        b.launch(0, t)
    b._context.push()
    with pytest.raises(StrictDoubleError, match="not device memory"):
        double.driver.memcpy_dtod_async(t.ptr, t.ptr, 4, b._streams[0])
    double.driver.Context.pop()
    double.violations.clear()


def test_choosing_between_engine_sets(double, art):
    build_engines(art.root, SETTINGS, precision="fp32", log=lambda s: None)
    a = Artifact.load(art.root)
    with pytest.raises(EdgeBranchyError, match="several engine sets"):
        TensorRTBackend(a)
    with TensorRTBackend(a, {"precision": "fp32"}) as b:
        assert b.describe()["precision"] == "fp32"


def test_engines_of_another_gpu_are_refused(art, monkeypatch):
    install(monkeypatch, "10.3.0", gpu=("Jetson AGX Xavier", (7, 2)))
    with pytest.raises(EdgeBranchyError, match=r"another device.*edgebranchy build "):
        TensorRTBackend(art)


def test_works_in_a_thread_without_a_current_context(double, backend, inputs):
    out = {}

    lane = backend.lanes - 1

    def work():
        launch = backend.launch(0, backend.to_device(inputs[:5]), lane)
        out["e"] = launch.entropy()
        out["l"] = backend.to_host(backend.gather(launch.logits, np.array([0, 4]), lane))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert out["e"].shape == (5,) and out["l"].shape[0] == 2


# ---------------------------------------------------------------- the runner on this backend

def test_runner_gives_the_answers_of_the_onnxruntime_backend(double, art, backend, inputs):
    from edgebranchy.runtime.runner import EarlyExitRunner

    assert not EarlyExitRunner(art, backend).speculate  # opt-in (issue 11 item 4)
    # exits equal ONNX Runtime's only where both compute in FP32: an FP16 engine may flip a borderline exit
    art, backend = fp32_engines(art)
    ref = EarlyExitRunner(art, "onnxruntime")
    trt = EarlyExitRunner(art, backend, speculate=backend.lanes > 1)
    for lo in (0, 16, 32):
        want, got = ref.predict(inputs[lo:lo + 16]), trt.predict(inputs[lo:lo + 16])
        np.testing.assert_array_equal(got.exits, want.exits)
        np.testing.assert_array_equal(got.labels, want.labels)
    assert 0 < (got.exits == 0).sum() < 16 or 0 < (want.exits == 0).sum()
    batches = [inputs[i:i + 8] for i in range(0, 64, 8)]
    for g, w in zip(trt.predict_stream(batches, pipelined=True), [ref.predict(b) for b in batches]):
        np.testing.assert_array_equal(g.exits, w.exits)
        np.testing.assert_array_equal(g.labels, w.labels)
    np.testing.assert_array_equal(trt.baseline(inputs[:16]), ref.baseline(inputs[:16]))
    plain = EarlyExitRunner(art, backend, speculate=False)  # compaction path, and the batch-1 path
    np.testing.assert_array_equal(plain.predict(inputs[:16]).exits, ref.predict(inputs[:16]).exits)
    for i in range(4):
        one, want = plain.predict(inputs[i:i + 1]), ref.predict(inputs[i:i + 1])
        assert (one.labels[0], one.exits[0]) == (want.labels[0], want.exits[0])


# ---------------------------------------------------------------- the double fails where CUDA/TensorRT would

def test_double_is_strict_about_streams_addresses_shapes_and_memory(monkeypatch, tiny_artifact, tmp_path):
    d = install(monkeypatch, "10.3.0", gpu=GPU)
    import importlib

    shutil.copytree(tiny_artifact, tmp_path / "art")
    build_engines(tmp_path / "art", SETTINGS, log=lambda s: None)
    art = Artifact.load(tmp_path / "art")

    importlib.import_module("pycuda.autoprimaryctx")
    cuda = d.driver
    from edgebranchy.tensorrt.device import device_facts
    from edgebranchy.tensorrt.load import load_engine

    engine = load_engine(art, device_facts(d.trt)).engines["seg1"]
    ctx = engine.create_execution_context()
    s1, s2 = cuda.Stream(), cuda.Stream()
    with pytest.raises(StrictDoubleError, match="input shape"):
        ctx.execute_async_v3(s1.handle)
    feat = tuple(art.manifest["segments"][1]["input_shape"])  # segment 1 takes segment 0's features
    assert ctx.set_input_shape("x", (MAX_BATCH + 1, *feat)) is False
    assert ctx.set_input_shape("x", (2, *feat)) is True
    with pytest.raises(StrictDoubleError, match="address"):
        ctx.execute_async_v3(s1.handle)
    for name, n in (("x", 2 * 5 * 30 * 30 * 4), ("logits", 80), ("entropy", 8)):
        ctx.set_tensor_address(name, int(cuda.mem_alloc(n)))
    with pytest.raises(StrictDoubleError, match="default stream"):
        ctx.execute_async_v3(0)
    assert ctx.execute_async_v3(s1.handle) is True
    with pytest.raises(StrictDoubleError, match="another stream"):
        ctx.execute_async_v3(s2.handle)
    s1.synchronize()
    with pytest.raises(StrictDoubleError, match="page-locked"):
        cuda.memcpy_dtoh_async(np.empty(8, np.uint8), cuda.mem_alloc(8), s1)
    with pytest.raises(StrictDoubleError, match="non-default"):
        cuda.memcpy_htod_async(cuda.mem_alloc(8), cuda.pagelocked_empty(8, np.uint8))
    with pytest.raises(StrictDoubleError, match="outside allocation"):
        cuda.memcpy_dtod_async(cuda.mem_alloc(8), cuda.mem_alloc(8), 16, s1)
    errors = {}
    t = threading.Thread(target=lambda: errors.setdefault("e", _catch(lambda: cuda.mem_alloc(8))))
    t.start()
    t.join()
    assert "no current CUDA context" in str(errors["e"])
    with pytest.raises(ImportError, match="autoprimaryctx"):
        importlib.import_module("pycuda.autoinit")
    assert len(d.violations) == 9


def _catch(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


# ---------------------------------------------------------------- issues 11 and 23: profiles per context

def test_every_lane_context_holds_its_lanes_profile(double, art, backend, inputs):
    """Issue 23 item 1. 8.5: the first context gets profile 0, later ones -1, and each lane needs its own profile;
    8.6/9.x: a context after the first gets -1 even with PROFILE_SHARING_0806 and must select profile 0 itself;
    10+: every context gets 0 (NvInferRuntime.h createExecutionContext; fake_trt's table). Every version runs
    two lanes, each context holding its lane's profile, and gives the ONNX Runtime answers."""
    from edgebranchy.runtime.runner import EarlyExitRunner

    version = tuple(int(p) for p in double.state.version.split(".")[:2])
    assert backend.lanes == 2 and backend.record["profile_sharing"] is (version >= (8, 6))
    assert backend.record["lane_profiles"] == (2 if version < (8, 6) else 1)
    before = len(double.ops)
    batches = [inputs[i:i + 8] for i in range(0, 32, 8)]
    ref = EarlyExitRunner(art, "onnxruntime")
    got = list(EarlyExitRunner(art, backend).predict_stream(batches, pipelined=True))
    assert len(got) == len(batches)
    want = [0, 1] if version < (8, 6) else [0, 0]
    for eng in backend._segments:
        assert [c.active_optimization_profile for c in eng.contexts if c is not None] == want[:sum(
            c is not None for c in eng.contexts)]
    assert [c.active_optimization_profile for c in backend._segments[1].contexts] == [0, want[1]]
    lane1 = streams_of(backend)[1]
    selected = [info["profile"] for k, h, info in double.ops[before:] if k == "profile" and h == lane1]
    assert selected == ([] if version >= (10, 0) else [want[1]] * len(selected)) and (version >= (10, 0) or selected)
    art32, fp32 = fp32_engines(art)
    runner = EarlyExitRunner(art32, fp32, speculate=True)
    ref = EarlyExitRunner(art32, "onnxruntime")
    np.testing.assert_array_equal(runner.predict(inputs[:16]).exits, ref.predict(inputs[:16]).exits)
    fp32.close()


def _raw_engine(d, root, version_flags: int, sharing: bool):
    """Segment 0's engine built straight through the double's API, with or without PROFILE_SHARING_0806."""
    trt = d.trt
    logger = trt.Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(version_flags)
    assert trt.OnnxParser(network, logger).parse((root / "segments" / "seg0.onnx").read_bytes())
    shape = tuple(Artifact.load(root).input_shape)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, *shape), (1, *shape), (4, *shape))
    config.add_optimization_profile(profile)
    if sharing:
        config.set_preview_feature(trt.PreviewFeature.PROFILE_SHARING_0806, True)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config)), shape


@pytest.mark.parametrize("sharing", [False, True])
def test_double_refuses_a_second_86_context_without_an_explicit_profile(monkeypatch, tiny_artifact, sharing):
    """8.6.1: the second context starts with profile -1 (NvInferRuntime.h 8.6.1 lines 1749-1752), so shapes and
    enqueue fail until it selects a profile; with PROFILE_SHARING_0806 it may select profile 0 (NvInfer.h 8.6.1
    lines 9033-9037), without it the selection raises (Py8.6.1 pyCore.cpp 353-357)."""
    d = install(monkeypatch, "8.6.1", gpu=GPU)
    cuda = d.driver
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        engine, shape = _raw_engine(d, tiny_artifact, 1 << int(d.trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH),
                                    sharing)
        a, b = engine.create_execution_context(), engine.create_execution_context()
        assert (a.active_optimization_profile, b.active_optimization_profile) == (0, -1)
        assert b.set_input_shape("x", (1, *shape)) is False
        stream = cuda.Stream()
        assert b.execute_async_v3(stream.handle) is False
        if sharing:
            assert b.set_optimization_profile_async(0, stream.handle) is True
            assert b.active_optimization_profile == 0 and b.set_input_shape("x", (1, *shape)) is True
        else:
            with pytest.raises(RuntimeError, match="held by another"):
                b.set_optimization_profile_async(0, stream.handle)
        del a, b  # a context that dies frees profile 0 for the next one (8.6: "no other execution contexts")
        import gc

        gc.collect()
        assert engine.create_execution_context().active_optimization_profile == 0
    finally:
        cuda.Context.pop()
    assert not d.violations  # (the test itself uses trt.Logger, a name the package does not)


def test_double_gives_a_second_context_no_profile_on_85(monkeypatch, tiny_artifact, tmp_path):
    d = install(monkeypatch, "8.5.2", gpu=GPU)
    shutil.copytree(tiny_artifact, tmp_path / "art")
    cuda = d.driver
    cuda.init()
    ctx = cuda.Device(0).retain_primary_context()
    ctx.push()
    try:
        engine, shape = _raw_engine(d, tmp_path / "art",
                                    1 << int(d.trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH), False)
        a, b = engine.create_execution_context(), engine.create_execution_context()
        assert (a.active_optimization_profile, b.active_optimization_profile) == (0, -1)
        assert b.set_input_shape("x", (1, *shape)) is False
        with pytest.raises(RuntimeError, match="held by another"):
            b.set_optimization_profile_async(0, cuda.Stream().handle)
        with pytest.raises(RuntimeError, match="index 1 of 1"):
            b.set_optimization_profile_async(1, cuda.Stream().handle)
    finally:
        cuda.Context.pop()
    d.violations.clear()


# ---------------------------------------------------------------- issue 11: pycuda lifetimes (items 6 and 8)

def test_pipeline_threads_leave_no_cuda_object_to_the_gc(double, art, inputs):
    """Events dropped on eb-seg threads with no context current leak in pycuda ("could not be cleaned up");
    pinned buffers are freed by close(), not by the garbage collector."""
    import gc

    from edgebranchy.runtime.runner import EarlyExitRunner

    b = TensorRTBackend(art)
    runner = EarlyExitRunner(art, b, speculate=b.lanes > 1)
    batches = [inputs[i:i + 8] for i in range(0, 64, 8)]
    assert len(list(runner.predict_stream(batches, pipelined=True))) == len(batches)
    gc.collect()
    assert double.state.leaks == []
    b.close()
    gc.collect()
    assert double.state.leaks == [] and not double.state._pinned  # every HostAllocation freed explicitly


def test_sync_events_cannot_time_and_timing_events_can(double, art, inputs):
    with TensorRTBackend(art, {"timing": True}) as b:
        launch = b.launch(0, b.to_device(inputs[:2]), 0)
        launch.entropy()
        assert launch.timing["gpu_ms"] >= 0
        with b._current():
            ev = b._event(0)  # a sync-only event (DISABLE_TIMING)
            with pytest.raises(double.driver.LogicError, match="DISABLE_TIMING"):
                ev.time_till(b._event(0))
        double.violations.clear()


# ---------------------------------------------------------------- issue 11: DLA (item 2)

def test_dla_engines_have_a_fixed_profile_and_pad_compacted_batches(monkeypatch, tiny_artifact, tmp_path, inputs):
    """DLA: profile min = opt = max (NvInfer.h addInput); runtime.DLA_core set before deserialising."""
    from edgebranchy.runtime.runner import EarlyExitRunner
    from trt_double import fake_trt

    d = install(monkeypatch, "8.6.1", gpu=GPU, dla_cores=2)
    shutil.copytree(tiny_artifact, tmp_path / "art")
    r = build_engines(tmp_path / "art", {**SETTINGS, "dla_core": 1, "gpu_fallback": True, "opt_batch": 4},
                      log=lambda s: None)
    h = fake_trt.plan_header((tmp_path / "art" / r["files"]["seg1"]).read_bytes())
    assert all(p[0][0] == p[1][0] == p[2][0] == 4 for p in h["profile"].values()) and h["dla_core"] == 1
    assert r["fixed_batch"] == 4 and r["max_batch"] == 4
    art = Artifact.load(tmp_path / "art")
    with TensorRTBackend(art) as b:
        runner = EarlyExitRunner(art, b)
        full = runner.predict(inputs[:4], return_logits=True)
        for n in (3, 1):  # compacted and smaller batches run padded to 4: the same rows, the same answers
            got = runner.predict(inputs[:n], return_logits=True)
            np.testing.assert_array_equal(got.exits, full.exits[:n])
            np.testing.assert_array_equal(got.logits, full.logits[:n])
    assert_clean(d)
