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
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.measure.latency import ci95_across_trials, median_ci95, summarize

SCHEMA = "edgebranchy.results"
SCHEMA_VERSION = 1
VARIANTS = ("baseline", "branchy")


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
    force: bool = False  # replace an earlier results file and its trial log at `out`


def _runtime_options(backend: str, profile, given: dict) -> dict:
    """Backend options from the profile's [runtime] table, overridden by explicit ones."""
    opts = {}
    if backend == "onnxruntime":
        rt = profile.runtime
        opts = {"intra_op_threads": rt.intra_op_threads, "allow_spinning": rt.allow_spinning,
                "graph_optimization": rt.graph_optimization, "execution_mode": rt.execution_mode}
    return {**opts, **given}


def trial_log_path(out: str | os.PathLike) -> Path:
    """Where the trials of the results file `out` are streamed: OUT.jsonl."""
    out = Path(out)
    return out.with_name(out.name + ".jsonl")


def check_outputs(cfg: BenchConfig) -> None:
    """Refuse, before anything runs, a results path that would destroy an input or an earlier run."""
    from edgebranchy.util.outputs import check_output

    inputs = [cfg.artifact, cfg.backend_options.get("checkpoint")]
    if cfg.profile and Path(cfg.profile).suffix == ".toml":
        inputs.append(cfg.profile)
    log = trial_log_path(cfg.out)
    if log.exists() and not cfg.force:
        raise EdgeBranchyError(f"{log} holds the trial log of an earlier run: continue that run with --resume, "
                               f"or choose a new --out (or pass --force to replace it and {cfg.out})")
    check_output(cfg.out, inputs, "results", force=cfg.force, data_dirs=[cfg.data_dir])
    check_output(log, inputs, "trial-log", force=cfg.force, data_dirs=[cfg.data_dir])


