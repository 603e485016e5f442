"""What one `bench` measures (`BenchConfig`), the checks of its settings and outputs before anything runs, and
the backend options each run opens its runner with."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from edgebranchy.bench.plan import as_list
from edgebranchy.errors import EdgeBranchyError


@dataclass
class BenchConfig:
    artifact: str
    out: str
    # backend, batch_size and form take one value or a list of them: a sweep of every combination, one run
    # each, into one results file (the batch-1 forms apply only at batch 1; see plan.plan_runs)
    backend: str | Sequence[str] = "onnxruntime"
    backend_options: dict = field(default_factory=dict)  # one backend's options (a sweep: options_by_backend)
    profile: str = "auto"
    power: str | None = None  # override of the profile's power source
    dataset: str | None = None  # None: the data set the artifact records
    data_dir: str | None = None
    batch_size: int | Sequence[int] = 1
    samples: int = 1000
    trials: int = 25  # many short interleaved trials: the replicates of every interval (gate_noise.md)
    warmup: int = 50  # batches per variant before measuring
    #: None: WINDOW_S, lengthened where the power source needs longer for an energy figure (run.trial_window)
    min_window_s: float | None = None
    idle_s: float = 3.0
    segment_repeats: int = 200
    pipelined: bool = False
    # Speculation (segment k+1 on the second lane while the host decides exit k) is off unless asked for:
    # no benchmark on a GPU has shown it pays yet, and at batch 1 it doubles the GPU work of a sample that
    # leaves early. Turn it on with `speculate` and compare; its discarded work is reported separately.
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
    # which graphs each backend runs, one value or a list (fp32 and int8 side by side); None: the backend's own
    precision: str | Sequence[str] | None = None
    resume: bool = False  # continue the bench whose trial log is OUT.jsonl


#: what the bench's start record compares on resume (everything that changes what is measured)
NOT_COMPARED = ("artifact", "out", "force", "resume", "conditions_root")


def check_config(cfg: BenchConfig) -> None:
    """Types and ranges of the numeric settings (the API's check; the CLI's argument types say the same). The
    messages name the setting in backquotes (`batch_size`); the CLI shows its flag instead."""
    from edgebranchy.util.checks import is_finite_at_least
    from edgebranchy.util.limits import check_whole, limit, reason

    for name, low, bound in (("batch_size", 1, "batch"), ("samples", 1, "samples"), ("trials", 1, "trials"),
                             ("warmup", 0, "warmup"), ("warmup_max", 0, "warmup"),
                             ("segment_repeats", 1, "repeats")):
        v = getattr(cfg, name)
        for one in (as_list(v) if name == "batch_size" and not isinstance(v, bool) else [v]):
            check_whole(name, one, low, bound)
    for name in ("batch_size", "backend", "form"):
        if not as_list(getattr(cfg, name)):
            raise EdgeBranchyError(f"`{name}` needs at least one value")
    for name in ("min_window_s", "idle_s", "gap_s"):
        v = getattr(cfg, name)
        if v is None and name in ("min_window_s", "gap_s"):  # None: chosen at run time
            continue
        if not is_finite_at_least(v, 0.0):
            raise EdgeBranchyError(f"`{name}` must be a finite number of seconds >= 0, got {v!r}")
        if v > limit("seconds"):
            raise EdgeBranchyError(f"`{name}` must be at most {limit('seconds'):g} seconds ({reason('seconds')}), "
                                   f"got {v!r}")


#: the default trial window: 25 x 0.4 s is the time of the former 5 x 2 s, with five times the replicates
WINDOW_S = 0.4


def sweep_config(cfg: BenchConfig) -> dict:
    """The settings the trial log's start record keeps (JSON-ready; the swept ones as lists)."""
    d = {k: v for k, v in asdict(cfg).items() if k not in NOT_COMPARED}
    for k in ("backend", "batch_size", "form") + (("precision",) if d.get("precision") is not None else ()):
        d[k] = as_list(d[k])
    if d.get("precision") is None:
        d.pop("precision", None)  # a bench without the sweep resumes the trial logs written before it existed
    return json.loads(json.dumps(d))


