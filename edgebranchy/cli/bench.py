"""`edgebranchy bench`: latency and energy, baseline versus BranchyNet, on this device."""
from __future__ import annotations

import argparse
import sys

from edgebranchy.cli._args import (add_backend_flags, add_drift_flags, batch_size, bounded_int, bounded_seconds,
                                   comma_list, positive_float, positive_int, precisions, samples, trials)
from edgebranchy.vocab import BACKEND_NAMES, FORMS, STREAM_CLIENTS

ORDER = 50


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bench", help="measure latency and energy of the baseline and the BranchyNet",
        description="Run baseline.onnx and the early-exit segments on the same test samples, trials interleaved "
                    "(baseline, branchy, baseline, ...), one energy window per trial after measuring idle power "
                    "with the models loaded. Energy comes from the profile's power source: tegrastats or INA3221 "
                    "on Jetson, NVML on NVIDIA GPUs, RAPL on x86 (measured), or a CPU-time model (estimated). "
                    "Every finished trial is appended to OUT.jsonl; OUT is written atomically at the end.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("artifact", help="artifact directory from `edgebranchy export`")
    p.add_argument("--backend", type=_backends, default=None,
                   help=f"{', '.join(BACKEND_NAMES)}, or a comma list to sweep (default: the profile's)")
    p.add_argument("--profile", default="auto", help="device profile name or TOML path; 'auto' detects it")
    p.add_argument("--power", help="override the profile's power source (auto, tegrastats, ina3221, nvml, rapl, "
                                   "estimate)")
    p.add_argument("--dataset", help="test data set (default: the one the artifact was trained on): fashion-mnist, "
                                     "mnist, cifar10, digits, synthetic or imagefolder")
    p.add_argument("--data-dir", help="directory with the data set's files (default: where the artifact's data set "
                                      "was, else the system's copy); for an image folder artifact another folder of "
                                      "DIR/<class>/ images is read whole as test data")
    p.add_argument("--batch-size", type=_batch_sizes, default="1",  # a string default goes through the type
                   help="batch size, or a comma list to sweep (1,8,64): one run each, one results file")
    p.add_argument("--precision", type=precisions, default=None,
                   help="which graphs (engines) the backend runs: fp32, fp16, int8, auto (int8 where the artifact "
                        "records it faster), or a comma list for one run each, side by side (int8 runs use the "
                        "thresholds recalibrated on the int8 graphs; default: the profile's)")
    p.add_argument("--form", type=_forms, default="auto",
                   help="batch-1 form: segments, single-graph, or auto (both measured, the faster runs); a comma "
                        "list sweeps them; larger batches always run per segment")
    p.add_argument("--samples", type=samples, default=1000, help="test samples per pass")
    p.add_argument("--trials", type=trials, default=25, help="trials per variant (interleaved)")
    p.add_argument("--warmup", type=bounded_int(0, "warmup"), default=50, help="warm-up batches per variant (at least; see --warmup-max)")
    p.add_argument("--warmup-max", type=bounded_int(0, "warmup"), default=2000,
                   help="keep warming up (cycling over the same 20 batches) until the median latency of the last 20 "
                        "is within 5%% of the 20 before and the last three window medians vary by less than 5%% "
                        "(CV), at most this many batches; 0: exactly --warmup batches")
    p.add_argument("--min-window", type=bounded_seconds(), default=None,
                   help="seconds per trial window (whole passes; default 0.4, longer where the power source needs "
                        "it for an energy figure: 1 s for a sensor read every 0.1 s)")
    p.add_argument("--idle", type=bounded_seconds(), default=3.0, help="seconds of idle-power measurement")
    add_backend_flags(p)
    st = p.add_argument_group("concurrent streams (bench --streams: N cameras at once, batch 1, instead of the trials)")
    st.add_argument("--streams", type=_stream_counts, default=None, metavar="N[,N...]",
                    help="N concurrent clients sending batch-1 requests, baseline and branchy, for each N: per-stream "
                         "p50/p99 and the aggregate throughput, written to OUT (schema edgebranchy.streams); intra-op "
                         "threads per session: --threads (default: the backend's; 0: as many as fit) capped at the usable CPUs "
                         "divided among the N streams")
    st.add_argument("--rate", type=positive_float, default=None, metavar="HZ",
                    help="requests per second per stream, at fixed times (latency then includes queueing); default: "
                         "back to back")
    st.add_argument("--stream-seconds", type=positive_float, default=3.0, help="seconds per measurement window")
    st.add_argument("--clients", choices=STREAM_CLIENTS, default=STREAM_CLIENTS[0],
                    help="one process per stream (no shared interpreter lock) or one thread per stream in this process")
    p.add_argument("--pipelined", action="store_true", help="branchy runs as a pipelined stream (throughput)")
    p.add_argument("--speculate", action="store_true",
                   help="run segment k+1 on the second GPU lane while exit k is decided (tensorrt, torch CUDA); off "
                        "by default: not shown to pay yet, and it doubles the work of samples that leave early")
    p.add_argument("--lock-clocks", action="store_true",
                   help="run `jetson_clocks` for the bench (root) and restore the previous clocks afterwards")
    p.add_argument("--external-power", metavar="CSV",
                   help="CSV of an external power meter (USB meter, Joulescope) logged during the bench: merged onto "
                        "the trial windows as measured board power, its clock offset estimated from the edges")
    p.add_argument("--gap", type=bounded_seconds(), help="idle seconds between trials (default 1 with --external-power, else 0)")
    p.add_argument("--no-conditions", action="store_true",
                   help="do not read clocks, temperatures and fans around each trial (no throttle check)")
    add_drift_flags(p)
    p.add_argument("--out", default="runs/results.json", help="results file (JSON); trials also go to OUT.jsonl")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier results file and its trial log at OUT (never any other file)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted bench whose trial log is OUT.jsonl (same command): finished trials "
                        "and runs are kept, only the missing ones are measured")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true",
                     help="print only the verdict, warnings and the results path (no diagnostics, no progress bar)")
    out.add_argument("--json", action="store_true",
                     help="print a machine-readable summary of the runs on stdout instead of the table")
    return p


