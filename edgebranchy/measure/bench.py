"""`edgebranchy bench`: latency and energy of the baseline and the BranchyNet on the same samples.

Trials are interleaved (baseline, branchy, baseline, ...), each one energy
window of at least `min_window_s` seconds (whole passes over the samples), with
idle power measured first with the models loaded. Every finished trial is
appended to `<out>.jsonl` at once, so a killed bench keeps it; the final
schema-versioned JSON is written atomically at the end.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.results import assemble_results
from edgebranchy.measure.trials import TrialPlan, run_trials, segment_latencies, warm_up


@dataclass
class BenchConfig:
    artifact: str
    out: str
    backend: str = "onnxruntime"
    backend_options: dict = field(default_factory=dict)
    profile: str = "auto"
    power: str | None = None  # override of the profile's power source
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    batch_size: int = 1
    samples: int = 1000
    trials: int = 5
    warmup: int = 50  # batches per variant before measuring
    min_window_s: float = 2.0
    idle_s: float = 3.0
    segment_repeats: int = 200
    pipelined: bool = False
    # Speculation (segment k+1 on the second lane while the host decides exit k) is off unless asked for:
    # no benchmark on a GPU has shown it pays yet, and at batch 1 it doubles the GPU work of a sample that
    # leaves early. Turn it on with --speculate and compare; its discarded work is reported separately.
    speculate: bool = False


def backend_can_speculate(backend: str) -> bool:
    """Speculation needs asynchronous launches on two lanes (GPU streams)."""
    return backend in ("tensorrt", "torch")


def _runtime_options(backend: str, profile, given: dict) -> dict:
    """Backend options from the profile's [runtime] table (the keys the backend declares), overridden by `given`."""
    from edgebranchy.runtime.backends.base import backend_options
    from edgebranchy.runtime.backends.options import profile_options

    return {**profile_options(backend_options(backend), profile.runtime), **given}


class _Stream:
    """JSON lines, one flushed and fsynced line per finished trial."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "w", encoding="utf-8")

    def write(self, obj: dict) -> None:
        self.f.write(json.dumps(obj, allow_nan=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print, progress: bool = True,
              on_trial: Callable[[dict], None] | None = None) -> dict:
    """Run the benchmark described by `cfg`; returns the results document (also written to cfg.out).

    `on_trial(record)` is called after each finished trial is on disk in `<out>.jsonl`.
    """
    from edgebranchy.measure.profiles import resolve_profile
    from edgebranchy.runtime.runner import EarlyExitRunner

    for name in ("batch_size", "samples", "trials"):
        if getattr(cfg, name) < 1:
            raise EdgeBranchyError(f"--{name.replace('_', '-')} must be at least 1")
    if cfg.min_window_s < 0 or cfg.idle_s < 0:
        raise EdgeBranchyError("--min-window and --idle must be >= 0 seconds")
    profile, profile_reason = resolve_profile(cfg.profile)
    log(f"profile: {profile.name} ({profile_reason})")
    options = _runtime_options(cfg.backend, profile, cfg.backend_options)
    runner = EarlyExitRunner(cfg.artifact, backend=cfg.backend, options=options,
                             speculate=cfg.speculate and backend_can_speculate(cfg.backend))
    try:
        return _bench(cfg, runner, profile, profile_reason, log=log, progress=progress, on_trial=on_trial)
    finally:
        runner.close()


def _bench(cfg: BenchConfig, runner, profile, profile_reason: str, *, log: Callable[[str], None], progress: bool,
           on_trial: Callable[[dict], None] | None) -> dict:
    from edgebranchy.data import load_dataset
    from edgebranchy.measure.environment import collect_environment
    from edgebranchy.measure.power.select import select_meter
    from edgebranchy.util.files import atomic_write_json

    art, backend = runner.artifact, runner.backend
    data = load_dataset(cfg.dataset, cfg.data_dir)
    n = min(cfg.samples, len(data.test))
    if n < cfg.samples:
        log(f"note: {cfg.dataset} has {len(data.test)} test samples; using {n}")
    x = art.preprocess(data.test.x[:n])
    y = data.test.y[:n]
    bs = cfg.batch_size
    batches = [x[i:i + bs] for i in range(0, n, bs)]
    sync = backend.synchronize
    meter, power_reason = select_meter(profile, cfg.power, sync=sync)
    log(f"power: {power_reason}")
    warm_up(runner, batches, cfg.warmup, sync)
    forms = None
    if bs == 1 and runner.single_graph_available:  # both batch-1 forms, measured here; the faster runs below
        forms = {**runner.choose_form(x[:min(n, 300)]), "reason": runner.form_reason}
        log(f"batch-1 forms: segments {forms['segments_us']:.1f} us, single graph {forms['single_graph_us']:.1f} us "
            f"per sample -> {forms['choice']}")

    out = Path(cfg.out)
    stream = _Stream(out.with_name(out.name + ".jsonl"))
    env = collect_environment()
    env.update({"profile": profile.name, "profile_source": profile_reason, "profile_settings": profile.to_dict(),
                "backend": backend.name, "backend_options": backend.describe(),
                "precision": backend.describe().get("precision", "fp32"), "artifact": str(art.root),
                "artifact_sha256": art.sha256(), "model": art.manifest["model"].get("name"),
                "dataset": cfg.dataset, "thresholds": runner.thresholds, "power_source": meter.name,
                "power_source_reason": power_reason, "power_meter": meter.describe(), "pipelined": cfg.pipelined,
                "speculate": cfg.speculate, "batch1_form": runner.batch1_form if bs == 1 else "segments",
                "batch1_forms": forms})
    stream.write({"type": "start", "environment": env, "config": _config(cfg, n)})

    meter.start()
    time.sleep(cfg.idle_s)
    idle = meter.stop()
    stream.write({"type": "idle", "reading": idle.to_dict()})
    log(f"idle power with the models loaded: {idle.watts:.2f} W ({idle.kind}, {idle.source})")

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.trials * 2, desc="bench trials", unit="trial", leave=False, disable=None)

    def finished(rec: dict) -> None:
        stream.write(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(variant=rec["variant"], p50=f"{np.median(rec['latency_ms']):.3f}ms")
        if on_trial is not None:
            on_trial(rec)

    try:
        measured = run_trials(runner, batches, TrialPlan(cfg.trials, cfg.min_window_s, cfg.pipelined), meter,
                              idle.watts, sync=sync, on_trial=finished)
    finally:
        if bar is not None:
            bar.close()
        meter.close()
    seg_ms = segment_latencies(runner, batches[0], cfg.segment_repeats, sync)
    results = assemble_results(environment=env, config=_config(cfg, n), idle=idle, measured=measured, y=y,
                               batch_size=bs, num_exits=runner.num_exits, segment_latency_ms=seg_ms,
                               calibration=art.manifest.get("calibration"), speculate=runner.speculate)
    atomic_write_json(out, results)
    stream.write({"type": "done", "results": str(out)})
    stream.close()
    return results


def _config(cfg: BenchConfig, n: int) -> dict:
    return {"batch_size": cfg.batch_size, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined,
            "speculate": cfg.speculate}
