"""One run of `bench` (one combination of a sweep): runner, data, warm-up, forms, idle power, trials, the run.

`bench/session.py` plans the runs and writes the results file; this module measures one of them,
picking up what a trial log already holds when the bench is resumed.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from edgebranchy.artifact.plausibility import accuracy_context
from edgebranchy.bench.session import BenchConfig, _given_options, _runtime_options, backend_can_speculate, power_line, \
    source_words
from edgebranchy.measure.conditions import ConditionsReader
from edgebranchy.measure.conditions import summary_line as conditions_line
from edgebranchy.measure.exit_energy import summary_line as exit_energy_line
from edgebranchy.bench.quality import energy_summary, exit_drift, exit_energy, merge_external, throttle_line, \
    throttle_summary
from edgebranchy.bench.document import assemble_results
from edgebranchy.bench.trial_log import TrialLog
from edgebranchy.measure.throttle import TrialWatch
from edgebranchy.bench.trials import TrialPlan, run_trials, segment_latencies, warm_up
from edgebranchy.measure.warmup import WarmupCriterion, warm_up_variants


def _open_runner(cfg: BenchConfig, spec, profile, form: str):
    from edgebranchy.runtime.runner import EarlyExitRunner

    options = _runtime_options(spec.backend, profile, _given_options(cfg, spec.backend))
    return EarlyExitRunner(cfg.artifact, backend=spec.backend, options=options, form=form,
                           speculate=cfg.speculate and backend_can_speculate(spec.backend))


def preflight(cfg: BenchConfig, specs, profile) -> None:
    """Open each backend of a sweep that its first run does not (a missing package, a bad option, an artifact
    without its engines), so a sweep is refused before it measures anything rather than after its first runs."""
    seen = {specs[0].backend}
    for spec in specs[1:]:
        if spec.backend not in seen:
            seen.add(spec.backend)
            _open_runner(cfg, spec, profile, "segments").close()


def one_run(cfg: BenchConfig, spec, profile, profile_reason: str, stream: TrialLog, prior, *,
             log: Callable[[str], None], warn: Callable[[str], None], bar, on_trial, first: bool) -> dict:
    """One combination of the sweep: a runner for its backend and form, then the measurement (`_bench`)."""
    form = spec.form if spec.batch_size == 1 else "segments"
    if prior is not None and prior.start is not None and spec.batch_size == 1:
        form = prior.start["environment"].get("batch1_form") or form  # resumed: the form its trials measured
    runner = _open_runner(cfg, spec, profile, form)
    try:
        return _bench(cfg, spec, runner, profile, profile_reason, stream, prior, log=log, warn=warn, bar=bar,
                      on_trial=on_trial, first=first)
    finally:
        runner.close()


def _bench(cfg: BenchConfig, spec, runner, profile, profile_reason: str, stream: TrialLog, prior, *,
           log: Callable[[str], None], warn: Callable[[str], None], bar, on_trial, first: bool) -> dict:
    from edgebranchy.data.imagefolder import reader_options
    from edgebranchy.data.splits import load_test_data
    from edgebranchy.measure.environment import collect_environment
    from edgebranchy.measure.power.meter import EnergyReading
    from edgebranchy.measure.power.select import select_meter

    art, backend = runner.artifact, runner.backend
    sync = backend.synchronize
    # before the data: an unusable source fails fast; NVML measures the GPU the backend runs on (by PCI bus id)
    meter, power_reason = select_meter(profile, cfg.power, sync=sync,
                                       gpu_pci_bus_id=backend.describe().get("pci_bus_id"))
    if first:
        log(power_line(meter, power_reason))
    try:
        data = load_test_data(art.source.get("dataset"), cfg.dataset, cfg.data_dir,
                              image=reader_options(art.manifest["input"], cfg.dataset), what=str(art.root))
    except BaseException:
        meter.close()
        raise
    n = min(cfg.samples, len(data.test))
    if n < cfg.samples and first:
        log(f"note: {cfg.dataset} has {len(data.test)} test samples; using {n}")
    x = art.preprocess(data.test.x[:n])
    y = data.test.y[:n]
    bs = spec.batch_size
    batches = [x[i:i + bs] for i in range(0, n, bs)]
    reader = ConditionsReader(cfg.conditions_root) if cfg.conditions else None
    resumed = prior is not None and prior.start is not None
    cond_start = prior.start["environment"]["conditions_start"] if resumed else (
        reader.read(tools=True) if reader else None)
    if cond_start is not None and first and not resumed:
        log(f"run conditions: {conditions_line(cond_start)}")
    if cfg.warmup_max:
        crit = WarmupCriterion(window=cfg.warmup_window, min_calls=cfg.warmup,
                               max_calls=max(cfg.warmup_max, 3 * cfg.warmup_window, cfg.warmup))
        warm = warm_up_variants(runner, batches, crit, sync)
        log(f"{spec.id} warm-up: " + "; ".join(f"{k} {w['calls']} calls, {'stable' if w['stable'] else 'NOT stable'}"
                                               for k, w in warm.items()) + f" ({crit.describe()})")
    else:
        warm_up(runner, batches, cfg.warmup, sync)
        warm = {"fixed_batches": cfg.warmup}
    if resumed:
        env = prior.start["environment"]
    else:
        forms = None
        if bs == 1 and spec.form == "auto" and runner.single_graph_available:
            # both batch-1 forms, measured here; the faster runs below
            forms = {**runner.choose_form(x[:min(n, 300)]), "reason": runner.form_reason}
            log(f"{spec.id} batch-1 forms: segments {forms['segments_us']:.1f} us, single graph "
                f"{forms['single_graph_us']:.1f} us per sample -> {forms['choice']}")
        env = collect_environment()
        env.update({"profile": profile.name, "profile_source": profile_reason, "profile_settings": profile.to_dict(),
                    "backend": backend.name, "backend_options": backend.describe(),
                    "precision": backend.describe().get("precision", "fp32"), "artifact": str(art.root),
                    "artifact_sha256": art.sha256(), "model": art.manifest["model"].get("name"),
                    "dataset": cfg.dataset, "thresholds": runner.thresholds, "power_source": meter.name,
                    "power_source_reason": power_reason, "power_meter": meter.describe(),
                    "pipelined": cfg.pipelined, "speculate": cfg.speculate,
                    "conditions_start": cond_start, "clocks_locked_by_bench": cfg.lock_clocks,
                    "batch1_form": runner.batch1_form if bs == 1 else "segments", "batch1_forms": forms,
                    "form_requested": spec.form})
        stream.write({"type": "run-start", "run": spec.id, "environment": env, "config": _config(cfg, spec, n)})

    if prior is not None and prior.idle is not None:
        idle = EnergyReading(**prior.idle)
    else:
        meter.start()
        time.sleep(cfg.idle_s)
        idle = meter.stop()
        stream.write({"type": "idle", "run": spec.id, "reading": idle.to_dict()})
        log(f"{spec.id} idle power with the models loaded: {idle.watts:.2f} W ({idle.kind}, {source_words(idle.source)})"
            + (f"; NOT usable: {idle.flag}; no dynamic energy is reported" if idle.flag else ""))

    def finished(rec: dict) -> None:
        rec["run"] = spec.id
        stream.write(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(run=spec.id, variant=rec["variant"], p50=f"{np.median(rec['latency_ms']):.3f}ms")
        if on_trial is not None:
            on_trial(rec)

    try:
        gap = cfg.gap_s if cfg.gap_s is not None else (1.0 if cfg.external_power else 0.0)
        measured = run_trials(runner, batches, TrialPlan(cfg.trials, cfg.min_window_s, cfg.pipelined), meter,
                              idle.watts if idle.flag is None else None, sync=sync, on_trial=finished,
                              watch=TrialWatch(reader, gap_s=gap), done=prior.trials if prior else None)
    finally:
        meter.close()
    external = merge_external(cfg.external_power, measured.trials, log) if cfg.external_power else None
    seg_ms = segment_latencies(runner, batches[0], cfg.segment_repeats, sync)
    results = assemble_results(environment=env, config=_config(cfg, spec, n), idle=idle, measured=measured, y=y,
                               batch_size=bs, num_exits=runner.num_exits, segment_latency_ms=seg_ms,
                               calibration=art.manifest.get("calibration"), speculate=runner.speculate)
    results["id"] = spec.id
    results["accuracy_context"] = accuracy_context(art.manifest, y)   # what tells a broken model (the verdict)
    _add_trust(results, cfg, measured, art, idle, seg_ms, reader, cond_start, warm, external, log, warn)
    return results


def _add_trust(results: dict, cfg: BenchConfig, measured, art, idle, seg_ms: list[float], reader, cond_start,
               warm: dict, external: dict | None, log: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Run conditions and throttling, external board power, energy per exit and exit-rate drift."""
    th = throttle_summary(measured.trials)
    results["conditions"] = {"start": cond_start, "end": reader.read(tools=True) if reader else None,
                             "lock_clocks": cfg.lock_clocks, "warmup": warm, "throttle": th,
                             "line": throttle_line(th)}
    if reader is not None and th and th["throttled"]:  # printed with the results table; a throttled run warns
        warn("warning: " + results["conditions"]["line"])
    variants = results["variants"]
    if external is not None:
        results["external_power"] = external
        for name, recs in measured.trials.items():
            variants[name]["external_energy"] = energy_summary(recs, key="external_energy")
    br = variants["branchy"]
    rec = exit_energy(br.get("energy"), variants["baseline"].get("energy"), br["exit_counts"],
                      batch_size=results["config"]["batch_size"], segment_latency_ms=seg_ms, manifest=art.manifest,
                      idle_watts=idle.watts if idle.flag is None else None)
    if rec is not None:
        br["energy_per_exit"] = rec
        log(exit_energy_line(rec))
    drift = exit_drift(br["exit_counts"], art.manifest, overridden=False, alpha=cfg.drift_alpha,
                       min_effect=cfg.drift_min_effect)
    results["exit_drift"] = drift
    if drift is not None:
        (warn if drift["drifted"] else log)(drift["line"])


def _config(cfg: BenchConfig, spec, n: int) -> dict:
    return {"batch_size": spec.batch_size, "form": spec.form, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined,
            "speculate": cfg.speculate,
            "warmup_max": cfg.warmup_max, "conditions": cfg.conditions, "lock_clocks": cfg.lock_clocks,
            "external_power": cfg.external_power, "gap_s": cfg.gap_s}

