"""`edgebranchy build`: TensorRT engines for an artifact, on the device (one per segment, cached per device)."""
from __future__ import annotations

import argparse

from edgebranchy.cli._args import batch_size
from edgebranchy.vocab import PRECISIONS

ORDER = 35


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "build", help="build the TensorRT engines of an artifact on this device",
        description="On an NVIDIA device: one TensorRT engine per segment of ARTIFACT (plus the baseline, the gather "
                    "engines and, from TensorRT 10, the single graph), built with the device profile's [tensorrt] "
                    "settings into ARTIFACT/engines/<device key>/ and recorded in its manifest. Engines already "
                    "built for this device and these settings are reused; a damaged one is rebuilt.")
    add_build_flags(p)
    return p


def add_build_flags(p: argparse.ArgumentParser, hidden: bool = False) -> None:
    """The build's flags (`export ARTIFACT --tensorrt`, the old spelling, takes them hidden)."""
    def say(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    if not hidden:
        p.add_argument("artifact", help="artifact directory from `edgebranchy export`")
        p.add_argument("--precision", choices=PRECISIONS, help="the engines' precision (default: the profile's)")
        p.add_argument("--force", action="store_true", help="rebuild engines even where the cache is current")
    p.add_argument("--profile", default="auto", help=say("device profile whose [tensorrt] settings the build uses"))
    p.add_argument("--max-batch", type=batch_size, help=say("maximum batch of the engines (default: the profile's)"))


def run(args) -> int:
    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.artifact, "artifact", "build")
    return build(args.artifact, args.profile, args.precision, args.max_batch, args.force)


def build(artifact: str, profile_name: str, precision, max_batch, force: bool) -> int:
    from edgebranchy.device.detection import resolve_profile
    from edgebranchy.tensorrt.build import build_engines

    profile, reason = resolve_profile(profile_name)
    print(f"profile: {profile.name} ({reason})")
    changes = {k: v for k, v in (("max_batch", max_batch), ("precision", precision)) if v}
    settings = profile.tensorrt.replace(**changes)  # validated again with the command line's changes
    # build_engines verifies the ONNX graphs it reads and rebuilds damaged engines itself
    info = build_engines(artifact, settings, force=force)
    state = "reused from the cache" if info.get("cached") else "built"
    print(f"engines {state}: {artifact}/engines/{info['device_key']}/ ({info.get('precision')}, "
          f"TensorRT {info.get('tensorrt', '?')}, {info.get('gpu', '?')})")
    return 0
