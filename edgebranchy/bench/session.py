"""`edgebranchy bench`: latency and energy of the baseline and the BranchyNet on the same samples.

Trials are interleaved (baseline, branchy, baseline, ...), each one energy
window of at least `min_window_s` seconds (whole passes over the samples), with
idle power measured first with the models loaded. One bench is one run or a
sweep of them (batch sizes x backends x batch-1 forms, `plan.plan_runs`), each
measured by `run.one_run`. Every finished trial is appended to `<out>.jsonl`
at once, so a killed bench keeps it and a resumed one continues it; the final
results file (schema version 3, raw latencies in OUT.latencies.npz) is written
atomically at the end.

A `BenchSession` is one bench: its config, its profile, its trial log, and where
what it says goes (diagnostics, warnings, a progress bar, a hook called after
every finished trial). The functions that measure take the session instead of
those callbacks one by one.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable

from edgebranchy.bench.config import (BenchConfig, check_config, check_outputs, staged_log_path, sweep_config,
                                      trial_log_path)
from edgebranchy.errors import EdgeBranchyError

#: where a session's diagnostics (INFO) and warnings (WARNING) go when no `log` / `warn` is given; with logging
#: not configured, Python prints the warnings on stderr and drops the diagnostics
LOGGER = logging.getLogger("edgebranchy.bench")


class BenchSession:
    """One bench (`run()`), and everything its measurement reports to.

    `log(line)` gets the diagnostics and `warn(line)` the warnings (default: `LOGGER`); `progress` shows a
    progress bar on a terminal, and while it shows the diagnostics go through it to stderr; `on_trial(record)`
    (the supported hook, an attribute that may be set after construction) is called once each finished trial
    is on disk in OUT.jsonl: the tests SIGKILL a bench from it.
    """

    def __init__(self, cfg: BenchConfig, *, log: Callable[[str], None] | None = None,
                 warn: Callable[[str], None] | None = None, progress: bool = True,
                 on_trial: Callable[[dict], None] | None = None) -> None:
        self.cfg = cfg
        self.log = log if log is not None else LOGGER.info
        self.warn = warn if warn is not None else LOGGER.warning
        self.progress = progress
        self.on_trial = on_trial
        self.profile = None  # the device profile (device.profile_schema.Profile), once resolved
        self.profile_reason = ""
        self.stream = None  # the trial log (trial_log.TrialLog), once open
        self.bar = None  # the progress bar while the runs are measured

    def note(self, line: str) -> None:
        """A diagnostic line (through the progress bar while it shows)."""
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            self.log(line)

    def trial_done(self, rec: dict) -> None:
        """A trial of run `rec["run"]` is finished: into the trial log, onto the bar, then to the hook."""
        import numpy as np

        self.stream.write(rec)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(run=rec["run"], variant=rec["variant"], p50=f"{np.median(rec['latency_ms']):.3f}ms")
        if self.on_trial is not None:
            self.on_trial(rec)

    def run(self) -> dict:
        """Run the benchmark (one run, or a sweep of them); returns the results document (version 3, also
        written to cfg.out, its raw latencies in OUT.latencies.npz). With `cfg.resume` the trial log's
        finished trials and runs are kept and only the missing ones are measured. One bench at a time writes
        an `out` (a lock beside it); with `force` the earlier results, latencies and trial log are replaced
        only once the new ones are complete."""
        from edgebranchy.util.locks import output_lock

        check_config(self.cfg)
        with output_lock(self.cfg.out, check=lambda: check_outputs(self.cfg)):
            return self._run()

    def _run(self) -> dict:
        from edgebranchy.artifact.manifest import Artifact
        from edgebranchy.bench.plan import plan_runs
        from edgebranchy.bench.trial_log import LOG_VERSION, TrialLog, check_resumable, read_log
        from edgebranchy.device.detection import resolve_profile

        cfg = self.cfg
        art = Artifact.load(cfg.artifact)
        specs, skipped = plan_runs(cfg.batch_size, cfg.backend, cfg.form, single_graph=art.single_graph is not None,
                                   precisions=cfg.precision)
        if not specs:
            raise EdgeBranchyError("nothing to measure: " + "; ".join(skipped) + " (choose another `form`)")
        sha = art.sha256()
        head = {"type": "start", "version": LOG_VERSION, "artifact_sha256": sha,
                "environment": {"artifact": str(art.root), "artifact_sha256": sha},
                "config": sweep_config(cfg), "plan": [s.to_dict() for s in specs], "skipped": skipped}
        del art
        log_path = trial_log_path(cfg.out)
        state = None
        if cfg.resume:
            state = read_log(log_path)
            check_resumable(state.head, head, log_path)
        self.profile, self.profile_reason = resolve_profile(cfg.profile)
        staged = cfg.force and not cfg.resume  # the earlier run's files stay until this one is complete
        if staged:
            staged_log_path(cfg.out).unlink(missing_ok=True)  # left by a forced bench that was killed
        self.stream = TrialLog(staged_log_path(cfg.out) if staged else log_path, append=cfg.resume,
                               first=None if cfg.resume else head)
        try:
            self.stream.open()  # before anything is printed: a log that cannot be written is the one error line
            runs = self._measure(specs, skipped, state)
            return self._finish(runs, skipped, log_path if staged else None)
        except BaseException:
            self.stream.close()
            if staged or (not cfg.resume and self.stream.trials == 0):  # nothing to resume: no log
                self.stream.path.unlink(missing_ok=True)
            raise

    def _measure(self, specs, skipped: list[str], state) -> list[dict]:
        """Every run of the plan, measured now or kept from the trial log of a resumed bench."""
        from edgebranchy.bench.run import one_run, preflight
        from edgebranchy.measure.lock_clocks import maybe_locked

        preflight(self, specs)
        for line in skipped:
            self.log(line)
        if state is not None:
            kept = sum(1 for s in specs if state.runs.get(s.id) and state.runs[s.id].result)
            trials = sum(len(r.trials) for r in state.runs.values() if r.result is None)
            self.log(f"resume: {kept} of {len(specs)} runs finished, {trials} trials of the unfinished one kept")
        self.log(f"profile: {self.profile.name} ({self.profile_reason})")
        self._open_bar(len(specs), state)
        runs: list[dict] = []
        try:
            with maybe_locked(self.cfg.lock_clocks, log=self.log):
                for spec in specs:
                    prior = state.runs.get(spec.id) if state else None
                    if prior is not None and prior.result is not None:
                        runs.append(_kept_run(prior))
                        self.note(f"{spec.id} ({spec.describe()}): kept from the trial log")
                        continue
                    run = one_run(self, spec, prior, first=not runs)
                    self.stream.write({"type": "run", "run": spec.id, "result": _without_samples(run)})
                    runs.append(run)
                    self.note(f"{spec.id} done ({spec.describe()}): p50 {_p50(run, 'baseline'):.4g} -> "
                              f"{_p50(run, 'branchy'):.4g} ms, {_p50(run, 'baseline') / _p50(run, 'branchy'):.2f}x")
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        return runs

    def _open_bar(self, n_runs: int, state) -> None:
        if not self.progress:
            return
        from tqdm import tqdm

        total = n_runs * self.cfg.trials * 2
        done = sum(len(r.trials) if r.result is None else 2 * self.cfg.trials
                   for r in (state.runs.values() if state else []))
        self.bar = tqdm(total=total, initial=min(done, total), desc="bench", unit="trial", leave=False, disable=None)

    def _finish(self, runs: list[dict], skipped: list[str], log_path=None) -> dict:
        """The results document of the runs, written atomically; the trial log's last record. `log_path`: where
        the staged trial log of a forced bench goes, with the results, in one step no SIGINT or SIGTERM splits."""
        import os

        from edgebranchy.artifact.gains import run_gains
        from edgebranchy.bench.document import results_document
        from edgebranchy.util.files import atomic_write_json, writing
        from edgebranchy.util.signals import uninterrupted

        for run in runs:  # while the raw latencies are still in the run: the quantile gains get their intervals
            run["gains"] = run_gains(run)
        with uninterrupted():  # the results file, its latencies side file and its trial log: all new or all old
            results = results_document(self.cfg.out, runs)
            if skipped:
                results["skipped"] = skipped
            atomic_write_json(self.cfg.out, results)
            self.stream.write({"type": "done", "results": str(self.cfg.out)})
            self.stream.close()
            if log_path is not None:
                with writing(log_path):
                    os.replace(self.stream.path, log_path)
        return results


def run_bench(cfg: BenchConfig, **session) -> dict:
    """Run the benchmark described by `cfg` (one run, or a sweep of them) and return the results document;
    the keywords are `BenchSession`'s (log, warn, progress, on_trial)."""
    return BenchSession(cfg, **session).run()


def _without_samples(run: dict) -> dict:
    """The run as the trial log keeps it: its raw latencies are already there, in its trial records."""
    return {**run, "variants": {name: {**v, "latency_ms": {k: x for k, x in v["latency_ms"].items() if k != "samples"}}
                                for name, v in run["variants"].items()}}


def _kept_run(prior) -> dict:
    """A finished run from the trial log, its raw latencies put back from its trial records (in trial order,
    as `bench.document.variant_summary` concatenates them)."""
    variants = {}
    for name, v in prior.result["variants"].items():
        recs = sorted((r for r in prior.trials if r["variant"] == name), key=lambda r: r["trial"])
        variants[name] = {**v, "latency_ms": {**v["latency_ms"], "samples": [x for r in recs for x in r["latency_ms"]]}}
    return {**prior.result, "variants": variants}


def _p50(run: dict, variant: str) -> float:
    return run["variants"][variant]["latency_ms"]["p50"]