def trial_log_path(out: str | os.PathLike) -> Path:
    """Where the trials of the results file `out` are streamed: OUT.jsonl."""
    out = Path(out)
    return out.with_name(out.name + ".jsonl")


def staged_log_path(out: str | os.PathLike) -> Path:
    """Where a bench with `force` streams its trials until it is done (.OUT.jsonl.new): the earlier results and
    their trial log stay as they were until the new ones are complete."""
    log = trial_log_path(out)
    return log.with_name(f".{log.name}.new")


def check_outputs(cfg: BenchConfig) -> None:
    """Refuse, before anything runs, a results path that would destroy an input or an earlier run."""
    from edgebranchy.artifact.latencies import side_path
    from edgebranchy.util.outputs import check_output, refuse_symlink

    inputs = [cfg.artifact] + [o.get("checkpoint") for o in
                               ((cfg.options_by_backend or {}).values() if cfg.options_by_backend else
                                [cfg.backend_options])]
    if cfg.profile and Path(cfg.profile).suffix == ".toml":
        inputs.append(cfg.profile)
    log = trial_log_path(cfg.out)
    for p in (log, side_path(cfg.out), staged_log_path(cfg.out)):
        refuse_symlink(p)
    if cfg.resume:
        if not log.is_file():
            raise EdgeBranchyError(f"no trial log at {log} to resume: run bench without `resume`")
        if Path(cfg.out).exists() and not cfg.force:
            raise EdgeBranchyError(f"{cfg.out} is there already: that bench finished, there is nothing to resume "
                                   "(choose a new `out` for a new bench)")
    elif log.exists() and not cfg.force:
        if _finished(log, cfg.out):
            raise EdgeBranchyError(f"{cfg.out} and its trial log {log.name} are a finished bench: choose a new `out` "
                                   f"for a new bench (or pass `force` to replace both); `edgebranchy report {cfg.out}` "
                                   "shows the finished one")
        raise EdgeBranchyError(f"{log} holds the trial log of an unfinished bench: continue it with `resume`, "
                               f"or choose a new `out` (or pass `force` to replace it and {cfg.out})")
    check_output(cfg.out, inputs, "results", force=cfg.force, data_dirs=[cfg.data_dir])
    if not cfg.resume:
        check_output(log, inputs, "trial-log", force=cfg.force, data_dirs=[cfg.data_dir])
    side = side_path(cfg.out)
    if side.exists() and not cfg.force and not cfg.resume:
        raise EdgeBranchyError(f"{side} holds the latencies of an earlier run: choose a new `out` "
                               f"(or pass `force` to replace it and {cfg.out})")


def _finished(log: Path, out) -> bool:
    """The trial log is a finished bench's: its results file is there, or the log ends with its "done" record."""
    from edgebranchy.bench.trial_log import read_log

    if Path(out).exists():
        return True
    try:
        return read_log(log).done
    except EdgeBranchyError:
        return False


def runtime_options(cfg: BenchConfig, backend: str, profile, precision: str | None = None) -> dict:
    """The options a run on `backend` opens its runner with: the profile's [runtime] table (the keys the backend
    declares), overridden by the options given for that backend, and by the run's `precision` (a sweep)."""
    from edgebranchy.runtime.backends.base import backend_options
    from edgebranchy.runtime.backends.options import profile_options

    given = dict(cfg.options_by_backend.get(backend, {}) if cfg.options_by_backend is not None
                 else cfg.backend_options)
    return {**profile_options(backend_options(backend), profile.runtime), **given,
            **({"precision": precision} if precision else {})}


def backend_can_speculate(backend: str) -> bool:
    """Speculation needs asynchronous launches on two lanes (GPU streams): the vocabulary says which backends."""
    from edgebranchy.vocab import can_speculate

    return can_speculate(backend)
