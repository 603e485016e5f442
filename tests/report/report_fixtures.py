"""Builds valid `edgebranchy.results` v1 documents (docs/architecture.md, "Results") for report tests.

The defaults look like B-LeNet on Fashion-MNIST on a small x86 CPU with onnxruntime at batch 1:
baseline p50 about 0.14 ms, branchy about 0.07 ms, 94% of samples leaving at exit 0, energy
estimated from CPU time by the psutil power model.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _trial_table(s: np.ndarray, trials: int) -> dict:
    """What bench records per trial: calls and p50/p90/p99/p999/mean of each trial's calls."""
    parts = np.array_split(s, trials)
    return {"calls": [int(p.size) for p in parts],
            **{k: [float(np.percentile(p, q)) for p in parts] for k, q in
               (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))},
            "mean": [float(p.mean()) for p in parts]}


def _latency(samples: np.ndarray, per: str, trials: int = 5) -> dict:
    s = np.round(np.asarray(samples, dtype=float), 6)
    mean = float(s.mean())
    half = 1.96 * float(s.std(ddof=1)) / np.sqrt(s.size)
    return {
        "trials": _trial_table(s, trials),
        "per": per,
        "samples": [float(x) for x in s],
        "p50": float(np.percentile(s, 50)),
        "p90": float(np.percentile(s, 90)),
        "p99": float(np.percentile(s, 99)),
        "p999": float(np.percentile(s, 99.9)),
        "mean": mean,
        "ci95": [mean - half, mean + half],
    }


