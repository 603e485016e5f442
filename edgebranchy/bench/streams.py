"""`bench --streams N[,N...]`: N concurrent cameras, each sending batch-1 requests, for the baseline and branchy.

For each N of the sweep: N clients (`bench/stream_clients.py`), each with its own runner whose sessions get
`threads_per_session(N, usable CPUs)` intra-op threads (so N x threads never exceeds the CPUs the process may
use), all sending requests at once for `seconds` per window, `trials` windows per variant interleaved. Per N and
variant: each stream's p50/p99, the latency over all streams, and the aggregate throughput (answers of all
streams over the window's wall time). The document (`artifact/streams.py`, schema "edgebranchy.streams") is
written atomically to `out`; `report` plots throughput and p99 against N from it.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Callable

from edgebranchy.bench.stream_clients import VARIANTS, ClientJob, run_client
from edgebranchy.errors import EdgeBranchyError

from edgebranchy.vocab import STREAM_CLIENTS as CLIENT_KINDS


@dataclass
class StreamsConfig:
    artifact: str
    out: str
    streams: list = field(default_factory=lambda: [1, 2, 4])
    rate: float | None = None      # requests per second per stream; None: back to back
    seconds: float = 3.0           # per window
    trials: int = 3                # windows per variant and N, interleaved
    warmup: int = 200              # calls per variant and client before the first window
    samples: int = 1000
    backend: str = "onnxruntime"
    backend_options: dict = field(default_factory=dict)
    # intra-op threads per session, capped at the usable CPUs divided among the N streams: None the backend's
    # default (ONNX Runtime: 1, measured best at batch 1, benchmarks/results/ort_settings.md), 0 as many as fit
    threads: int | None = None
    clients: str = "processes"     # one process per camera (no shared interpreter lock), or one thread each
    dataset: str | None = None     # None: the data set the artifact records
    data_dir: str | None = None
    force: bool = False


def check_streams_config(cfg: StreamsConfig) -> None:
    from edgebranchy.util.checks import is_finite_at_least, is_int_at_least

    if not cfg.streams or not all(is_int_at_least(n, 1) for n in cfg.streams):
        raise EdgeBranchyError(f"`streams` must be whole numbers >= 1, got {cfg.streams!r}")
    if cfg.rate is not None and not (is_finite_at_least(cfg.rate, 0.0) and cfg.rate > 0):
        raise EdgeBranchyError(f"`rate` must be a positive number of requests per second, got {cfg.rate!r}")
    if not (is_finite_at_least(cfg.seconds, 0.0) and cfg.seconds > 0):
        raise EdgeBranchyError(f"`seconds` must be a positive number, got {cfg.seconds!r}")
    for name, low in (("trials", 1), ("warmup", 0), ("samples", 1), ("threads", 0)):
        if not (name == "threads" and cfg.threads is None) and not is_int_at_least(getattr(cfg, name), low):
            raise EdgeBranchyError(f"`{name}` must be a whole number >= {low}, got {getattr(cfg, name)!r}")
    if cfg.clients not in CLIENT_KINDS:
        raise EdgeBranchyError(f"`clients` must be one of {', '.join(CLIENT_KINDS)}, got {cfg.clients!r}")


def run_streams(cfg: StreamsConfig, log: Callable[[str], None] = lambda s: None) -> dict:
    """Measure every N of `cfg.streams`; returns the streams document, also written to `cfg.out`."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.artifact.streams import SCHEMA, SCHEMA_VERSION
    from edgebranchy.util.cpus import usable_cpus
    from edgebranchy.util.files import atomic_write_json
    from edgebranchy.util.outputs import check_output

    check_streams_config(cfg)
    check_output(cfg.out, [cfg.artifact], "results", force=cfg.force, data_dirs=[cfg.data_dir])
    art = Artifact.load(cfg.artifact)
    x = _samples(cfg, art)
    cpus = usable_cpus()
    log(f"streams: {cpus.describe()}; {cfg.clients}; "
        + ("back to back" if cfg.rate is None else f"{cfg.rate:g} requests/s per stream (latency includes queueing)"))
    points = []
    for n in cfg.streams:
        points.append(_one_n(cfg, art, x, n, cpus.count))
        log(_point_line(points[-1]))
    base = {v: points[0]["variants"][v]["throughput_sps"] for v in VARIANTS} if points[0]["streams"] == 1 else None
    for p in points:
        b, y = (p["variants"][v]["throughput_sps"] for v in VARIANTS)
        p["gain"] = y / b if b else None
        p["scaling"] = {v: p["variants"][v]["throughput_sps"] / base[v] for v in VARIANTS} if base else None
    gain_intervals(points)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    doc = {"schema": SCHEMA, "version": SCHEMA_VERSION, "created": created,
           "environment": _environment(art, cfg, cpus), "config": _config(cfg), "points": points}
    atomic_write_json(cfg.out, doc)
    return doc


def gain_intervals(points: list) -> None:
    """Add to each point `gain_ci` (95% interval of its gain: Student t over the trials' paired log ratios,
    branchy trial t against baseline trial t, which ran next to each other) and, against the sweep's first N,
    `gain_vs_first` (this gain over the first's) with `gain_vs_first_ci` (Welch's t on the two N's per-trial log
    ratios: "is the gain at N=2 smaller than at N=1?" answered with the trials' own spread). None where a point
    has fewer than 2 trials or a gain is missing."""
    from edgebranchy.artifact.replicates import around, half_width, paired_log_ratios, welch_half

    def logs(p):
        v = p["variants"]
        return paired_log_ratios(v["branchy"]["trial_throughput_sps"], v["baseline"]["trial_throughput_sps"])

    first = points[0]
    for p in points:
        p["gain_ci"] = around(p["gain"], half_width(logs(p))) if p.get("gain") else None
        ok = p.get("gain") and first.get("gain")
        p["gain_vs_first"] = p["gain"] / first["gain"] if ok else None
        p["gain_vs_first_ci"] = (around(p["gain_vs_first"], welch_half(logs(first), logs(p)))
                                 if ok and p is not first else None)


