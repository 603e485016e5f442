"""One run of `bench` (one combination of a sweep): runner, data, warm-up, forms, idle power, trials, the run.

`bench/session.py` plans the runs and writes the results file; this module measures one of them,
picking up what a trial log already holds when the bench is resumed.
"""
from __future__ import annotations

import time

from edgebranchy.artifact.plausibility import accuracy_context
from edgebranchy.bench.config import BenchConfig, backend_can_speculate, runtime_options
from edgebranchy.bench.document import assemble_results
from edgebranchy.bench.quality import energy_summary, exit_drift, exit_energy, merge_external, throttle_line, \
    throttle_summary
from edgebranchy.bench.trials import TrialPlan, run_trials, segment_latencies, warm_up
from edgebranchy.measure.conditions import ConditionsReader
from edgebranchy.measure.conditions import summary_line as conditions_line
from edgebranchy.measure.exit_energy import summary_line as exit_energy_line
from edgebranchy.measure.power.select import power_line, source_words
from edgebranchy.measure.throttle import TrialWatch
from edgebranchy.measure.warmup import WarmupCriterion, warm_up_variants


def _open_runner(session, spec, form: str):
    from edgebranchy.runtime.runner import EarlyExitRunner

    cfg = session.cfg
    return EarlyExitRunner(cfg.artifact, backend=spec.backend, options=runtime_options(cfg, spec.backend,
                                                                                       session.profile,
                                                                                       spec.precision),
                           form=form, speculate=cfg.speculate and backend_can_speculate(spec.backend))


def preflight(session, specs) -> None:
    """Open each backend of a sweep that its first run does not (a missing package, a bad option, an artifact
    without its engines), so a sweep is refused before it measures anything rather than after its first runs."""
    seen = {(specs[0].backend, specs[0].precision)}
    for spec in specs[1:]:
        if (spec.backend, spec.precision) not in seen:
            seen.add((spec.backend, spec.precision))
            _open_runner(session, spec, "segments").close()


def one_run(session, spec, prior, first: bool) -> dict:
    """One combination of the sweep (`spec`): a runner for its backend and form, then the measurement. `prior`:
    what the trial log holds of it (a resumed bench), else None; `first`: the first run measured now."""
    form = spec.form if spec.batch_size == 1 else "segments"
    if prior is not None and prior.start is not None and spec.batch_size == 1:
        form = prior.start["environment"].get("batch1_form") or form  # resumed: the form its trials measured
    runner = _open_runner(session, spec, form)
    try:
        return _OneRun(session, spec, runner, prior, first).measure()
    finally:
        runner.close()


