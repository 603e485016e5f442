"""The streams-file contract (`bench --streams`): schema name and version, and its validator.

A document holds, per N of the sweep (`points`, N ascending as measured): `streams` (N), `threads_per_session`,
`form` (the batch-1 form and why), and per variant (`baseline`, `branchy`): `throughput_sps` (answers of all
streams per second of wall time, over every trial), `trial_throughput_sps`, `p50_ms` / `p99_ms` over all streams'
requests, `per_stream` (requests, p50_ms, p99_ms of each stream) and, for branchy, `exit_fractions`; then `gain`
(branchy's throughput over the baseline's at that N) and `scaling` (each variant's throughput over its N=1
throughput; null when the sweep has no N=1 first). Optional (written since they exist): `gain_ci` (95% interval of
the gain over the trials), `gain_vs_first` (the gain over the first N's) and `gain_vs_first_ci`. `config.rate` null: requests back to back; a number: requests
per second per stream, latency counted from when a request was due (queueing included).
"""
from __future__ import annotations

from typing import Any

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.checks import is_int, is_number

SCHEMA = "edgebranchy.streams"
SCHEMA_VERSION = 1
VARIANTS = ("baseline", "branchy")


def _num(obj: Any, key: str, where: str, nullable: bool = False) -> None:
    v = obj.get(key) if isinstance(obj, dict) else None
    if v is None and nullable and isinstance(obj, dict) and key in obj:
        return
    if not is_number(v) or v < 0:
        raise EdgeBranchyError(f"{where}: key '{key}' should be a number >= 0, got {v!r}")


def _interval(v: Any, where: str) -> None:
    if v is None:
        return
    if not (isinstance(v, list) and len(v) == 2 and all(is_number(x) and x >= 0 for x in v) and v[0] <= v[1]):
        raise EdgeBranchyError(f"{where} should be null or [low, high] with 0 <= low <= high, got {v!r}")


def validate_streams(doc: Any, name: str) -> dict:
    """`doc` when it is a valid streams document; EdgeBranchyError naming `name` and the first problem."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise EdgeBranchyError(f"{name}: not a streams file (schema {SCHEMA!r})")
    if doc.get("version") != SCHEMA_VERSION:
        raise EdgeBranchyError(f"{name}: streams version {doc.get('version')!r} is not {SCHEMA_VERSION}")
    points = doc.get("points")
    if not isinstance(points, list) or not points or not isinstance(doc.get("config"), dict):
        raise EdgeBranchyError(f"{name}: key 'points' should be a non-empty list, and 'config' an object")
    for i, p in enumerate(points):
        where = f"{name}: points[{i}]"
        if not isinstance(p, dict) or not is_int(p.get("streams")) or p["streams"] < 1:
            raise EdgeBranchyError(f"{where}: key 'streams' should be an integer >= 1")
        _num(p, "gain", where, nullable=True)
        if "gain_vs_first" in p:
            _num(p, "gain_vs_first", where, nullable=True)
        for key in ("gain_ci", "gain_vs_first_ci"):
            _interval(p.get(key), f"{where}: key '{key}'")
        for v in VARIANTS:
            var = (p.get("variants") or {}).get(v)
            if not isinstance(var, dict) or not isinstance(var.get("per_stream"), list):
                raise EdgeBranchyError(f"{where}: variants.{v} should be an object with a 'per_stream' list")
            for key in ("throughput_sps", "p50_ms", "p99_ms"):
                _num(var, key, f"{where}.variants.{v}")
            if len(var["per_stream"]) != p["streams"]:
                raise EdgeBranchyError(f"{where}.variants.{v}: {len(var['per_stream'])} streams listed, not "
                                       f"{p['streams']}")
    return doc