class _Stream:
    """JSON lines, one flushed and fsynced line per finished trial."""

    def __init__(self, path: Path, replace: bool = False):
        from edgebranchy.util.files import writing

        self.path = path
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # "x": never truncate a log that appeared since check_outputs
                self.f = open(path, "w" if replace else "x", encoding="utf-8")
            except FileExistsError:
                raise EdgeBranchyError(f"{path} appeared while the bench started; choose a new --out") from None

    def write(self, obj: dict) -> None:
        from edgebranchy.util.files import writing

        with writing(self.path):
            self.f.write(json.dumps(obj, allow_nan=False) + "\n")
            self.f.flush()
            os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Run the benchmark described by `cfg`; returns the results document (also written to cfg.out)."""
    from edgebranchy.data import load_dataset
    from edgebranchy.measure.environment import collect_environment
    from edgebranchy.measure.power.select import select_meter
    from edgebranchy.measure.profiles import resolve_profile
    from edgebranchy.runtime.runner import EarlyExitRunner
    from edgebranchy.util.files import atomic_write_json

    check_config(cfg)
    check_outputs(cfg)
    profile, profile_reason = resolve_profile(cfg.profile)
    log(f"profile: {profile.name} ({profile_reason})")
    options = _runtime_options(cfg.backend, profile, cfg.backend_options)
    runner = EarlyExitRunner(cfg.artifact, backend=cfg.backend, options=options)
    try:
        return _bench(cfg, runner, profile, profile_reason, log, progress, load_dataset, collect_environment,
                      select_meter, atomic_write_json)
    finally:
        runner.close()


def _bench(cfg, runner, profile, profile_reason, log, progress, load_dataset, collect_environment, select_meter,
           atomic_write_json) -> dict:
    art = runner.artifact
    backend = runner.backend
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

    def run_variant(name: str) -> tuple[list[float], list[np.ndarray], list[np.ndarray]]:
        """One pass: per-batch latency (ms), labels and exits."""
        lat, labels, exits = [], [], []
        for xb in batches:
            t0 = time.perf_counter_ns()
            if name == "baseline":
                lab = runner.baseline(xb)
                sync()
                ex = None
            else:
                p = runner.predict(xb)
                sync()
                lab, ex = p.labels, p.exits
            lat.append((time.perf_counter_ns() - t0) / 1e6)
            labels.append(lab)
            exits.append(ex)
        return lat, labels, exits

    def run_stream() -> tuple[list[float], list[np.ndarray], list[np.ndarray]]:
        """One pipelined pass (throughput mode): per-batch latency is the pass time / batches."""
        t0 = time.perf_counter_ns()
        preds = list(runner.predict_stream(batches, pipelined=True))
        sync()
        per = (time.perf_counter_ns() - t0) / 1e6 / len(batches)
        return [per] * len(batches), [p.labels for p in preds], [p.exits for p in preds]

    # warm-up: both variants, so caches and thread pools are steady
    for name in VARIANTS:
        for xb in batches[: max(1, min(cfg.warmup, len(batches)))]:
            runner.baseline(xb) if name == "baseline" else runner.predict(xb)
    sync()

    out = Path(cfg.out)
    stream = _Stream(trial_log_path(out), replace=cfg.force)
    env = collect_environment()
    env.update({"profile": profile.name, "profile_source": profile_reason, "profile_settings": profile.to_dict(),
                "backend": backend.name, "backend_options": backend.describe(),
                "precision": backend.describe().get("precision", "fp32"), "artifact": str(art.root),
                "artifact_sha256": art.sha256(), "model": art.manifest["model"].get("name"),
                "dataset": cfg.dataset, "thresholds": runner.thresholds, "power_source": meter.name,
                "power_source_reason": power_reason, "power_meter": meter.describe(), "pipelined": cfg.pipelined})
    stream.write({"type": "start", "environment": env, "config": _config(cfg, n)})

    meter.start()
    time.sleep(cfg.idle_s)
    idle = meter.stop()
    idle_w = idle.watts
    stream.write({"type": "idle", "reading": idle.to_dict()})
    log(f"idle power with the models loaded: {idle_w:.2f} W ({idle.kind}, {idle.source})")

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.trials * 2, desc="bench trials", unit="trial", leave=False, disable=None)
    trials = {v: [] for v in VARIANTS}
    first = {}
    try:
        for t in range(cfg.trials):
            for name in VARIANTS:
                lat: list[float] = []
                passes = 0
                meter.start()
                t0 = time.perf_counter()
                while True:
                    if name == "branchy" and cfg.pipelined:
                        pl, labels, exits = run_stream()
                    else:
                        pl, labels, exits = run_variant(name)
                    lat += pl
                    passes += 1
                    if name not in first:
                        first[name] = (np.concatenate(labels), None if exits[0] is None else np.concatenate(exits))
                    if time.perf_counter() - t0 >= cfg.min_window_s:
                        break
                reading = meter.stop()
                inferences = passes * n
                rec = {"type": "trial", "trial": t, "variant": name, "passes": passes, "inferences": inferences,
                       "latency_ms": lat, "energy": reading.to_dict(),
                       "energy_per_inference_mj": reading.joules / inferences * 1e3,
                       "dynamic_per_inference_mj": (reading.joules - idle_w * reading.seconds) / inferences * 1e3}
                trials[name].append(rec)
                stream.write(rec)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(variant=name, p50=f"{np.median(lat):.3f}ms")
                _maybe_test_kill(t, name)
    finally:
        if bar is not None:
            bar.close()
        meter.close()
    seg_ms = _segment_latencies(runner, batches[0], cfg.segment_repeats, sync)
    results = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "config": _config(cfg, n),
        "idle": {"watts": idle_w, "seconds": idle.seconds, "kind": idle.kind, "source": idle.source},
        "variants": {},
        "calibration": art.manifest.get("calibration"),
    }
    for name in VARIANTS:
        labels, exits = first[name]
        recs = trials[name]
        all_lat = [v for r in recs for v in r["latency_ms"]]
        s = summarize(all_lat)
        per_trial_mean = [float(np.mean(r["latency_ms"])) for r in recs]
        total_s = sum(r["energy"]["seconds"] for r in recs)
        v = {
            "accuracy": float(np.mean(labels == y)),
            "latency_ms": {"per": "sample" if bs == 1 else "batch", "samples": all_lat,
                           **{k: s[k] for k in ("p50", "p90", "p99", "p999", "mean")},
                           "ci95": list(ci95_across_trials(per_trial_mean))},
            "throughput_sps": sum(r["inferences"] for r in recs) / total_s if total_s > 0 else None,
            "energy": {"kind": recs[0]["energy"]["kind"], "source": recs[0]["energy"]["source"],
                       "per_inference_mj": median_ci95([r["energy_per_inference_mj"] for r in recs]),
                       "dynamic_per_inference_mj": median_ci95([r["dynamic_per_inference_mj"] for r in recs]),
                       "trials": [r["energy"] for r in recs]},
        }
        if name == "branchy":
            counts = np.bincount(exits, minlength=runner.num_exits)
            v["exit_counts"] = counts.tolist()
            v["exit_fractions"] = (counts / n).tolist()
            v["exit_accuracy"] = [float(np.mean(labels[exits == k] == y[exits == k])) if c else None
                                  for k, c in enumerate(counts)]
            v["segment_latency_ms"] = seg_ms
        results["variants"][name] = v
    atomic_write_json(out, results)
    stream.write({"type": "done", "results": str(out)})
    stream.close()
    return results


def check_config(cfg: BenchConfig) -> None:
    """Types and ranges of the numeric settings (the API's check; the CLI's argument types say the same)."""
    import math

    for name, low in (("batch_size", 1), ("samples", 1), ("trials", 1), ("warmup", 0), ("segment_repeats", 1)):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise EdgeBranchyError(f"--{name.replace('_', '-')} must be a whole number >= {low}, got {v!r}")
    for name, opt in (("min_window_s", "--min-window"), ("idle_s", "--idle")):
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise EdgeBranchyError(f"{opt} must be a finite number of seconds >= 0, got {v!r}")


def _config(cfg: BenchConfig, n: int) -> dict:
    return {"batch_size": cfg.batch_size, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined}


def _segment_latencies(runner, xb: np.ndarray, repeats: int, sync) -> list[float]:
    """Median time of each bare segment call (launch + entropy read-back) at the bench's batch size."""
    b = runner.backend
    out = []
    inp = b.to_device(xb)
    for k in range(runner.num_exits):
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            launch = b.launch(k, inp, 0)
            launch.entropy()
            sync()
            times.append((time.perf_counter_ns() - t0) / 1e6)
        out.append(float(np.median(times)))
        inp = launch.features
    return out


def _maybe_test_kill(trial: int, variant: str) -> None:
    # Test hook: a real SIGKILL right after the given trial was written, e.g. "1:baseline".
    if os.environ.get("EDGEBRANCHY_TEST_KILL_BENCH") == f"{trial}:{variant}":
        os.kill(os.getpid(), signal.SIGKILL)