class _OneRun:
    """The measurement of one run, step by step; what a step finds is kept for the later ones."""

    def __init__(self, session, spec, runner, prior, first: bool) -> None:
        self.session, self.cfg, self.spec, self.runner = session, session.cfg, spec, runner
        self.prior, self.first = prior, first
        self.resumed = prior is not None and prior.start is not None
        self.art = runner.artifact

    def measure(self) -> dict:
        from edgebranchy.measure.power.select import select_meter

        backend = self.runner.backend
        # before the data: an unusable source fails fast; NVML measures the GPU the backend runs on (by PCI bus id)
        meter, power_reason = select_meter(self.session.profile, self.cfg.power, sync=backend.synchronize,
                                           gpu_pci_bus_id=backend.describe().get("pci_bus_id"))
        if self.first:
            self.session.note(power_line(meter, power_reason))
        try:
            self._load_data()
            self._read_conditions()
            self._warm_up()
            env = self._environment(meter, power_reason)
            idle = self._idle(meter)
            measured = self._trials(meter, idle)
        finally:
            meter.close()
        return self._results(env, idle, measured)

    def _load_data(self) -> None:
        from edgebranchy.data.splits import artifact_test_data

        cfg, art = self.cfg, self.art
        self.dataset, data = artifact_test_data(art, cfg.dataset, cfg.data_dir)
        self.n = n = min(cfg.samples, len(data.test))
        if n < cfg.samples and self.first:
            self.session.note(f"note: {self.dataset} has {len(data.test)} test samples; using {n}")
        self.x = art.preprocess(data.test.x[:n])
        self.y = data.test.y[:n]
        bs = self.spec.batch_size
        self.batches = [self.x[i:i + bs] for i in range(0, n, bs)]

    def _read_conditions(self) -> None:
        self.reader = ConditionsReader(self.cfg.conditions_root) if self.cfg.conditions else None
        if self.resumed:
            self.cond_start = self.prior.start["environment"]["conditions_start"]
            return
        self.cond_start = self.reader.read(tools=True) if self.reader else None
        if self.cond_start is not None and self.first:
            self.session.note(f"run conditions: {conditions_line(self.cond_start)}")

    def _warm_up(self) -> None:
        cfg, sync = self.cfg, self.runner.backend.synchronize
        if not cfg.warmup_max:
            warm_up(self.runner, self.batches, cfg.warmup, sync)
            self.warm = {"fixed_batches": cfg.warmup}
            return
        crit = WarmupCriterion(window=cfg.warmup_window, min_calls=cfg.warmup,
                               max_calls=max(cfg.warmup_max, 3 * cfg.warmup_window, cfg.warmup))
        self.warm = warm = warm_up_variants(self.runner, self.batches, crit, sync)
        self.session.note(f"{self.spec.id} warm-up: " + "; ".join(
            f"{k} {w['calls']} calls, {'stable' if w['stable'] else 'NOT stable'}" for k, w in warm.items())
            + f" ({crit.describe()})")

    def _environment(self, meter, power_reason: str) -> dict:
        """The run's environment (the trial log's, when resumed); a new one starts the run in the trial log."""
        if self.resumed:
            return self.prior.start["environment"]
        from edgebranchy.measure.environment import collect_environment

        cfg, spec, runner, art, session = self.cfg, self.spec, self.runner, self.art, self.session
        bs, backend = spec.batch_size, runner.backend
        forms = None
        if bs == 1 and spec.form == "auto" and runner.single_graph_available:
            # both batch-1 forms, measured here; the faster runs below
            forms = {**runner.choose_form(self.x[:min(self.n, 300)]), "reason": runner.form_reason}
            session.note(f"{spec.id} batch-1 forms: segments {forms['segments_us']:.1f} us, single graph "
                         f"{forms['single_graph_us']:.1f} us per sample -> {forms['choice']}")
        env = collect_environment()
        env.update({"profile": session.profile.name, "profile_source": session.profile_reason,
                    "profile_settings": session.profile.to_dict(),
                    "backend": backend.name, "backend_options": backend.describe(),
                    "precision": backend.describe().get("precision", "fp32"), "artifact": str(art.root),
                    "artifact_sha256": art.sha256(), "model": art.manifest["model"].get("name"),
                    "model_exits": art.model_exits,
                    "dataset": self.dataset, "thresholds": runner.thresholds, "power_source": meter.name,
                    "power_source_reason": power_reason, "power_meter": meter.describe(),
                    "pipelined": cfg.pipelined, "speculate": cfg.speculate,
                    "conditions_start": self.cond_start, "clocks_locked_by_bench": cfg.lock_clocks,
                    "batch1_form": runner.batch1_form if bs == 1 else "segments", "batch1_forms": forms,
                    "precision_requested": spec.precision, "precision_reason": runner.precision_reason,
                    "thresholds_source": runner.thresholds_source,
                    "form_requested": spec.form})
        session.stream.write({"type": "run-start", "run": spec.id, "environment": env, "config": self._config()})
        return env

    def _idle(self, meter):
        """Idle power with the models loaded (the trial log's reading, when it has one)."""
        from edgebranchy.measure.power.meter import EnergyReading

        if self.prior is not None and self.prior.idle is not None:
            return EnergyReading(**self.prior.idle)
        meter.start()
        time.sleep(self.cfg.idle_s)
        idle = meter.stop()
        self.session.stream.write({"type": "idle", "run": self.spec.id, "reading": idle.to_dict()})
        self.session.note(f"{self.spec.id} idle power with the models loaded: {idle.watts:.2f} W ({idle.kind}, "
                          f"{source_words(idle.source)})"
                          + (f"; NOT usable: {idle.flag}; no dynamic energy is reported" if idle.flag else ""))
        return idle

    def _trials(self, meter, idle):
        cfg, session, run_id = self.cfg, self.session, self.spec.id

        def finished(rec: dict) -> None:
            rec["run"] = run_id
            session.trial_done(rec)

        gap = cfg.gap_s if cfg.gap_s is not None else (1.0 if cfg.external_power else 0.0)
        window = trial_window(cfg.min_window_s, meter.provenance(), session.note)
        return run_trials(self.runner, self.batches, TrialPlan(cfg.trials, window, cfg.pipelined), meter,
                          idle.watts if idle.flag is None else None, sync=self.runner.backend.synchronize,
                          on_trial=finished, watch=TrialWatch(self.reader, gap_s=gap),
                          done=self.prior.trials if self.prior else None)

    def _results(self, env: dict, idle, measured) -> dict:
        cfg, runner, art = self.cfg, self.runner, self.art
        external = merge_external(cfg.external_power, measured.trials, self.session.note) if cfg.external_power \
            else None
        seg_ms = segment_latencies(runner, self.batches[0], cfg.segment_repeats, runner.backend.synchronize)
        results = assemble_results(environment=env, config=self._config(), idle=idle, measured=measured, y=self.y,
                                   batch_size=self.spec.batch_size, num_exits=runner.num_exits,
                                   segment_latency_ms=seg_ms, calibration=art.manifest.get("calibration"),
                                   speculate=runner.speculate)
        results["id"] = self.spec.id
        results["accuracy_context"] = accuracy_context(art.manifest, self.y)  # what tells a broken model (verdict)
        self._add_conditions(results, measured)
        _add_energy_and_drift(results, self.session, measured, art, idle, seg_ms, external)
        return results

    def _add_conditions(self, results: dict, measured) -> None:
        """Run conditions at both ends and throttling (a throttled run warns)."""
        th = throttle_summary(measured.trials)
        results["conditions"] = {"start": self.cond_start, "end": self.reader.read(tools=True) if self.reader else None,
                                 "lock_clocks": self.cfg.lock_clocks, "warmup": self.warm, "throttle": th,
                                 "line": throttle_line(th)}
        if self.reader is not None and th and th["throttled"]:  # printed with the results table; a throttled run warns
            self.session.warn("warning: " + results["conditions"]["line"])

    def _config(self) -> dict:
        return run_config(self.cfg, self.spec.batch_size, self.spec.form, self.n)


