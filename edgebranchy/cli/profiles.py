"""`edgebranchy profiles`: list, show, validate and auto-detect device profiles."""
from __future__ import annotations

import argparse
import sys

ORDER = 80


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "profiles",
        help="list, show, validate or auto-detect device profiles",
        description=(
            "Device profiles (<device>.toml, installed with edgebranchy, or in $EDGEBRANCHY_PROFILES) "
            "say how to measure "
            "power, build TensorRT engines and configure the runtime on a device. With no option, "
            "list them; with NAME, show one."
        ),
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="a profile name or a path to a .toml file")
    p.add_argument("--validate", action="store_true", help="validate every profile (or NAME); exit 2 if one is bad")
    p.add_argument("--detect", action="store_true", help="print which profile `--profile auto` chooses here, and why")
    return p


def _show(profile) -> None:
    d = profile.to_dict()
    print(f"{profile.name}: {profile.description}")
    print(f"  file: {d['path']}")
    for section in ("match", "power", "tensorrt", "runtime"):
        print(f"  [{section}]")
        for key, value in d[section].items():
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"    {key}.{k} = {v!r}")
            else:
                print(f"    {key} = {value!r}")


def run(args: argparse.Namespace) -> int:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.device.detection import detect_profile
    from edgebranchy.device.profile_loading import list_profiles, load_profile, profiles_dir

    if args.detect:
        name, why = detect_profile()
        print(f"auto-detected profile: {name}")
        print(f"why: {why}")
        return 0
    if args.validate:
        names = [args.name] if args.name else list_profiles()
        failed = 0
        for name in names:
            try:
                p = load_profile(name)
            except EdgeBranchyError as e:
                failed += 1
                print(f"edgebranchy profiles: error: {e}", file=sys.stderr)
                continue
            print(f"ok  {p.name}")
        return 2 if failed else 0
    if args.name:
        _show(load_profile(args.name))
        return 0
    names = list_profiles()
    print(f"profiles in {profiles_dir()}:")
    width = max((len(n) for n in names), default=4)
    status = 0
    for name in names:
        try:
            p = load_profile(name)
        except EdgeBranchyError as e:
            print(f"  {name:<{width}}  INVALID     {e}")
            status = 2
            continue
        print(f"  {name:<{width}}  {p.power.source:<10}  {p.description}")
    return status
