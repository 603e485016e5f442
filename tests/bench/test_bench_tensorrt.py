"""bench on the tensorrt backend (strict double): speculation is opt-in, and its discarded work is waited for
outside the latency and reported on its own (issue 11 item 4); bench passes the backend only its options."""
from __future__ import annotations

import shutil

from trt_double import assert_clean, install

from edgebranchy.bench.config import BenchConfig
from edgebranchy.bench.session import run_bench
from edgebranchy.runtime.backends.tensorrt import TensorRTBackend
from edgebranchy.tensorrt.build import build_engines

SETTINGS = {"precision": "fp32", "workspace_mb": 64, "builder_optimization_level": 3, "max_batch": 4,
            "dla_core": -1, "gpu_fallback": False}


def _cfg(art, out, **kw):
    base = dict(artifact=str(art), out=str(out), backend="tensorrt", profile="x86-cpu", power="estimate",
                dataset="synthetic", batch_size=1, samples=6, trials=1, warmup=1, min_window_s=0.0, idle_s=0.0,
                segment_repeats=2)
    base.update(kw)
    return BenchConfig(**base)


def test_speculation_is_opt_in_and_its_discarded_work_is_not_latency(monkeypatch, tiny_artifact, tmp_path):
    d = install(monkeypatch, "10.3.0")
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    build_engines(art, SETTINGS, log=lambda s: None)
    pending_at_sync = []
    orig = TensorRTBackend.synchronize

    def sync(self):
        pending_at_sync.append(d.pending())
        orig(self)

    monkeypatch.setattr(TensorRTBackend, "synchronize", sync)
    plain = run_bench(_cfg(art, tmp_path / "plain.json"), log=lambda s: None, progress=False)["runs"][0]
    assert plain["config"]["speculate"] is False
    assert plain["variants"]["branchy"]["speculation"] == {"on": False, "discarded_wait_ms": None}
    spec = run_bench(_cfg(art, tmp_path / "spec.json", speculate=True), log=lambda s: None, progress=False)["runs"][0]
    s = spec["variants"]["branchy"]["speculation"]
    assert spec["config"]["speculate"] is True and s["on"] is True
    assert s["discarded_wait_ms"]["p50"] >= 0
    assert any(n > 0 for n in pending_at_sync)  # speculative work was still queued after predict returned
    assert (spec["variants"]["branchy"]["exit_counts"] == plain["variants"]["branchy"]["exit_counts"])
    assert_clean(d)


def test_bench_cli_gives_the_tensorrt_backend_only_its_options(monkeypatch, tiny_artifact, tmp_path, capsys):
    """--device/--checkpoint are torch options, --threads ONNX Runtime's: with --backend tensorrt they are refused
    in one line naming their backend (never passed on), and a run without them goes through."""
    from edgebranchy.cli import main

    d = install(monkeypatch, "10.3.0")
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    build_engines(art, SETTINGS, log=lambda s: None)
    common = ["bench", str(art), "--backend", "tensorrt", "--profile", "x86-cpu", "--power", "estimate",
              "--dataset", "synthetic", "--samples", "4", "--trials", "1", "--warmup", "1", "--min-window", "0",
              "--idle", "0"]
    for flag, owner in ((["--device", "cuda"], "torch"), (["--threads", "2"], "onnxruntime")):
        rc = main([*common, *flag, "--out", str(tmp_path / "bad.json")])
        err = capsys.readouterr().err
        assert rc == 2 and f"{flag[0]} is an option of the {owner} backend" in err and "Traceback" not in err
        assert not (tmp_path / "bad.json").exists()
    rc = main([*common, "--out", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    assert_clean(d)


def test_gpu_bench_segment_timing_runs_on_the_tensorrt_backend(monkeypatch, tiny_artifact, tmp_path, synthetic_test):
    """Issue 23 item 10: `Launch.timing["gpu_ms"]` is one thing on every backend, a float in ms once `entropy()`
    returned (torch stored a callable, tensorrt a float, and benchmarks/gpu_bench.py called it: TypeError on
    tensorrt). The benchmark's per-segment table runs on the tensorrt backend."""
    import importlib.util

    import numpy as np

    from eb_testutil import ROOT

    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    gpu_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bench)
    d = install(monkeypatch, "10.3.0")
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    build_engines(art, SETTINGS, log=lambda s: None)
    with TensorRTBackend(str(art), {"timing": True}) as b:
        x = np.ascontiguousarray(synthetic_test[1][:1], dtype=np.float32)
        rows = gpu_bench.sync_costs(b, x, b.num_segments, repeats=3)
        launch = b.launch(0, b.to_device(x), 0)
        assert launch.timing == {}  # nothing measured before the launch is waited for
        launch.entropy()
        assert isinstance(launch.timing["gpu_ms"], float) and isinstance(launch.timing["wait_ms"], float)
    assert len(rows) == 2 and all(g >= 0 and h > 0 for g, h in rows)
    assert_clean(d)