def _energy(kind: str, source: str, median_mj: float, dynamic_mj: float | None, trials: int,
            samples: int, watts: float) -> dict:
    readings = []
    for t in range(trials):
        j = median_mj * samples / 1000 * (1 + 0.01 * (t - trials // 2))
        seconds = j / watts
        readings.append({"joules": j, "seconds": seconds, "watts": watts, "samples": 10 * (t + 5),
                         "source": source, "kind": kind})
    per = [median_mj * (1 + 0.01 * (t - trials // 2)) for t in range(trials)]
    return {
        "kind": kind,
        "source": source,
        "per_inference_mj": {"median": median_mj, "ci95": [median_mj * 0.97, median_mj * 1.04],
                             "values": per, "trials": list(range(trials))},
        "dynamic_per_inference_mj": None if dynamic_mj is None else
        {"median": dynamic_mj, "ci95": [dynamic_mj * 0.95, dynamic_mj * 1.06],
         "values": [dynamic_mj * (1 + 0.02 * (t - trials // 2)) for t in range(trials)], "trials": list(range(trials))},
        "trials": readings,
    }


def _calibration(threshold: float, exit0: float) -> dict:
    c0, c1, cb = 0.22, 1.03, 1.14   # MACs (M): conv1 + branch, the rest, baseline

    def point(t: float, f0: float, acc: float | None = None) -> dict:
        acc = 0.899 - 0.005 * (f0 / 0.94) ** 10 if acc is None else acc
        return {"thresholds": [t], "accuracy": round(acc, 6),
                "relative_cost": (c0 + (1 - f0) * c1) / cb}

    frontier = [point(t, 0.0 if t == 0 else min(1.0, exit0 * (t / threshold) ** 0.5))
                for t in (0.0, 0.05, 0.2, 0.5, threshold, 1.4, 2.3)]
    frontier.append(point(0.6, 0.45, acc=0.881))   # a dominated point, off the frontier
    chosen = next(p for p in frontier if p["thresholds"] == [threshold])
    val = {"accuracy": chosen["accuracy"], "cost": chosen["relative_cost"] * cb,
           "relative_cost": chosen["relative_cost"], "exit_fractions": [exit0, 1 - exit0], "n": 5000}
    return {"method": "max-accuracy-drop", "target": 0.5, "reference": "final-exit",
            "cost_source": "flops", "segment_costs": [c0, c1], "baseline_cost": cb,
            "thresholds": [threshold], "temperatures": None, "validation": val,
            "test": None, "frontier": frontier}


def build_results(*, profile: str = "x86-generic", backend: str = "onnxruntime",
                  precision: str = "fp32", batch_size: int = 1, per: str = "sample",
                  baseline_p50: float = 0.14, branchy_p50: float = 0.07,
                  exit_counts: tuple[int, ...] = (9400, 600), energy_kind: str = "estimated",
                  energy_source: str = "psutil-cpu-model", with_energy: bool = True,
                  calibration: bool = True, samples: int = 10000, seed: int = 0) -> dict:
    """A complete, valid results document with realistic numbers (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_lat = 400
    base = baseline_p50 * rng.lognormal(0.0, 0.12, n_lat)
    # branchy: fast path for early exits, slow tail for samples that reach the last exit
    fast = branchy_p50 * rng.lognormal(0.0, 0.1, n_lat)
    slow = rng.random(n_lat) < exit_counts[-1] / sum(exit_counts)
    br = np.where(slow, fast * 2.8, fast)
    total = sum(exit_counts)
    threshold = 0.95
    thresholds = [threshold] + [round(0.5 ** k, 6) for k in range(1, len(exit_counts) - 1)]
    watts = 6.8 if energy_kind == "estimated" else 9.4
    # mJ per inference = W x ms per inference
    b_mj = round(watts * baseline_p50 / (batch_size if per == "batch" else 1), 6)
    r_mj = round(b_mj * branchy_p50 / baseline_p50 * 1.07, 6)
    doc = {
        "schema": "edgebranchy.results",
        "schema_version": 1,
        "created": "2026-05-12T14:03:27+00:00",
        "environment": {
            "profile": profile,
            "profile_source": f"profiles/{profile}.toml",
            "hostname": "bench-host",
            "cpu_model": "AMD EPYC 7B13",
            "cpu_cores": 2,
            "governor": None,
            "power_mode": None,
            "gpu": None,
            "versions": {"edgebranchy": "0.1.0", "numpy": "2.4.6", "onnxruntime": "1.32.0",
                         "python": "3.11.7"},
            "backend": backend,
            "backend_options": {"intra_op_num_threads": 1, "allow_spinning": "0"},
            "precision": precision,
            "artifact_sha256": "5f2c0e8a9b7d4c1e3f6a8b0d2c4e6f8a1b3d5f7a9c0e2b4d6f8a0c2e4b6d8f0a",
            "model": "b-lenet",
            "dataset": "fashion-mnist",
            "thresholds": thresholds,
            "power_source": energy_source if with_energy else None,
            "power_source_reason": "no RAPL access; estimate from the profile's power model"
            if energy_kind == "estimated" else "sensor found",
        },
        "config": {"batch_size": batch_size, "samples": samples, "trials": 5, "warmup": 200},
        "idle": {"watts": 4.4, "seconds": 10.0, "kind": energy_kind, "source": energy_source},
        "variants": {
            "baseline": {
                "accuracy": 0.8993,
                "latency_ms": _latency(base, per),
                "throughput_sps": round(1000.0 * batch_size / (baseline_p50 * (1 if per == "batch"
                                                                                 else batch_size)), 3),
                "energy": _energy(energy_kind, energy_source, b_mj, round(b_mj * 0.35, 6), 5,
                                  samples, watts) if with_energy else None,
            },
            "branchy": {
                "accuracy": 0.8951,
                "latency_ms": _latency(br, per),
                "throughput_sps": round(1000.0 * batch_size / (branchy_p50 * (1 if per == "batch"
                                                                                else batch_size)), 3),
                "energy": _energy(energy_kind, energy_source, r_mj, round(r_mj * 0.33, 6), 5,
                                  samples, watts) if with_energy else None,
                "exit_counts": list(exit_counts),
                "exit_fractions": [c / total for c in exit_counts],
                "segment_latency_ms": [round(branchy_p50 * 0.9, 6), round(baseline_p50 * 0.9, 6)],
            },
        },
        "calibration": _calibration(threshold, exit_counts[0] / total) if calibration else None,
    }
    return doc


def write_results(path: Path, doc: dict, *, allow_nan: bool = False) -> Path:
    """Write a results document as JSON (allow_nan=True writes NaN literals, for negative tests)."""
    path.write_text(json.dumps(doc, indent=1, allow_nan=allow_nan), encoding="utf-8")
    return path


def second_run() -> dict:
    """A different device, backend, batch size and energy kind than the defaults (Jetson, measured).

    Its environment facts have the shapes edgebranchy.measure.environment writes: cores as
    {"logical", "physical"}, nvpmodel's power mode as {"name", "id"}, GPUs as a list, versions
    with None for what is not installed.
    """
    doc = build_results(profile="jetson-orin-nano", backend="tensorrt", precision="fp16",
                        batch_size=8, per="batch", baseline_p50=0.9, branchy_p50=0.52,
                        exit_counts=(7400, 2600), energy_kind="measured",
                        energy_source="tegrastats:VDD_IN", seed=1)
    doc["environment"].update({
        "hostname": "orin-nano-01",
        "cpu_model": "ARMv8 Processor rev 1 (v8l)",
        "cpu_cores": {"logical": 6, "physical": 6},
        "governor": "schedutil",
        "power_mode": {"name": "15W", "id": 0},
        "gpu": [{"name": "Orin (nvgpu)", "driver": "540.4.0", "memory_mib": None}],
        "versions": {"edgebranchy": "0.1.0", "numpy": "1.26.4", "tensorrt": "10.3.0",
                     "pycuda": None, "torch": None},
        "backend_options": {"workspace_mib": 1024, "cuda_graphs": False},
    })
    return doc


@dataclass
class BuiltReport:
    """A report built by a fixture: the documents, their files and what build_report returned."""

    docs: list[dict]
    paths: list[Path]
    files: object   # edgebranchy.report.ReportFiles
