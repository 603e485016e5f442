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
from edgebranchy.measure.conditions import ConditionsReader
from edgebranchy.measure.conditions import summary_line as conditions_line
from edgebranchy.measure.exit_energy import summary_line as exit_energy_line
from edgebranchy.measure.quality import energy_summary, exit_drift, exit_energy, merge_external, throttle_line, \
    throttle_summary
from edgebranchy.measure.results import assemble_results
from edgebranchy.measure.throttle import TrialWatch
from edgebranchy.measure.trials import TrialPlan, run_trials, segment_latencies, warm_up
from edgebranchy.measure.warmup import WarmupCriterion, warm_up_variants


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
    force: bool = False  # replace an earlier results file and its trial log at `out`

    warmup_max: int = 2000  # calls per variant until latency is stable (warmup.py); 0: exactly `warmup` batches
    warmup_window: int = 20
    conditions: bool = True  # run conditions at both ends of every trial, throttled trials flagged
    conditions_root: str = "/"  # where sys/ is (tests: a fake tree)
    lock_clocks: bool = False  # jetson_clocks for the run, restored afterwards
    external_power: str | None = None  # CSV of an external meter, merged onto the trial windows
    gap_s: float | None = None  # idle seconds between trials (default 1 with external power, else 0)
    drift_alpha: float = 1e-3


def backend_can_speculate(backend: str) -> bool:
    """Speculation needs asynchronous launches on two lanes (GPU streams)."""
    return backend in ("tensorrt", "torch")


def _runtime_options(backend: str, profile, given: dict) -> dict:
    """Backend options from the profile's [runtime] table (the keys the backend declares), overridden by `given`."""
    from edgebranchy.runtime.backends.base import backend_options
    from edgebranchy.runtime.backends.options import profile_options

    return {**profile_options(backend_options(backend), profile.runtime), **given}


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


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print, progress: bool = True,
              on_trial: Callable[[dict], None] | None = None) -> dict:
    """Run the benchmark described by `cfg`; returns the results document (also written to cfg.out).

    `on_trial(record)` is called after each finished trial is on disk in `<out>.jsonl`.
    """
    from edgebranchy.measure.profiles import resolve_profile
    from edgebranchy.runtime.runner import EarlyExitRunner

    check_config(cfg)
    check_outputs(cfg)
    profile, profile_reason = resolve_profile(cfg.profile)
    log(f"profile: {profile.name} ({profile_reason})")
    options = _runtime_options(cfg.backend, profile, cfg.backend_options)
    from edgebranchy.measure.lock_clocks import maybe_locked

    with maybe_locked(cfg.lock_clocks, log=log):
        runner = EarlyExitRunner(cfg.artifact, backend=cfg.backend, options=options,
                                 speculate=cfg.speculate and backend_can_speculate(cfg.backend))
        try:
            return _bench(cfg, runner, profile, profile_reason, log=log, progress=progress, on_trial=on_trial)
        finally:
            runner.close()


