"""The results-file contract: schema name and version, and the validator of `edgebranchy.results` documents.

Bench writes these files, the report and `calibrate --cost` read them; all of them take the schema from here.
Version 2 holds a list of runs (one per combination of a sweep), each what a version-1 document's body was plus
`id` and `label`; the raw per-call latencies live in a side file (`artifact/latencies.py`). Version 3 (what bench
writes) adds what intervals from the trials need: each variant's `latency_ms.trials` (calls and p50/p90/p99/
p999/mean of every trial), energy estimates' per-trial `values` and `trials`, `ci95` null for one trial.
Versions 1 and 2 still load.
"""
from __future__ import annotations

import math
from typing import Any

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int, is_number
from edgebranchy.util.schema import type_name as _type_name

SCHEMA = "edgebranchy.results"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ENERGY_KINDS = ("measured", "estimated")
LATENCY_PER = ("sample", "batch")

_NUMBER = "a number"
_INT = "an integer"
_STR = "a string"
_OBJ = "an object"
_LIST = "a list"


def _is(value: Any, kind: str) -> bool:
    if kind == _NUMBER:
        return is_number(value)
    if kind == _INT:
        return is_int(value)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _OBJ:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    raise ValueError(kind)


class _Checker:
    """Walks one results document; every failure names the file and the dotted key."""

    def __init__(self, name: str, version: int = SCHEMA_VERSION) -> None:
        self.name = name
        self.version = version

    def fail(self, message: str) -> None:
        raise EdgeBranchyError(f"results file {self.name}: {message}")

    def get(self, obj: dict, key: str, where: str, kind: str, *, nullable: bool = False,
            optional: bool = False) -> Any:
        dotted = f"{where}.{key}" if where else key
        if key not in obj:
            if optional:
                return None
            self.fail(f"missing key '{dotted}'")
        value = obj[key]
        if value is None and (nullable or optional):
            return None
        if not _is(value, kind):
            want = kind + (" or null" if nullable or optional else "")
            self.fail(f"key '{dotted}' should be {want}, got {_type_name(value)}")
        return value

    def number(self, obj: dict, key: str, where: str, *, minimum: float | None = None,
               maximum: float | None = None, nullable: bool = False) -> float | None:
        value = self.get(obj, key, where, _NUMBER, nullable=nullable)
        if value is None:
            return None
        dotted = f"{where}.{key}" if where else key
        if minimum is not None and value < minimum:
            self.fail(f"key '{dotted}' is {value}; it must be >= {minimum}")
        if maximum is not None and value > maximum:
            self.fail(f"key '{dotted}' is {value}; it must be <= {maximum}")
        return value

    def choice(self, obj: dict, key: str, where: str, choices: tuple[str, ...]) -> str:
        value = self.get(obj, key, where, _STR)
        if value not in choices:
            dotted = f"{where}.{key}" if where else key
            self.fail(f"key '{dotted}' is {value!r}; expected one of {', '.join(map(repr, choices))}")
        return value

    def numbers(self, obj: dict, key: str, where: str, *, integer: bool = False,
                allow_null: bool = False, non_empty: bool = False, minimum: float | None = None) -> list:
        values = self.get(obj, key, where, _LIST)
        dotted = f"{where}.{key}" if where else key
        if non_empty and not values:
            self.fail(f"key '{dotted}' is an empty list")
        kind = _INT if integer else _NUMBER
        for i, v in enumerate(values):
            if v is None and allow_null:
                continue
            if not _is(v, kind):
                self.fail(f"key '{dotted}[{i}]' should be {kind}, got {_type_name(v)}")
            if minimum is not None and v < minimum:
                self.fail(f"key '{dotted}[{i}]' is {v}; it must be >= {minimum}")
        return values

    def interval(self, obj: dict, key: str, where: str) -> list:
        values = self.numbers(obj, key, where)
        dotted = f"{where}.{key}"
        if len(values) != 2:
            self.fail(f"key '{dotted}' should be [low, high], got {len(values)} values")
        if values[0] > values[1]:
            self.fail(f"key '{dotted}' has low {values[0]} > high {values[1]}")
        return values


