"""`edgebranchy bench`: latency and energy, baseline versus BranchyNet, on this device."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import add_backend_flags, backend_flag_options, nonneg_float, nonneg_int, positive_int, probability

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
    p.add_argument("--backend", default=None, help="onnxruntime, torch or tensorrt (default: the profile's)")
    p.add_argument("--profile", default="auto", help="device profile name or TOML path; 'auto' detects it")
    p.add_argument("--power", help="override the profile's power source (auto, tegrastats, ina3221, nvml, rapl, "
                                   "estimate)")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--samples", type=positive_int, default=1000, help="test samples per pass")
    p.add_argument("--trials", type=positive_int, default=5, help="trials per variant (interleaved)")
    p.add_argument("--warmup", type=nonneg_int, default=50, help="warm-up batches per variant (at least; see --warmup-max)")
    p.add_argument("--warmup-max", type=nonneg_int, default=2000,
                   help="keep warming up (cycling over the same 20 batches) until the median latency of the last 20 "
                        "is within 5%% of the 20 before and the last three window medians vary by less than 5%% "
                        "(CV), at most this many batches; 0: exactly --warmup batches")
    p.add_argument("--min-window", type=nonneg_float, default=2.0, help="seconds per energy window (whole passes)")
    p.add_argument("--idle", type=nonneg_float, default=3.0, help="seconds of idle-power measurement")
    add_backend_flags(p)
    p.add_argument("--pipelined", action="store_true", help="branchy runs as a pipelined stream (throughput)")
    p.add_argument("--speculate", action="store_true",
                   help="run segment k+1 on the second GPU lane while exit k is decided (tensorrt, torch CUDA); off "
                        "by default: not shown to pay yet, and it doubles the work of samples that leave early")
    p.add_argument("--lock-clocks", action="store_true",
                   help="run `jetson_clocks` for the bench (root) and restore the previous clocks afterwards")
    p.add_argument("--external-power", metavar="CSV",
                   help="CSV of an external power meter (USB meter, Joulescope) logged during the bench: merged onto "
                        "the trial windows as measured board power, its clock offset estimated from the edges")
    p.add_argument("--gap", type=nonneg_float, help="idle seconds between trials (default 1 with --external-power, else 0)")
    p.add_argument("--no-conditions", action="store_true",
                   help="do not read clocks, temperatures and fans around each trial (no throttle check)")
    p.add_argument("--drift-alpha", type=probability, default=1e-3,
                   help="significance level of the exit-rate drift test against the calibration")
    p.add_argument("--out", default="runs/results.json", help="results file (JSON); trials also go to OUT.jsonl")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier results file and its trial log at OUT (never any other file)")
    return p


def run(args) -> int:
    from edgebranchy.measure.bench import BenchConfig, check_outputs, run_bench
    from edgebranchy.measure.profiles import resolve_profile

    backend = args.backend
    if backend is None:
        backend = resolve_profile(args.profile)[0].runtime.backend
    opts = backend_flag_options(args, backend)
    # before anything is loaded
    check_outputs(BenchConfig(artifact=args.artifact, out=args.out, backend_options=opts, profile=args.profile,
                              data_dir=args.data_dir, force=args.force))
    cfg = BenchConfig(artifact=args.artifact, out=args.out, backend=backend, backend_options=opts,
                      profile=args.profile, power=args.power, dataset=args.dataset, data_dir=args.data_dir,
                      batch_size=args.batch_size, samples=args.samples, trials=args.trials, warmup=args.warmup,
                      min_window_s=args.min_window, idle_s=args.idle, pipelined=args.pipelined,
                      speculate=args.speculate, force=args.force, warmup_max=args.warmup_max, conditions=not args.no_conditions, lock_clocks=args.lock_clocks,
                      external_power=args.external_power, gap_s=args.gap, drift_alpha=args.drift_alpha)
    res = run_bench(cfg)
    b, e = res["variants"]["baseline"], res["variants"]["branchy"]
    unit = res["variants"]["baseline"]["latency_ms"]["per"]
    print(f"{'':10}{'accuracy':>9}{'p50 ms':>10}{'p99 ms':>10}{'mJ/inference':>14}")
    for name, v in (("baseline", b), ("branchy", e)):
        mj = f"{v['energy']['per_inference_mj']['median']:>14.4f}" if v["energy"] else f"{'refused':>14}"
        print(f"{name:10}{v['accuracy'] * 100:>8.2f}%{v['latency_ms']['p50']:>10.4f}{v['latency_ms']['p99']:>10.4f}"
              + mj)
    energy = (f"energy {e['energy']['kind']} ({e['energy']['source']})" if e["energy"] else
              "energy refused: " + (e.get("energy_refused") or {}).get("refused", [{"flag": "no reading"}])[0]["flag"])
    print(f"latency gain (p50 per {unit}): {b['latency_ms']['p50'] / e['latency_ms']['p50']:.2f}x; "
          f"exits {', '.join(f'{f * 100:.1f}%' for f in e['exit_fractions'])}; {energy}")
    print(res["conditions"]["line"])
    forms = res["environment"].get("batch1_forms")
    if forms:
        print(f"batch-1 forms (measured here): segments {forms['segments_us']:.1f} us, single graph "
              f"{forms['single_graph_us']:.1f} us per sample; branchy ran as {forms['choice']}")
    print(f"results: {args.out}")
    return 0