def _bench(cfg: BenchConfig, runner, profile, profile_reason: str, *, log: Callable[[str], None], progress: bool,
           on_trial: Callable[[dict], None] | None) -> dict:
    from edgebranchy.data import load_dataset
    from edgebranchy.data.imagefolder import reader_options
    from edgebranchy.measure.environment import collect_environment
    from edgebranchy.measure.power.select import select_meter
    from edgebranchy.util.files import atomic_write_json

    art, backend = runner.artifact, runner.backend
    sync = backend.synchronize
    meter, power_reason = select_meter(profile, cfg.power, sync=sync)  # before the data: an unusable source fails fast
    log(f"power: {power_reason}")
    try:
        data = load_dataset(cfg.dataset, cfg.data_dir, image=reader_options(art.manifest["input"], cfg.dataset))
    except BaseException:
        meter.close()
        raise
    n = min(cfg.samples, len(data.test))
    if n < cfg.samples:
        log(f"note: {cfg.dataset} has {len(data.test)} test samples; using {n}")
    x = art.preprocess(data.test.x[:n])
    y = data.test.y[:n]
    bs = cfg.batch_size
    batches = [x[i:i + bs] for i in range(0, n, bs)]
    reader = ConditionsReader(cfg.conditions_root) if cfg.conditions else None
    cond_start = reader.read(tools=True) if reader else None
    if cond_start is not None:
        log(f"run conditions: {conditions_line(cond_start)}")
    if cfg.warmup_max:
        crit = WarmupCriterion(window=cfg.warmup_window, min_calls=cfg.warmup,
                               max_calls=max(cfg.warmup_max, 3 * cfg.warmup_window, cfg.warmup))
        warm = warm_up_variants(runner, batches, crit, sync)
        log("warm-up: " + "; ".join(f"{k} {w['calls']} calls, {'stable' if w['stable'] else 'NOT stable'}"
                                    for k, w in warm.items()) + f" ({crit.describe()})")
    else:
        warm_up(runner, batches, cfg.warmup, sync)
        warm = {"fixed_batches": cfg.warmup}
    forms = None
    if bs == 1 and runner.single_graph_available:  # both batch-1 forms, measured here; the faster runs below
        forms = {**runner.choose_form(x[:min(n, 300)]), "reason": runner.form_reason}
        log(f"batch-1 forms: segments {forms['segments_us']:.1f} us, single graph {forms['single_graph_us']:.1f} us "
            f"per sample -> {forms['choice']}")

    out = Path(cfg.out)
    stream = _Stream(trial_log_path(out), replace=cfg.force)
    env = collect_environment()
    env.update({"profile": profile.name, "profile_source": profile_reason, "profile_settings": profile.to_dict(),
                "backend": backend.name, "backend_options": backend.describe(),
                "precision": backend.describe().get("precision", "fp32"), "artifact": str(art.root),
                "artifact_sha256": art.sha256(), "model": art.manifest["model"].get("name"),
                "dataset": cfg.dataset, "thresholds": runner.thresholds, "power_source": meter.name,
                "power_source_reason": power_reason, "power_meter": meter.describe(), "pipelined": cfg.pipelined,
                "speculate": cfg.speculate,
                "conditions_start": cond_start, "clocks_locked_by_bench": cfg.lock_clocks,
                "batch1_form": runner.batch1_form if bs == 1 else "segments", "batch1_forms": forms})
    stream.write({"type": "start", "environment": env, "config": _config(cfg, n)})

    meter.start()
    time.sleep(cfg.idle_s)
    idle = meter.stop()
    stream.write({"type": "idle", "reading": idle.to_dict()})
    log(f"idle power with the models loaded: {idle.watts:.2f} W ({idle.kind}, {idle.source})"
        + (f"; NOT usable: {idle.flag}; no dynamic energy is reported" if idle.flag else ""))

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
        gap = cfg.gap_s if cfg.gap_s is not None else (1.0 if cfg.external_power else 0.0)
        measured = run_trials(runner, batches, TrialPlan(cfg.trials, cfg.min_window_s, cfg.pipelined), meter,
                              idle.watts if idle.flag is None else None, sync=sync, on_trial=finished,
                              watch=TrialWatch(reader, gap_s=gap))
    finally:
        if bar is not None:
            bar.close()
        meter.close()
    external = merge_external(cfg.external_power, measured.trials, log) if cfg.external_power else None
    seg_ms = segment_latencies(runner, batches[0], cfg.segment_repeats, sync)
    results = assemble_results(environment=env, config=_config(cfg, n), idle=idle, measured=measured, y=y,
                               batch_size=bs, num_exits=runner.num_exits, segment_latency_ms=seg_ms,
                               calibration=art.manifest.get("calibration"), speculate=runner.speculate)
    _add_trust(results, cfg, measured, art, idle, seg_ms, reader, cond_start, warm, external, log)
    atomic_write_json(out, results)
    stream.write({"type": "done", "results": str(out)})
    stream.close()
    return results


def check_config(cfg: BenchConfig) -> None:
    """Types and ranges of the numeric settings (the API's check; the CLI's argument types say the same)."""
    from edgebranchy.util.checks import is_finite_at_least, is_int_at_least

    for name, low in (("batch_size", 1), ("samples", 1), ("trials", 1), ("warmup", 0), ("segment_repeats", 1)):
        v = getattr(cfg, name)
        if not is_int_at_least(v, low):
            raise EdgeBranchyError(f"--{name.replace('_', '-')} must be a whole number >= {low}, got {v!r}")
    for name, opt in (("min_window_s", "--min-window"), ("idle_s", "--idle")):
        v = getattr(cfg, name)
        if not is_finite_at_least(v, 0.0):
            raise EdgeBranchyError(f"{opt} must be a finite number of seconds >= 0, got {v!r}")


def _add_trust(results: dict, cfg: BenchConfig, measured, art, idle, seg_ms: list[float], reader, cond_start,
               warm: dict, external: dict | None, log: Callable[[str], None]) -> None:
    """Run conditions and throttling, external board power, energy per exit and exit-rate drift."""
    import sys

    th = throttle_summary(measured.trials)
    results["conditions"] = {"start": cond_start, "end": reader.read(tools=True) if reader else None,
                             "lock_clocks": cfg.lock_clocks, "warmup": warm, "throttle": th,
                             "line": throttle_line(th)}
    if reader is not None:
        log(results["conditions"]["line"])
    variants = results["variants"]
    if external is not None:
        results["external_power"] = external
        for name, recs in measured.trials.items():
            variants[name]["external_energy"] = energy_summary(recs, key="external_energy")
    br = variants["branchy"]
    rec = exit_energy(br.get("energy"), variants["baseline"].get("energy"), br["exit_counts"],
                      batch_size=cfg.batch_size, segment_latency_ms=seg_ms, manifest=art.manifest,
                      idle_watts=idle.watts if idle.flag is None else None)
    if rec is not None:
        br["energy_per_exit"] = rec
        log(exit_energy_line(rec))
    drift = exit_drift(br["exit_counts"], art.manifest, overridden=False, alpha=cfg.drift_alpha)
    results["exit_drift"] = drift
    if drift is not None:
        print(drift["line"], file=sys.stderr if drift["drifted"] else sys.stdout)


def _config(cfg: BenchConfig, n: int) -> dict:
    return {"batch_size": cfg.batch_size, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined,
            "speculate": cfg.speculate,
            "warmup_max": cfg.warmup_max, "conditions": cfg.conditions, "lock_clocks": cfg.lock_clocks,
            "external_power": cfg.external_power, "gap_s": cfg.gap_s}
