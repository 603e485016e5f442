"""Loading an artifact's TensorRT engines on the device (the runtime side: no builder here).

`load_engine` picks the engine set whose key components match this device
(`artifact/engines.py`), checks engine.json and every sha256, and deserialises
each plan, refusing engines built for another TensorRT version, GPU or setting
with the rebuild hint.

tensorrt is imported inside the functions. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict

from edgebranchy.artifact.engines import _describe, _differences, engine_names, rebuild_hint, select_engines
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.tensorrt.device import import_tensorrt, make_logger
from edgebranchy.util.files import sha256_bytes
from edgebranchy.util.readers import load_json, read_bytes

#: attributes this module uses on TensorRT objects (the runtime)
TRT_OBJECT_API = frozenset({"deserialize_cuda_engine", "DLA_core"})


@dataclass
class LoadedEngines:
    """Deserialised engines of one device key (the runtime and logger must outlive them)."""

    key: str
    record: dict
    runtime: Any
    logger: Any
    engines: Dict[str, Any]


def load_engine(artifact: Any, device_key_components: dict,
                log: Callable[[str], None] = lambda s: None) -> LoadedEngines:
    """Deserialise the engines (every segment and the baseline) whose key components match
    `device_key_components` (the device facts; optionally precision, dla_core, device_key).
    Refuses engines built for another TensorRT version, GPU or setting, saying to rebuild."""
    trt = import_tensorrt()
    key, record = select_engines(artifact, device_key_components)
    comps = record.get("components", {})
    files = record.get("files", {})
    for name in engine_names(artifact) + ["engine.json"]:
        if name not in files or not (artifact.root / files[name]).is_file():
            raise EdgeBranchyError(f"the {name} file of the TensorRT engines {key} is missing; "
                                   f"{rebuild_hint(artifact.root)}")
    on_disk = load_json(artifact.root / files["engine.json"], "engine-description")
    if on_disk != comps:
        diff = sorted(set(_differences(on_disk, comps)) | set(_differences(comps, on_disk)))
        raise EdgeBranchyError(f"{artifact.root / record['dir']}/engine.json does not match the manifest "
                               f"(differs in: {', '.join(diff)}); {rebuild_hint(artifact.root)}")
    for name, digest in comps.get("onnx_sha256", {}).items():
        rel = record.get("graphs", {}).get(name)
        if rel is None or artifact.manifest["files"].get(rel, {}).get("sha256") != digest:
            raise EdgeBranchyError(f"the {name} engine was built from another graph than the artifact's "
                                   f"{rel}; {rebuild_hint(artifact.root)}")
    logger = make_logger(trt, log)
    runtime = trt.Runtime(logger)
    if record.get("dla_core") is not None:  # before deserialising, as trtexec does (sampleEngines.cpp 8.5.2)
        runtime.DLA_core = int(record["dla_core"])
    engines = {}
    for name in engine_names(artifact) + [n for n in ("single",) if n in files]:  # the If engine: 10.0+ only
        rel = files[name]
        data = read_bytes(artifact.root / rel, "engine")
        if sha256_bytes(data) != artifact.manifest["files"].get(rel, {}).get("sha256"):
            raise EdgeBranchyError(f"engine {artifact.root / rel} does not match its sha256 in the manifest; "
                                   f"{rebuild_hint(artifact.root)}")
        del logger.errors[:]
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise EdgeBranchyError(f"TensorRT {trt.__version__} refused the engine {rel} "
                                   f"({'; '.join(logger.errors) or 'no reason given'}); it was built for "
                                   f"{_describe(comps)}; {rebuild_hint(artifact.root)}")
        engines[name] = engine
    return LoadedEngines(key, record, runtime, logger, engines)
