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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

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
    # backend, batch_size and form take one value or a list of them: a sweep of every combination, one run
    # each, into one results file (the batch-1 forms apply only at batch 1; see sweep.plan_runs)
    backend: str | Sequence[str] = "onnxruntime"
    backend_options: dict = field(default_factory=dict)  # one backend's options (a sweep: options_by_backend)
    profile: str = "auto"
    power: str | None = None  # override of the profile's power source
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    batch_size: int | Sequence[int] = 1
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
    form: str | Sequence[str] = "auto"  # batch-1 form: auto (both measured, the faster runs), segments, single-graph
    options_by_backend: dict | None = None  # {backend: options} for a sweep over backends
    resume: bool = False  # continue the bench whose trial log is OUT.jsonl


#: what the bench's start record compares on --resume (everything that changes what is measured)
_NOT_COMPARED = ("artifact", "out", "force", "resume", "conditions_root")


def backend_can_speculate(backend: str) -> bool:
    """Speculation needs asynchronous launches on two lanes (GPU streams)."""
    return backend in ("tensorrt", "torch")


def _runtime_options(backend: str, profile, given: dict) -> dict:
    """Backend options from the profile's [runtime] table (the keys the backend declares), overridden by `given`."""
    from edgebranchy.runtime.backends.base import backend_options
    from edgebranchy.runtime.backends.options import profile_options

    return {**profile_options(backend_options(backend), profile.runtime), **given}


def _given_options(cfg: BenchConfig, backend: str) -> dict:
    if cfg.options_by_backend is not None:
        return dict(cfg.options_by_backend.get(backend, {}))
    return dict(cfg.backend_options)


def trial_log_path(out: str | os.PathLike) -> Path:
    """Where the trials of the results file `out` are streamed: OUT.jsonl."""
    out = Path(out)
    return out.with_name(out.name + ".jsonl")


def check_outputs(cfg: BenchConfig) -> None:
    """Refuse, before anything runs, a results path that would destroy an input or an earlier run."""
    from edgebranchy.artifact.latencies import side_path
    from edgebranchy.util.outputs import check_output

    inputs = [cfg.artifact] + [o.get("checkpoint") for o in
                               ((cfg.options_by_backend or {}).values() if cfg.options_by_backend else
                                [cfg.backend_options])]
    if cfg.profile and Path(cfg.profile).suffix == ".toml":
        inputs.append(cfg.profile)
    log = trial_log_path(cfg.out)
    if cfg.resume:
        if not log.is_file():
            raise EdgeBranchyError(f"no trial log at {log} to resume: run bench without --resume")
        if Path(cfg.out).exists() and not cfg.force:
            raise EdgeBranchyError(f"{cfg.out} is there already: that bench finished, there is nothing to resume "
                                   "(choose a new --out for a new bench)")
    elif log.exists() and not cfg.force:
        raise EdgeBranchyError(f"{log} holds the trial log of an earlier run: continue that run with --resume, "
                               f"or choose a new --out (or pass --force to replace it and {cfg.out})")
    check_output(cfg.out, inputs, "results", force=cfg.force, data_dirs=[cfg.data_dir])
    if not cfg.resume:
        check_output(log, inputs, "trial-log", force=cfg.force, data_dirs=[cfg.data_dir])
    side = side_path(cfg.out)
    if side.exists() and not cfg.force and not cfg.resume:
        raise EdgeBranchyError(f"{side} holds the latencies of an earlier run: choose a new --out "
                               f"(or pass --force to replace it and {cfg.out})")


