"""Engine records of an artifact: where TensorRT engine sets live, how they are keyed and chosen.

Engines only run on the TensorRT version and GPU that built them, so they live
under `ARTIFACT/engines/<device-key>/` where the key hashes everything that makes
an engine (see `tensorrt/build.py`). The manifest's `tensorrt` table maps each
key to its record; `select_engines` picks the record that fits this device.

Pure bookkeeping: no TensorRT here. Runs on JetPack 5 (Python 3.8).
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Tuple

from edgebranchy.errors import EdgeBranchyError

ENGINES_DIR = "engines"


def rebuild_hint(root: Any) -> str:
    return f"rebuild them on this device with `edgebranchy build {root}`"


def _slug(text: str, n: int = 24) -> str:
    s = re.sub(r"[^a-z0-9.]+", "-", str(text).lower()).strip("-.")
    return s[:n].strip("-.") or "gpu"


def device_key(components: dict) -> str:
    """A readable prefix plus a short hash over every component."""
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    cc = str(components["compute_capability"]).replace(".", "")
    dla = "" if components.get("dla_core") is None else f"-dla{components['dla_core']}"
    return (f"{_slug(components['gpu'])}-sm{cc}-trt{_slug(components['tensorrt'], 16)}-"
            f"{components['precision']}{dla}-{digest}")


def timing_cache_rel(facts: dict) -> str:
    return f"{ENGINES_DIR}/timing-{_slug(facts['gpu'])}-{_slug(facts['tensorrt'], 16)}.cache"


def feature_gathers(art: Any) -> list:
    """(gather engine name, segment k, feature tensor name) for every tensor a segment passes on: `gather{k}`
    where segment k passes one, `gather{k}.{i}` (its `features.i`) where it passes several."""
    out = []
    for k in range(art.num_exits - 1):
        feats = [n for n in art.segment_outputs(k) if n.startswith("features")]
        out += [(f"gather{k}" if len(feats) == 1 else f"gather{k}.{i}", k, n) for i, n in enumerate(feats)]
    return out


def gather_names(art: Any) -> list:
    """The gather engines (compaction on the device, one call per gather): every tensor segment k passes on
    (k < K-1; `feature_gathers`), and the logits."""
    return [name for name, _, _ in feature_gathers(art)] + ["gather_logits"]


def engine_names(art: Any) -> list:
    return [f"seg{k}" for k in range(art.num_exits)] + ["baseline"] + gather_names(art)


def _differences(have: dict, want: dict) -> list:
    return [k for k in want if have.get(k) != want[k]]


def _describe(c: dict) -> str:
    text = f"TensorRT {c.get('tensorrt')} on {c.get('gpu')!r} (compute capability {c.get('compute_capability')})"
    if c.get("precision"):
        text += f", {c['precision']}"
    if c.get("dla_core") is not None:
        text += f", DLA core {c['dla_core']}"
    return text


def select_engines(art: Any, want: dict) -> Tuple[str, dict]:
    """The device key and manifest record whose components equal every item of `want`
    (`want` may also name a `device_key`). EdgeBranchyError, with the rebuild hint, when none does."""
    records = art.manifest.get("tensorrt") or {}
    want = dict(want)
    key_wanted = want.pop("device_key", None)
    if key_wanted is not None:
        if key_wanted not in records:
            raise EdgeBranchyError(f"{art.root}: no TensorRT engines with device key {key_wanted!r} "
                                   f"(present: {', '.join(records) or 'none'}); {rebuild_hint(art.root)}")
        records = {key_wanted: records[key_wanted]}
    if not records:
        raise EdgeBranchyError(f"{art.root} has no TensorRT engines; build them on this device with "
                               f"`edgebranchy build {art.root}`")
    found = {k: r for k, r in records.items() if not _differences(r.get("components", {}), want)}
    if not found:
        lines = [f"{k}: {_describe(r.get('components', {}))} (differs in: "
                 f"{', '.join(_differences(r.get('components', {}), want))})" for k, r in records.items()]
        raise EdgeBranchyError(f"the TensorRT engines in {art.root} were built for another device or setting; "
                               f"this device has {_describe(want)}. Engines only run on the TensorRT version and GPU "
                               f"that built them. Present: " + "; ".join(lines) + f". {rebuild_hint(art.root)}")
    if len(found) > 1:
        raise EdgeBranchyError(f"{art.root}: several engine sets fit this device ({', '.join(found)}); choose one "
                               "with the precision, dla_core or device_key option")
    key = next(iter(found))
    return key, found[key]
