"""`edgebranchy doctor`: what works on this device (no torch needed)."""
from __future__ import annotations

import argparse

ORDER = 5


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("doctor", help="check Python, ONNX Runtime, TensorRT/CUDA, power sources and the profile",
                       description="Run first on a new board: reports Python, numpy, ONNX Runtime and its providers; "
                                   "TensorRT and pycuda (versions, CUDA context, GPU, SMs, DLA cores) and a tiny "
                                   "engine compared with ONNX Runtime; every power source with a short sample; the "
                                   "profile auto-detection. Exit status 0 when it ran: absent optional parts are "
                                   "reported, not failures.")
    p.add_argument("--out", help="also write the report as JSON (atomically)")
    p.add_argument("--power-sample", type=float, default=0.2, help="seconds of each power source's sample")
    return p


def run(args) -> int:
    from edgebranchy.measure.doctor import format_table, run_doctor
    from edgebranchy.util.files import atomic_write_json

    report = run_doctor(power_sample_s=args.power_sample)
    print(format_table(report))
    if args.out:
        atomic_write_json(args.out, report)
        print(f"report: {args.out}")
    return 0