def _backend_name(text: str) -> str:
    if text not in BACKEND_NAMES:
        raise argparse.ArgumentTypeError(f"unknown backend {text!r}; choose {', '.join(BACKEND_NAMES)}")
    return text


def _form(text: str) -> str:
    if text not in FORMS:
        raise argparse.ArgumentTypeError(f"unknown form {text!r}; choose {', '.join(FORMS)}")
    return text


_batch_sizes = comma_list("batch size", batch_size)
_stream_counts = comma_list("stream count", positive_int)
_backends = comma_list("backend", _backend_name)
_forms = comma_list("form", _form)



def _options_by_backend(args, backends: list) -> dict:
    """The backend flags given, per backend of the sweep (a flag of a backend outside it is refused)."""
    from edgebranchy.runtime.backends.declared import every_backend
    from edgebranchy.runtime.backends.options import cli_options

    declared = every_backend()
    return {b: cli_options(args, b, [(n, d) for n, d in declared if n == b or n not in backends]) for b in backends}


def _run_streams(args) -> int:
    """bench --streams: the streams sweep instead of the trials."""
    from edgebranchy.bench.streams import StreamsConfig, run_streams
    from edgebranchy.device.detection import resolve_profile

    backend = (args.backend or [resolve_profile(args.profile)[0].runtime.backend])[0]
    opts = _options_by_backend(args, [backend])[backend]
    threads = opts.pop("intra_op_threads", None)  # --threads: per session, capped for N and the CPUs
    cfg = StreamsConfig(artifact=args.artifact, out=args.out, streams=args.streams, rate=args.rate,
                        seconds=args.stream_seconds, trials=args.trials, samples=args.samples, backend=backend,
                        backend_options=opts, threads=threads, clients=args.clients, dataset=args.dataset,
                        data_dir=args.data_dir, force=args.force)
    quiet = args.quiet or args.json
    doc = run_streams(cfg, log=(lambda s: None) if quiet else _err)
    if args.json:
        import json

        print(json.dumps({"results": args.out, "points": doc["points"]}, indent=2))
        return 0
    from edgebranchy.bench.output import print_streams

    print_streams(doc)
    print(f"results: {args.out}")
    return 0


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _say_resume(args) -> None:
    """After Ctrl-C: where the finished trials are and the command that continues the run."""
    import shlex

    from edgebranchy.bench.config import trial_log_path

    log = trial_log_path(args.out)
    if log.is_file():
        argv = [str(a) for a in getattr(args, "_argv", []) if a != "--force"]
        _err(f"interrupted: the finished trials are in {log}; continue this bench with: "
             + shlex.join(["edgebranchy", *argv] + ([] if "--resume" in argv else ["--resume"])))