def _samples(cfg: StreamsConfig, art):
    from edgebranchy.data.splits import artifact_test_data

    _, data = artifact_test_data(art, cfg.dataset, cfg.data_dir)
    return art.preprocess(data.test.x[:cfg.samples])


def _one_n(cfg: StreamsConfig, art, x, n: int, cpus: int) -> dict:
    from edgebranchy.util.cpus import threads_per_session

    opt = _thread_option(cfg.backend)
    threads = threads_per_session(n, cpus, opt.default if cfg.threads is None else cfg.threads)
    options = dict(cfg.backend_options)
    options[opt.name] = threads
    jobs = [ClientJob(i, str(art.root), cfg.backend, options, x, i * len(x) // n, cfg.trials, cfg.seconds, cfg.rate,
                      cfg.warmup) for i in range(n)]
    got = _run_clients(jobs, cfg.clients)
    return _summarise(n, threads, got)


def _thread_option(backend: str):
    """The backend's declared option for intra-op threads."""
    from edgebranchy.runtime.backends.base import backend_options

    for opt in backend_options(backend):
        if opt.name in ("intra_op_threads", "threads"):
            return opt
    raise EdgeBranchyError(f"the {backend} backend has no thread option: `streams` needs a CPU backend")


def _run_clients(jobs: list, kind: str) -> list:
    """Start every client, wait for all; [(windows, info)] in client order, or the first client's error."""
    if kind == "processes":
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        barrier, results = ctx.Barrier(len(jobs)), ctx.Queue()
        workers = [ctx.Process(target=run_client, args=(j, barrier, results), daemon=True) for j in jobs]
    else:
        barrier, results = threading.Barrier(len(jobs)), queue.Queue()
        workers = [threading.Thread(target=run_client, args=(j, barrier, results), daemon=True) for j in jobs]
    for w in workers:
        w.start()
    got: dict = {}
    try:
        while len(got) < len(jobs):
            msg = results.get(timeout=600)
            if msg[0] == "error":
                raise EdgeBranchyError(f"stream client {msg[1]} failed: {msg[2]}")
            got[msg[1]] = (msg[2], msg[3])
    except queue.Empty:
        raise EdgeBranchyError("a stream client gave no answer for 10 minutes") from None
    finally:
        if len(got) < len(jobs):
            barrier.abort()  # the clients still waiting at it stop
        for w in workers:
            w.join(timeout=30)
            if w.is_alive() and hasattr(w, "terminate"):
                w.terminate()  # a process client that hangs (a thread cannot be stopped; it is a daemon)
    return [got[i] for i in range(len(jobs))]


def _summarise(n: int, threads: int, got: list) -> dict:
    import numpy as np

    from edgebranchy.measure.latency import summarize

    used = sorted({info["threads"] for _, info in got})  # what the clients' runners opened with
    if used != [threads]:
        raise EdgeBranchyError(f"stream clients ran {used} intra-op threads per session, not the {threads} chosen")
    out = {"streams": n, "threads_per_session": threads, "form": got[0][1]["form"], "variants": {}}
    for name in VARIANTS:
        per_stream, all_lat, answers, wall, trial_tp, exits = [], [], 0, 0.0, [], None
        for trial in sorted({w["trial"] for ws, _ in got for w in ws}):
            ws = [w for ws, _ in got for w in ws if w["variant"] == name and w["trial"] == trial]
            span = max(w["end"] for w in ws) - min(w["start"] for w in ws)
            count = sum(len(w["latency_ms"]) for w in ws)
            answers, wall = answers + count, wall + span
            trial_tp.append(count / span)
        for ws, _ in got:
            lat = [v for w in ws if w["variant"] == name for v in w["latency_ms"]]
            all_lat += lat
            s = summarize(lat)
            per_stream.append({"requests": s["n"], "p50_ms": s["p50"], "p99_ms": s["p99"]})
            if name == "branchy":
                mine = np.sum([w["exit_counts"] for w in ws if w["variant"] == name], axis=0)
                exits = mine if exits is None else exits + mine
        s = summarize(all_lat)
        out["variants"][name] = {"throughput_sps": answers / wall, "trial_throughput_sps": trial_tp,
                                 "p50_ms": s["p50"], "p99_ms": s["p99"], "per_stream": per_stream}
        if exits is not None:
            out["variants"][name]["exit_fractions"] = (exits / exits.sum()).tolist()
    return out


def _point_line(p: dict) -> str:
    b, y = p["variants"]["baseline"], p["variants"]["branchy"]
    return (f"N={p['streams']} ({p['threads_per_session']} threads/session): baseline {b['throughput_sps']:.0f}/s "
            f"p99 {b['p99_ms']:.3f} ms, branchy {y['throughput_sps']:.0f}/s p99 {y['p99_ms']:.3f} ms, "
            f"gain {y['throughput_sps'] / b['throughput_sps']:.2f}x")


def _environment(art, cfg: StreamsConfig, cpus) -> dict:
    import platform

    from edgebranchy.measure.environment import cpu_model, library_versions

    return {"artifact": str(art.root), "artifact_sha256": art.sha256(), "model": art.manifest.get("model"),
            "host": platform.node(), "machine": platform.machine(), "cpus": cpus.to_dict(),
            "libraries": library_versions(), "cpu_model": cpu_model()}


def _config(cfg: StreamsConfig) -> dict:
    d = asdict(cfg)
    d.pop("force")
    return d