class _Stream:
    """JSON lines, one flushed and fsynced line per finished trial. The file is created at the first write
    (so a bench refused while it sets up, e.g. for its power source, leaves no log); `first` is written
    before anything else."""

    def __init__(self, path: Path, replace: bool = False, append: bool = False, first: dict | None = None):
        self.path, self.replace, self.append, self.first = path, replace, append, first
        self.f = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.append:  # --resume: a line cut short by the kill is dropped first
            text = self.path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                self.path.write_text(text[:text.rfind("\n") + 1], encoding="utf-8")
            self.f = open(self.path, "a", encoding="utf-8")
            return
        try:  # "x": never truncate a log that appeared since check_outputs
            self.f = open(self.path, "w" if self.replace else "x", encoding="utf-8")
        except FileExistsError:
            raise EdgeBranchyError(f"{self.path} appeared while the bench started; choose a new --out") from None

    def write(self, obj: dict) -> None:
        from edgebranchy.util.files import writing

        with writing(self.path):
            if self.f is None:
                self._open()
                if self.first is not None:
                    self._line(self.first)
            self._line(obj)

    def _line(self, obj: dict) -> None:
        self.f.write(json.dumps(obj, allow_nan=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


#: how the one-line power note names each source
_SOURCE_WORDS = {"estimate": "CPU-time model", "rapl": "RAPL package counters", "nvml": "NVML GPU board power",
                 "tegrastats": "tegrastats rails", "ina3221": "INA3221 rails in sysfs"}


def power_line(meter, reason: str) -> str:
    """`power: estimated (CPU-time model; auto: tegrastats, ina3221, nvml, rapl not usable)`: the source and kind
    in one short line (the full reasoning is in the results file, environment.power_source_reason)."""
    from edgebranchy.measure.power.select import AUTO_ORDER

    what = _SOURCE_WORDS.get(meter.name, meter.name)
    if reason.startswith("auto"):
        before = list(AUTO_ORDER[:AUTO_ORDER.index(meter.name)]) if meter.name in AUTO_ORDER else []
        origin = f"auto: {', '.join(before)} not usable" if before else "auto"
    elif " instead of " in reason:
        origin = reason.split(" (", 1)[0]
    else:
        origin = reason.split(" (", 1)[1].split(")", 1)[0] if " (" in reason else reason
    return f"power: {meter.kind} ({what}; {origin})"


def source_words(source: str) -> str:
    """What a power source is, in a few words (for summaries: 'estimated (CPU-time model)')."""
    return _SOURCE_WORDS.get(source, source)


def _sweep_config(cfg: BenchConfig) -> dict:
    from dataclasses import asdict

    from edgebranchy.measure.sweep import as_list

    d = {k: v for k, v in asdict(cfg).items() if k not in _NOT_COMPARED}
    for k in ("backend", "batch_size", "form"):
        d[k] = as_list(d[k])
    return json.loads(json.dumps(d))


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = print, progress: bool = True,
              on_trial: Callable[[dict], None] | None = None, warn: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark described by `cfg` (one run, or a sweep of them); returns the results document
    (version 2, also written to cfg.out, its raw latencies in OUT.latencies.npz).

    `on_trial(record)` is called after each finished trial is on disk in `<out>.jsonl`; `log` gets the
    diagnostics, `warn` (default: stderr) the warnings. With `cfg.resume` the trial log's finished trials
    and runs are kept and only the missing ones are measured.
    """
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.measure.profiles import resolve_profile
    from edgebranchy.measure.sweep import LOG_VERSION, check_resumable, plan_runs, read_log

    if warn is None:
        def warn(line: str) -> None:
            print(line, file=sys.stderr)
    check_config(cfg)
    check_outputs(cfg)
    art = Artifact.load(cfg.artifact)
    specs, skipped = plan_runs(cfg.batch_size, cfg.backend, cfg.form, single_graph=art.single_graph is not None)
    head = {"type": "start", "version": LOG_VERSION, "artifact_sha256": art.sha256(),
            "environment": {"artifact": str(art.root), "artifact_sha256": art.sha256()},
            "config": _sweep_config(cfg), "plan": [s.to_dict() for s in specs], "skipped": skipped}
    del art
    for line in skipped:
        log(line)
    log_path = trial_log_path(cfg.out)
    state = None
    if cfg.resume:
        state = read_log(log_path)
        check_resumable(state.head, head, log_path)
        kept = sum(1 for s in specs if state.runs.get(s.id) and state.runs[s.id].result)
        trials = sum(len(r.trials) for r in state.runs.values() if r.result is None)
        log(f"resume: {kept} of {len(specs)} runs finished, {trials} trials of the unfinished one kept")
    profile, profile_reason = resolve_profile(cfg.profile)
    log(f"profile: {profile.name} ({profile_reason})")
    stream = _Stream(log_path, replace=cfg.force, append=cfg.resume, first=None if cfg.resume else head)
    bar = None
    if progress:
        from tqdm import tqdm

        done_trials = sum(len(r.trials) if r.result is None else 2 * cfg.trials
                          for r in (state.runs.values() if state else []))
        bar = tqdm(total=len(specs) * cfg.trials * 2, initial=min(done_trials, len(specs) * cfg.trials * 2),
                   desc="bench", unit="trial", leave=False, disable=None)
    say = (lambda s: bar.write(s, file=sys.stderr)) if bar is not None else log
    runs = []
    from edgebranchy.measure.lock_clocks import maybe_locked

    try:
        with maybe_locked(cfg.lock_clocks, log=log):
            for spec in specs:
                prior = state.runs.get(spec.id) if state else None
                if prior is not None and prior.result is not None:
                    runs.append(prior.result)
                    say(f"{spec.id} ({spec.describe()}): kept from the trial log")
                    continue
                run = _one_run(cfg, spec, profile, profile_reason, stream, prior, log=say, warn=warn, bar=bar,
                               on_trial=on_trial, first=not runs)
                stream.write({"type": "run", "run": spec.id, "result": run})
                runs.append(run)
                say(f"{spec.id} done ({spec.describe()}): p50 {_p50(run, 'baseline'):.4g} -> "
                    f"{_p50(run, 'branchy'):.4g} ms, {_p50(run, 'baseline') / _p50(run, 'branchy'):.2f}x")
    except BaseException:
        stream.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    from edgebranchy.measure.results import results_document
    from edgebranchy.util.files import atomic_write_json

    # integrator: gains -- here each run gets run["gains"] = run_gains(run) (edgebranchy.artifact.gains), before
    # the document is assembled and written
    results = results_document(cfg.out, runs)
    if skipped:
        results["skipped"] = skipped
    atomic_write_json(cfg.out, results)
    stream.write({"type": "done", "results": str(cfg.out)})
    stream.close()
    return results


def _p50(run: dict, variant: str) -> float:
    return run["variants"][variant]["latency_ms"]["p50"]


def _one_run(cfg: BenchConfig, spec, profile, profile_reason: str, stream: "_Stream", prior, *,
             log: Callable[[str], None], warn: Callable[[str], None], bar, on_trial, first: bool) -> dict:
    """One combination of the sweep: a runner for its backend and form, then the measurement (`_bench`)."""
    from edgebranchy.runtime.runner import EarlyExitRunner

    options = _runtime_options(spec.backend, profile, _given_options(cfg, spec.backend))
    form = spec.form if spec.batch_size == 1 else "segments"
    if prior is not None and prior.start is not None and spec.batch_size == 1:
        form = prior.start["environment"].get("batch1_form") or form  # resumed: the form its trials measured
    runner = EarlyExitRunner(cfg.artifact, backend=spec.backend, options=options, form=form,
                             speculate=cfg.speculate and backend_can_speculate(spec.backend))
    try:
        return _bench(cfg, spec, runner, profile, profile_reason, stream, prior, log=log, warn=warn, bar=bar,
                      on_trial=on_trial, first=first)
    finally:
        runner.close()


def _bench(cfg: BenchConfig, spec, runner, profile, profile_reason: str, stream: "_Stream", prior, *,
           log: Callable[[str], None], warn: Callable[[str], None], bar, on_trial, first: bool) -> dict:
    from edgebranchy.data import load_dataset
    from edgebranchy.data.imagefolder import reader_options
    from edgebranchy.measure.environment import collect_environment
    from edgebranchy.measure.power.base import EnergyReading
    from edgebranchy.measure.power.select import select_meter

    art, backend = runner.artifact, runner.backend
    sync = backend.synchronize
    meter, power_reason = select_meter(profile, cfg.power, sync=sync)  # before the data: an unusable source fails fast
    if first:
        log(power_line(meter, power_reason))
    try:
        data = load_dataset(cfg.dataset, cfg.data_dir, image=reader_options(art.manifest["input"], cfg.dataset))
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
        log(f"{spec.id} idle power with the models loaded: {idle.watts:.2f} W ({idle.kind}, {idle.source})"
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
    _add_trust(results, cfg, measured, art, idle, seg_ms, reader, cond_start, warm, external, log, warn)
    return results


def check_config(cfg: BenchConfig) -> None:
    """Types and ranges of the numeric settings (the API's check; the CLI's argument types say the same)."""
    from edgebranchy.util.checks import is_finite_at_least, is_int_at_least

    from edgebranchy.measure.sweep import as_list

    for name, low in (("batch_size", 1), ("samples", 1), ("trials", 1), ("warmup", 0), ("segment_repeats", 1)):
        v = getattr(cfg, name)
        for one in (as_list(v) if name == "batch_size" and not isinstance(v, bool) else [v]):
            if not is_int_at_least(one, low):
                raise EdgeBranchyError(f"--{name.replace('_', '-')} must be a whole number >= {low}, got {v!r}")
    if not as_list(cfg.batch_size) or not as_list(cfg.backend) or not as_list(cfg.form):
        raise EdgeBranchyError("--batch-size, --backend and --form each need at least one value")
    for name, opt in (("min_window_s", "--min-window"), ("idle_s", "--idle")):
        v = getattr(cfg, name)
        if not is_finite_at_least(v, 0.0):
            raise EdgeBranchyError(f"{opt} must be a finite number of seconds >= 0, got {v!r}")


def _add_trust(results: dict, cfg: BenchConfig, measured, art, idle, seg_ms: list[float], reader, cond_start,
               warm: dict, external: dict | None, log: Callable[[str], None], warn: Callable[[str], None]) -> None:
    """Run conditions and throttling, external board power, energy per exit and exit-rate drift."""
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
        (warn if drift["drifted"] else log)(drift["line"])


def _config(cfg: BenchConfig, spec, n: int) -> dict:
    return {"batch_size": spec.batch_size, "form": spec.form, "samples": n, "trials": cfg.trials, "warmup": cfg.warmup,
            "min_window_s": cfg.min_window_s, "idle_s": cfg.idle_s, "pipelined": cfg.pipelined,
            "speculate": cfg.speculate,
            "warmup_max": cfg.warmup_max, "conditions": cfg.conditions, "lock_clocks": cfg.lock_clocks,
            "external_power": cfg.external_power, "gap_s": cfg.gap_s}