def run(args) -> int:
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.artifact, "artifact", "bench")
    if args.streams:
        return _run_streams(args)
    if sys.stderr.isatty() and not args.quiet:  # a first line at once for a person waiting (the imports and the
        _err(f"bench: loading {args.artifact} ...")  # data take seconds); logs and errors stay one line otherwise
    from edgebranchy.bench.config import BenchConfig, check_outputs
    from edgebranchy.device.detection import resolve_profile

    backends = args.backend or [resolve_profile(args.profile)[0].runtime.backend]
    opts = _options_by_backend(args, backends)
    common = dict(artifact=args.artifact, out=args.out, profile=args.profile, data_dir=args.data_dir,
                  force=args.force, resume=args.resume, options_by_backend=opts)
    from edgebranchy.util.locks import output_lock

    # one bench at a time writes --out (run_bench holds the lock again); checked before anything is loaded
    with output_lock(args.out, "--out", check=lambda: check_outputs(BenchConfig(**common))):
        return _bench(args, common, backends)


def _bench(args, common: dict, backends: list) -> int:
    from edgebranchy.bench.config import BenchConfig
    from edgebranchy.bench.session import run_bench

    cfg = BenchConfig(**common, backend=backends if len(backends) > 1 else backends[0], power=args.power,
                      dataset=args.dataset,
                      batch_size=args.batch_size if len(args.batch_size) > 1 else args.batch_size[0],
                      form=args.form if len(args.form) > 1 else args.form[0],
                      precision=args.precision if args.precision is None or len(args.precision) > 1
                      else args.precision[0],
                      samples=args.samples, trials=args.trials, warmup=args.warmup,
                      min_window_s=args.min_window, idle_s=args.idle, pipelined=args.pipelined,
                      speculate=args.speculate, warmup_max=args.warmup_max, conditions=not args.no_conditions,
                      lock_clocks=args.lock_clocks, external_power=args.external_power, gap_s=args.gap,
                      drift_alpha=args.drift_alpha, drift_min_effect=args.drift_min_effect / 100.0)
    quiet = args.quiet or args.json
    try:
        res = run_bench(cfg, log=(lambda s: None) if quiet else _err, progress=not quiet, warn=_err)
    except KeyboardInterrupt:
        _say_resume(args)
        raise
    from edgebranchy.bench.output import print_json, print_table
    from edgebranchy.report.verdict import verdict_lines

    if args.json:
        print_json(res, args.out)
        return 0
    runs = res["runs"]
    for run in runs:  # the verdict of each run first (its warnings on stderr), also with --quiet
        lines = verdict_lines(run)
        print(f"{run['label']}: {lines[0]}" if len(runs) > 1 else lines[0])
        for warning in lines[1:]:
            _err(warning)
    if not args.quiet:
        print_table(res)
    print(f"results: {args.out}")
    return 0