def _add_energy_and_drift(results: dict, session, measured, art, idle, seg_ms: list[float],
                          external: dict | None) -> None:
    """External board power, energy per exit and exit-rate drift."""
    cfg = session.cfg
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
        session.note(exit_energy_line(rec, art.exit_names()))
    drift = exit_drift(br["exit_counts"], art.manifest, overridden=False, alpha=cfg.drift_alpha,
                       min_effect=cfg.drift_min_effect)
    results["exit_drift"] = drift
    if drift is not None:
        (session.warn if drift["drifted"] else session.note)(drift["line"])


def trial_window(min_window_s: float | None, prov, note) -> float:
    """The trials' window: `min_window_s` where given; by default (None) WINDOW_S, lengthened to the shortest one
    the power source can give an energy figure for (a sensor read every 0.1 s needs 1 s:
    measure/power/meter.shortest_window_s). A window given that is too short still runs, its energy flagged."""
    from edgebranchy.bench.config import WINDOW_S
    from edgebranchy.measure.power.meter import shortest_window_s

    if min_window_s is not None:
        return min_window_s
    need = shortest_window_s(prov)
    if need <= WINDOW_S:
        return WINDOW_S
    note(f"trial windows of {need:g} s (not {WINDOW_S:g} s): the power source needs that long for an energy "
         "figure (--min-window sets it)")
    return need


def run_config(cfg: BenchConfig, batch_size: int, form: str, n: int) -> dict:
    """The config block of one run of the results document."""
    return {"batch_size": batch_size, "form": form, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined,
            "speculate": cfg.speculate,
            "warmup_max": cfg.warmup_max, "conditions": cfg.conditions, "lock_clocks": cfg.lock_clocks,
            "external_power": cfg.external_power, "gap_s": cfg.gap_s}
