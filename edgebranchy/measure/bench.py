"""`edgebranchy bench`: latency and energy of the baseline and the BranchyNet on the same samples.

Trials are interleaved (baseline, branchy, baseline, ...), each one energy
window of at least `min_window_s` seconds (whole passes over the samples), with
idle power measured first with the models loaded. One bench is one run or a
sweep of them (batch sizes x backends x batch-1 forms, `sweep.plan_runs`), each
measured by `bench_run.one_run`. Every finished trial is appended to `<out>.jsonl`
at once, so a killed bench keeps it and `--resume` continues it; the final
results file (schema version 3, raw latencies in OUT.latencies.npz) is written
atomically at the end.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from edgebranchy.errors import EdgeBranchyError


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
    drift_min_effect: float = 0.03  # exit-rate change (a fraction) the drift test looks for
    form: str | Sequence[str] = "auto"  # batch-1 form: auto (both measured, the faster runs), segments, single-graph
    options_by_backend: dict | None = None  # {backend: options} for a sweep over backends
    resume: bool = False  # continue the bench whose trial log is OUT.jsonl


#: what the bench's start record compares on --resume (everything that changes what is measured)
_NOT_COMPARED = ("artifact", "out", "force", "resume", "conditions_root")


def backend_can_speculate(backend: str) -> bool:
    """Speculation needs asynchronous launches on two lanes (GPU streams): the vocabulary says which backends."""
    from edgebranchy.vocab import can_speculate

    return can_speculate(backend)


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
    (version 3, also written to cfg.out, its raw latencies in OUT.latencies.npz).

    `on_trial(record)` is called after each finished trial is on disk in `<out>.jsonl`; `log` gets the
    diagnostics, `warn` (default: stderr) the warnings. With `cfg.resume` the trial log's finished trials
    and runs are kept and only the missing ones are measured.
    """
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.measure.profiles import resolve_profile
    from edgebranchy.measure.sweep import LOG_VERSION, TrialLog, check_resumable, plan_runs, read_log

    if warn is None:
        def warn(line: str) -> None:
            print(line, file=sys.stderr)
    check_config(cfg)
    check_outputs(cfg)
    art = Artifact.load(cfg.artifact)
    specs, skipped = plan_runs(cfg.batch_size, cfg.backend, cfg.form, single_graph=art.single_graph is not None)
    if not specs:
        raise EdgeBranchyError("nothing to measure: " + "; ".join(skipped) + " (choose another --form)")
    sha = art.sha256()
    head = {"type": "start", "version": LOG_VERSION, "artifact_sha256": sha,
            "environment": {"artifact": str(art.root), "artifact_sha256": sha},
            "config": _sweep_config(cfg), "plan": [s.to_dict() for s in specs], "skipped": skipped}
    del art
    log_path = trial_log_path(cfg.out)
    state = None
    if cfg.resume:
        state = read_log(log_path)
        check_resumable(state.head, head, log_path)
    profile, profile_reason = resolve_profile(cfg.profile)
    stream = TrialLog(log_path, replace=cfg.force, append=cfg.resume, first=None if cfg.resume else head)
    try:
        stream.open()  # before anything is printed: a log that cannot be written is the one error line
        return _run_all(cfg, specs, skipped, state, profile, profile_reason, stream, log=log, warn=warn,
                        progress=progress, on_trial=on_trial)
    except BaseException:
        stream.close()
        if not cfg.resume and stream.trials == 0:  # refused while it set up: nothing to resume, no log left
            stream.path.unlink(missing_ok=True)
        raise


def _run_all(cfg: BenchConfig, specs, skipped, state, profile, profile_reason, stream, *, log, warn, progress,
             on_trial) -> dict:
    from edgebranchy.measure.bench_run import one_run, preflight

    preflight(cfg, specs, profile)
    for line in skipped:
        log(line)
    if state is not None:
        kept = sum(1 for s in specs if state.runs.get(s.id) and state.runs[s.id].result)
        trials = sum(len(r.trials) for r in state.runs.values() if r.result is None)
        log(f"resume: {kept} of {len(specs)} runs finished, {trials} trials of the unfinished one kept")
    log(f"profile: {profile.name} ({profile_reason})")
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
                    runs.append(_kept_run(prior))
                    say(f"{spec.id} ({spec.describe()}): kept from the trial log")
                    continue
                run = one_run(cfg, spec, profile, profile_reason, stream, prior, log=say, warn=warn, bar=bar,
                               on_trial=on_trial, first=not runs)
                stream.write({"type": "run", "run": spec.id, "result": _without_samples(run)})
                runs.append(run)
                say(f"{spec.id} done ({spec.describe()}): p50 {_p50(run, 'baseline'):.4g} -> "
                    f"{_p50(run, 'branchy'):.4g} ms, {_p50(run, 'baseline') / _p50(run, 'branchy'):.2f}x")
    finally:
        if bar is not None:
            bar.close()
    from edgebranchy.measure.results import results_document
    from edgebranchy.util.files import atomic_write_json

    from edgebranchy.artifact.gains import run_gains

    for run in runs:  # while the raw latencies are still in the run: the quantile gains get their intervals
        run["gains"] = run_gains(run)
    results = results_document(cfg.out, runs)
    if skipped:
        results["skipped"] = skipped
    atomic_write_json(cfg.out, results)
    stream.write({"type": "done", "results": str(cfg.out)})
    stream.close()
    return results


def _without_samples(run: dict) -> dict:
    """The run as the trial log keeps it: its raw latencies are already there, in its trial records."""
    return {**run, "variants": {name: {**v, "latency_ms": {k: x for k, x in v["latency_ms"].items() if k != "samples"}}
                                for name, v in run["variants"].items()}}


def _kept_run(prior) -> dict:
    """A finished run from the trial log, its raw latencies put back from its trial records (in trial order,
    as `measure.results.variant_summary` concatenates them)."""
    variants = {}
    for name, v in prior.result["variants"].items():
        recs = sorted((r for r in prior.trials if r["variant"] == name), key=lambda r: r["trial"])
        variants[name] = {**v, "latency_ms": {**v["latency_ms"], "samples": [x for r in recs for x in r["latency_ms"]]}}
    return {**prior.result, "variants": variants}


def _p50(run: dict, variant: str) -> float:
    return run["variants"][variant]["latency_ms"]["p50"]


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