def _reject_non_finite(check: _Checker, value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        what = "NaN" if math.isnan(value) else "infinite"
        check.fail(f"key '{where or '(top level)'}' is {what}; results must hold finite numbers")
    elif isinstance(value, dict):
        for k, v in value.items():
            _reject_non_finite(check, v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_non_finite(check, v, f"{where}[{i}]")


def _check_environment(c: _Checker, doc: dict) -> None:
    env = c.get(doc, "environment", "", _OBJ)
    w = "environment"
    for key in ("profile", "backend", "precision", "model", "dataset"):
        c.get(env, key, w, _STR)
    c.get(env, "cpu_model", w, _STR, nullable=True)
    if "cpu_cores" not in env:
        c.fail("missing key 'environment.cpu_cores'")
    cores = env["cpu_cores"]   # a count, or {"logical", "physical"} as measure.environment writes it
    if cores is not None and not (_is(cores, _INT) or isinstance(cores, dict)):
        c.fail(f"key 'environment.cpu_cores' should be an integer, an object or null, "
               f"got {_type_name(cores)}")
    c.get(env, "versions", w, _OBJ)
    c.get(env, "backend_options", w, _OBJ)
    c.numbers(env, "thresholds", w, allow_null=True)
    c.get(env, "power_source", w, _STR, nullable=True)
    for key in ("profile_source", "hostname", "governor", "artifact_sha256", "power_source_reason"):
        c.get(env, key, w, _STR, optional=True)
    # power_mode ({"name", "id"} or {"error"} from nvpmodel) and gpu (a list of GPUs, or
    # {"error"}) are descriptive facts: any JSON value is accepted and shown as it is.


def _check_config(c: _Checker, doc: dict) -> None:
    cfg = c.get(doc, "config", "", _OBJ)
    for key, minimum in (("batch_size", 1), ("samples", 1), ("trials", 1), ("warmup", 0)):
        value = c.get(cfg, key, "config", _INT)
        if value < minimum:
            c.fail(f"key 'config.{key}' is {value}; it must be >= {minimum}")


def _check_idle(c: _Checker, doc: dict) -> None:
    idle = c.get(doc, "idle", "", _OBJ, nullable=True)
    if idle is None:
        return
    c.number(idle, "watts", "idle", minimum=0)
    c.number(idle, "seconds", "idle", minimum=0)
    c.choice(idle, "kind", "idle", ENERGY_KINDS)
    c.get(idle, "source", "idle", _STR)


def _check_interval(c: _Checker, obj: dict, key: str, where: str) -> None:
    if c.version < 3 or obj.get(key, 0) is not None:   # from version 3 on, null for a run of one trial
        c.interval(obj, key, where)


def _check_estimate(c: _Checker, obj: dict, key: str, where: str, *, nullable: bool) -> None:
    est = c.get(obj, key, where, _OBJ, nullable=nullable)
    if est is None:
        return
    w = f"{where}.{key}"
    c.number(est, "median", w)
    _check_interval(c, est, "ci95", w)
    if (c.version >= 3 or "values" in est) and len(c.numbers(est, "trials", w, integer=True, minimum=0)) != len(
            c.numbers(est, "values", w, non_empty=True)):
        c.fail(f"'{w}.trials' has {len(est['trials'])} entries but '{w}.values' has {len(est['values'])}")


def _check_trials(c: _Checker, lat: dict, lw: str) -> None:
    """`latency_ms.trials`: calls and each statistic per trial (version 3; optional before)."""
    if c.version < 3 and "trials" not in lat:
        return
    table, tw = c.get(lat, "trials", lw, _OBJ), f"{lw}.trials"
    calls = c.numbers(table, "calls", tw, integer=True, non_empty=True, minimum=1)
    for key in ("p50", "p90", "p99", "p999", "mean"):
        if len(c.numbers(table, key, tw, minimum=0)) != len(calls):
            c.fail(f"'{tw}.{key}' has {len(table[key])} entries for {len(calls)} trials")
    n = lat.get("count", len(lat["samples"]) if isinstance(lat.get("samples"), list) else None)
    if n is not None and sum(calls) != n:
        c.fail(f"'{tw}.calls' add up to {sum(calls)} calls but the run has {n} latencies")


def _check_variant(c: _Checker, variants: dict, name: str) -> None:
    v = c.get(variants, name, "variants", _OBJ)
    w = f"variants.{name}"
    c.number(v, "accuracy", w, minimum=0, maximum=1)
    lat = c.get(v, "latency_ms", w, _OBJ)
    lw = f"{w}.latency_ms"
    c.choice(lat, "per", lw, LATENCY_PER)
    if "samples" in lat or c.version == 1:  # version 2 on: the raw latencies are in the side file
        c.numbers(lat, "samples", lw, non_empty=True, minimum=0)
    if "count" in lat:
        c.get(lat, "count", lw, _INT)
    for key in ("p50", "p90", "p99", "p999", "mean"):
        c.number(lat, key, lw, minimum=0)
    _check_interval(c, lat, "ci95", lw)
    _check_trials(c, lat, lw)
    c.number(v, "throughput_sps", w, minimum=0)
    energy = c.get(v, "energy", w, _OBJ, nullable=True)
    if energy is not None:
        ew = f"{w}.energy"
        c.choice(energy, "kind", ew, ENERGY_KINDS)
        c.get(energy, "source", ew, _STR)
        _check_estimate(c, energy, "per_inference_mj", ew, nullable=False)
        _check_estimate(c, energy, "dynamic_per_inference_mj", ew, nullable=True)
        trials = c.get(energy, "trials", ew, _LIST)
        for i, t in enumerate(trials):
            if not isinstance(t, dict):
                c.fail(f"key '{ew}.trials[{i}]' should be an object, got {_type_name(t)}")


def _check_branchy_exits(c: _Checker, doc: dict) -> None:
    br = doc["variants"]["branchy"]
    w = "variants.branchy"
    counts = c.numbers(br, "exit_counts", w, integer=True, non_empty=True, minimum=0)
    fractions = c.numbers(br, "exit_fractions", w, non_empty=True, minimum=0)
    if len(counts) != len(fractions):
        c.fail(f"'{w}.exit_counts' has {len(counts)} entries but '{w}.exit_fractions' has {len(fractions)}")
    if sum(counts) > 0 and abs(sum(fractions) - 1.0) > 1e-3:
        c.fail(f"'{w}.exit_fractions' sum to {sum(fractions):.6g}, not 1")
    c.numbers(br, "segment_latency_ms", w, minimum=0)
    me = doc["environment"].get("model_exits")  # per exit, the model's number (absent before issue 24)
    if me is not None and not (isinstance(me, list) and len(me) == len(counts) and all(
            type(m) is int and m >= k for k, m in enumerate(me)) and me == sorted(set(me))):
        c.fail(f"'environment.model_exits' should be {len(counts)} increasing whole numbers >= 0, got {me!r}")
    thresholds = doc["environment"]["thresholds"]
    if len(thresholds) not in (len(counts) - 1, len(counts)):
        c.fail(f"'environment.thresholds' has {len(thresholds)} entries for {len(counts)} exits "
               f"(expected {len(counts) - 1})")


def _check_calibration(c: _Checker, doc: dict) -> None:
    cal = c.get(doc, "calibration", "", _OBJ, nullable=True)
    if cal is None:
        return
    # hand-picked thresholds (`calibrate --thresholds`) have no frontier
    frontier = c.get(cal, "frontier", "calibration", _LIST, nullable=True) or []
    for i, point in enumerate(frontier):
        w = f"calibration.frontier[{i}]"
        if not isinstance(point, dict):
            c.fail(f"key '{w}' should be an object, got {_type_name(point)}")
        c.number(point, "accuracy", w, minimum=0, maximum=1)
        c.number(point, "relative_cost", w, minimum=0)
        c.numbers(point, "thresholds", w, allow_null=True)
    val = c.get(cal, "validation", "calibration", _OBJ)
    c.number(val, "accuracy", "calibration.validation", minimum=0, maximum=1)
    c.number(val, "relative_cost", "calibration.validation", minimum=0)
    c.get(cal, "method", "calibration", _STR, optional=True)
    c.get(cal, "cost_source", "calibration", _STR, optional=True)
    if "thresholds" in cal:
        c.numbers(cal, "thresholds", "calibration", allow_null=True)


def _check_accuracy_context(c: _Checker, doc: dict) -> None:
    """`accuracy_context` (artifact/plausibility.py; optional): classes, chance, exit accuracies."""
    ctx, w = c.get(doc, "accuracy_context", "", _OBJ, optional=True), "accuracy_context"
    if ctx is not None:
        c.get(ctx, "classes", w, _INT)
        c.number(ctx, "chance", w, minimum=0, maximum=1)
        bad = [(i, a) for i, a in enumerate(c.numbers(ctx, "exit_accuracy", w, allow_null=True))
               if a is not None and not 0 <= a <= 1]
        if bad:
            c.fail(f"key '{w}.exit_accuracy[{bad[0][0]}]' is {bad[0][1]}; it must be in [0, 1]")


def _check_run(c: _Checker, doc: dict) -> None:
    c.get(doc, "created", "", _STR)
    _check_environment(c, doc)
    _check_config(c, doc)
    _check_idle(c, doc)
    variants = c.get(doc, "variants", "", _OBJ)
    _check_variant(c, variants, "baseline")
    _check_variant(c, variants, "branchy")
    _check_branchy_exits(c, doc)
    _check_calibration(c, doc)
    gains = c.get(doc, "gains", "", _OBJ, optional=True)   # artifact/gains.run_gains, stored by bench
    if gains is not None:
        from edgebranchy.artifact.gains import check_stored

        check_stored(gains, c.version, f"results file {c.name}")
    _check_accuracy_context(c, doc)
    pairs = c.get(doc, "accuracy_pairs", "", _OBJ, optional=True)  # discordant counts (paired accuracy interval)
    if pairs is not None:
        for key in ("baseline_only", "branchy_only", "n"):
            c.get(pairs, key, "accuracy_pairs", _INT)
            if pairs[key] < 0:
                c.fail(f"key 'accuracy_pairs.{key}' should be >= 0, got {pairs[key]}")
        if pairs["baseline_only"] + pairs["branchy_only"] > pairs["n"]:
            c.fail("accuracy_pairs: more discordant samples than samples")


def validate_run(run: Any, name: str) -> dict:
    """Check one run of the current version (a bench trial log's "run" record); `name` in every error."""
    c = _Checker(name)
    if not isinstance(run, dict):
        c.fail(f"a run should be an object, got {_type_name(run)}")
    _reject_non_finite(c, run, "")
    _check_run(c, run)
    return run


def validate_results(doc: Any, name: str) -> dict:
    """Check a parsed results document (schema version 1, 2 or 3); `name` appears in every error."""
    c = _Checker(name)
    if not isinstance(doc, dict):
        c.fail(f"is not a results document (top level is {_type_name(doc)}, expected an object)")
    schema = c.get(doc, "schema", "", _STR)
    if schema != SCHEMA:
        c.fail(f"is not an edgebranchy results file (schema {schema!r}, expected {SCHEMA!r})")
    version = doc.get("version", doc.get("schema_version"))
    if version is None:
        c.fail(f"missing key '{'version' if 'runs' in doc else 'schema_version'}'")
    if not is_int(version):
        c.fail(f"key 'version' should be an integer, got {_type_name(version)}")
    if version not in READABLE_VERSIONS:
        raise EdgeBranchyError(
            f"results file {name} has schema version {version}; this edgebranchy reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))} (use the edgebranchy release that wrote it, or re-run bench)")
    _reject_non_finite(c, doc, "")
    if version == 1:
        _check_run(_Checker(name, 1), doc)
        return doc
    runs = c.get(doc, "runs", "", _LIST)
    if not runs:
        c.fail("key 'runs' is an empty list")
    c.get(doc, "latencies", "", _STR, optional=True)
    c.get(doc, "latencies_sha256", "", _STR, optional=True)
    ids, labels = set(), set()
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            c.fail(f"key 'runs[{i}]' should be an object, got {_type_name(run)}")
        rid = c.get(run, "id", f"runs[{i}]", _STR)
        label = c.get(run, "label", f"runs[{i}]", _STR)
        if rid in ids or label in labels:
            c.fail(f"runs[{i}] repeats the id {rid!r} or the label {label!r} of an earlier run")
        ids.add(rid)
        labels.add(label)
        _check_run(_Checker(f"{name} (run {rid})", version), run)
    return doc


def runs_of(doc: dict) -> list[dict]:
    """The runs of a validated document: version 2's or 3's list, or a version-1 document as one run (id r1)."""
    if doc.get("version", doc.get("schema_version")) == 1:
        run = {k: v for k, v in doc.items() if k not in ("schema", "schema_version")}
        run.setdefault("id", "r1")  # no label: the report's labels name a run that has none of its own
        return [run]
    return list(doc["runs"])


def run_label(run: dict) -> str:
    """model · dataset · device profile · backend/precision · batch N · form · date (made unique by
    `unique_labels`)."""
    env, cfg = run["environment"], run["config"]
    bs = cfg["batch_size"]
    form = (env.get("batch1_form") or "segments") if bs == 1 else "segments"
    parts = [env["model"], env["dataset"], env["profile"], f"{env['backend']}/{env['precision']}", f"batch {bs}", form,
             str(run.get("created", ""))[:10]]
    return " · ".join(p for p in parts if p)


def unique_labels(labels: list[str]) -> list[str]:
    """The labels with " (2)", " (3)", ... added to repeats, so every run's label is distinct."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0) + 1
        seen[label] = n
        out.append(label if n == 1 else f"{label} ({n})")
    while len(set(out)) < len(out):   # "x (2)" was itself a given label: number again
        out = unique_labels(out)
    return out


def load_runs_doc(path) -> list[dict]:
    """The validated runs of a results file of either version (version 1: one run)."""
    from edgebranchy.util.readers import load_json

    return runs_of(validate_results(load_json(path, "results"), str(path)))
