"""PyTorch backend (CPU or CUDA): the reference path, and the GPU path that runs on any CUDA machine.

On CUDA every lane is its own non-default stream; a backend tensor carries the
event that marks it ready, so work on another lane waits on that event instead
of the host. Features and logits stay on the GPU; only the entropy (B floats)
is copied back, into pinned memory, to decide. Compaction is an index_select on
the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgebranchy.artifact.manifest import Artifact, build_manifest
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.base import Backend, Launch
from edgebranchy.runtime.backends.declared import TORCH as OPTIONS
from edgebranchy.runtime.backends.options import resolve_options
from edgebranchy.util.files import check_sha256, sha256_file



def checkpoint_artifact(checkpoint: str | os.PathLike) -> Artifact:
    """An in-memory artifact for a checkpoint (no ONNX files): the manifest export would write, minus the
    graphs, validated like a loaded one. Every exit keeps its head: the checkpoint runs as trained."""
    from edgebranchy.models.checkpoint import load_checkpoint

    cfg = load_checkpoint(checkpoint).config
    cal = cfg.get("calibration") or {}
    k = len(cfg.get("validation", {}).get("exit_accuracy") or [])
    if not k:
        raise EdgeBranchyError(f"{checkpoint}: the config does not record the number of exits")
    manifest = build_manifest(cfg, list(range(k)), normalized=bool(cal.get("normalized")),
                              temperatures=cal.get("temperatures") or [1.0] * k,
                              source={"checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
                                      "dataset": cfg.get("dataset")})
    return Artifact.from_manifest(Path(checkpoint).parent, manifest, graphs=False)


@dataclass
class DeviceTensor:
    """A tensor on the backend's device and the event (None on CPU) after which it is valid.

    `t` is a tuple of tensors where a from_model split passes on several (compaction gathers each).
    """

    t: Any
    event: Any = None
    lane: int = 0


class TorchBackend(Backend):
    """Runs the checkpoint's segments with PyTorch (the same graphs the export traced)."""

    name = "torch"
    OPTIONS = OPTIONS

    def __init__(self, artifact: Artifact, options: dict | None = None):
        import torch

        from edgebranchy.models.checkpoint import load_checkpoint
        from edgebranchy.models.graphs import BaselineGraph
        from edgebranchy.models.segments import check_plan, segment_graphs

        o = resolve_options(OPTIONS, options, self.name)
        self.torch = torch
        try:
            self.device = torch.device(o["device"])
        except (RuntimeError, TypeError):
            raise EdgeBranchyError(f"torch backend device must be cpu, cuda or cuda:N, got {o['device']!r}") from None
        self.cuda = self.device.type == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise EdgeBranchyError("the torch backend was asked for CUDA but torch.cuda.is_available() is False")
        if o["precision"] == "int8":
            raise EdgeBranchyError("int8 runs the artifact's Q/DQ graphs: use the onnxruntime or tensorrt backend")
        if o["precision"] == "fp16" and not self.cuda:
            raise EdgeBranchyError("fp16 on the torch backend needs CUDA; use fp32 on the CPU")
        if o["threads"] or not self.cuda:  # 0: the CPUs this process may use (affinity, cgroup quota)
            from edgebranchy.util.cpus import usable_cpus

            torch.set_num_threads(int(o["threads"]) or usable_cpus().count)
        self.precision, self.timing = o["precision"], bool(o["timing"])
        self.artifact = artifact
        src = artifact.source
        ck_path = Path(o["checkpoint"] or src.get("checkpoint") or "")
        if not ck_path.is_file():
            raise EdgeBranchyError(f"the torch backend needs the checkpoint the artifact came from; {ck_path} not "
                                   "found: pass the `checkpoint` option (options={'checkpoint': PATH})")
        want = src.get("checkpoint_sha256")
        if want:
            check_sha256(ck_path, want, f"{ck_path} is not the checkpoint this artifact was exported from "
                                        "(the two would not compute the same thing)")
        ck = load_checkpoint(ck_path)
        net, base = ck.build()
        temps = artifact.temperatures or [1.0] * net.num_exits
        classes = len(artifact.classes)
        half = self.precision == "fp16"
        plan = check_plan(artifact.model_exits, net.num_exits, str(artifact.root))
        self.segments = [g.eval().to(self.device) for g in
                         segment_graphs(net, plan, classes=classes, normalize=artifact.entropy_normalized,
                                        temperatures=temps, half=half)]
        self.base_graph = BaselineGraph(base.half() if half else base, half).eval().to(self.device)
        if self.cuda:
            self.asynchronous, self.lanes = True, 2
            self.streams = [torch.cuda.Stream(device=self.device) for _ in range(self.lanes)]
        else:
            self.streams = [None]

    @property
    def num_segments(self) -> int:
        return len(self.segments)

    @property
    def threads_per_call(self) -> int:
        return 1 if self.cuda else self.torch.get_num_threads()

    # -- helpers ----------------------------------------------------------------------------------
    def _ready_on(self, x: DeviceTensor, lane: int) -> Any:
        """x.t, usable on `lane`'s stream (waits on x's event when it came from another lane)."""
        if self.cuda and x.event is not None and x.lane != lane:
            self.streams[lane].wait_event(x.event)
            for t in (x.t if isinstance(x.t, tuple) else (x.t,)):
                t.record_stream(self.streams[lane])
        return x.t

    def _event(self, lane: int, timing: bool = False):
        ev = self.torch.cuda.Event(enable_timing=timing)
        ev.record(self.streams[lane])
        return ev

    # -- Backend ----------------------------------------------------------------------------------
    def to_device(self, x: np.ndarray) -> DeviceTensor:
        torch = self.torch
        t = torch.from_numpy(x)
        if not self.cuda:
            return DeviceTensor(t)
        with torch.cuda.stream(self.streams[0]):
            d = t.pin_memory().to(self.device, non_blocking=True)
            return DeviceTensor(d, self._event(0), 0)

    def launch(self, k: int, x: Any, lane: int = 0) -> Launch:
        torch = self.torch
        if not isinstance(x, DeviceTensor):
            raise EdgeBranchyError("torch backend: launch() takes what to_device/launch/gather returned")
        seg = self.segments[k]
        last = k == len(self.segments) - 1
        if not self.cuda:
            with torch.inference_mode():
                outs = seg(x.t)
            f, logits, ent = (None, *outs) if last else outs
            e = ent.numpy()
            return Launch(None if f is None else DeviceTensor(f), DeviceTensor(logits), lambda: e, len(e), k, lane)
        stream = self.streams[lane]
        with torch.cuda.stream(stream), torch.inference_mode():
            inp = self._ready_on(x, lane)
            start = self._event(lane, True) if self.timing else None
            outs = seg(inp)
            f, logits, ent = (None, *outs) if last else outs
            host = torch.empty(ent.shape, dtype=ent.dtype, pin_memory=True)
            host.copy_(ent, non_blocking=True)
            end = self._event(lane, self.timing)
        timing: dict = {}

        def entropy() -> np.ndarray:
            end.synchronize()  # waits for this launch only
            if self.timing and "gpu_ms" not in timing:  # a float once the launch is done, as on tensorrt
                timing["gpu_ms"] = float(start.elapsed_time(end))
            return host.numpy()

        return Launch(None if f is None else DeviceTensor(f, end, lane), DeviceTensor(logits, end, lane),
                      entropy, int(ent.shape[0]), k, lane, timing)

    def gather(self, t: Any, index: np.ndarray, lane: int = 0) -> DeviceTensor:
        torch = self.torch
        if not self.cuda:
            idx = torch.from_numpy(np.ascontiguousarray(index))
            return DeviceTensor(tuple(v[idx] for v in t.t) if isinstance(t.t, tuple) else t.t[idx])
        with torch.cuda.stream(self.streams[lane]):
            src = self._ready_on(t, lane)
            idx = torch.from_numpy(np.ascontiguousarray(index, dtype=np.int64)).pin_memory().to(
                self.device, non_blocking=True)
            out = tuple(v.index_select(0, idx) for v in src) if isinstance(src, tuple) else src.index_select(0, idx)
            return DeviceTensor(out, self._event(lane), lane)

    def to_host(self, t: Any) -> np.ndarray:
        if self.cuda and t.event is not None:
            t.event.synchronize()
        return t.t.detach().float().cpu().numpy() if t.t.dtype != self.torch.float32 else t.t.detach().cpu().numpy()

    def run_baseline(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            if not self.cuda:
                return self.base_graph(torch.from_numpy(x)).numpy()
            with torch.cuda.stream(self.streams[0]):
                d = torch.from_numpy(x).pin_memory().to(self.device, non_blocking=True)
                out = self.base_graph(d).cpu()  # synchronises the stream
            return out.numpy()

    def synchronize(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def describe(self) -> dict:
        d = {"backend": self.name, "torch": self.torch.__version__, "device": str(self.device),
             "precision": self.precision, "lanes": self.lanes}
        if self.cuda:
            d["gpu"] = self.torch.cuda.get_device_name(self.device)
            props = self.torch.cuda.get_device_properties(self.device)
            if getattr(props, "pci_bus_id", None) is not None:  # newer torch: NVML then measures this GPU
                d["pci_bus_id"] = (f"{getattr(props, 'pci_domain_id', 0):04x}:{props.pci_bus_id:02x}:"
                                   f"{getattr(props, 'pci_device_id', 0):02x}.0")
        else:
            d["threads"] = self.torch.get_num_threads()
        return d
