"""`edgebranchy remote`: deploy an artifact to one or many boards over ssh, bench there, report here."""
from __future__ import annotations

import argparse
import shlex

from edgebranchy.cli._args import bounded_int, bounded_seconds, samples

ORDER = 55

_EXAMPLES = """\
examples:
  # one board (key login already set up: `ssh nvidia@orin` works without a password)
  edgebranchy remote runs/lenet-artifact nvidia@orin --out runs/orin

  # a fleet from an inventory file, shorter bench, through a jump host
  edgebranchy remote runs/lenet-artifact --inventory boards.toml -J me@gateway \\
      --bench-args="--samples 2000 --trials 5" --out runs/fleet

  # what would happen, without connecting
  edgebranchy remote runs/lenet-artifact pi@pi5:2222 nvidia@orin --dry-run

  # rerun only the boards that failed last time
  edgebranchy remote runs/lenet-artifact --inventory boards.toml --only orin2,pi5-b --out runs/fleet

inventory (boards.toml):
  [defaults]                       # optional, applies to every board
  workdir = "~/.edgebranchy"
  [[board]]
  host = "nvidia@orin1"            # user@host[:port] or an ~/.ssh/config alias
  profile = "jetson-orin-nano"     # default: auto (detected on the board)
  name = "orin1"                   # local folder name (default: the host)
  notes = "desk, 15 W mode"

  or a plain table, one board a line:  host  profile  notes...   (# comments, '-' = default profile)

On each board, in WORKDIR (default ~/.edgebranchy): the artifact without engines/, this project's
wheel and the profiles are copied unless the board already has the same content (sha256); a venv
is created once (--system-site-packages on Jetson, so JetPack's TensorRT bindings are seen) and
the wheel installed with its core dependencies (numpy, onnxruntime, psutil, tqdm; no torch) and
the extras the artifact needs (images: Pillow) or --extras names, installed again when they change;
with --data-dir DIR a sample of the evaluation images goes to WORKDIR/data/ (sha256-checked there);
then `edgebranchy doctor`, `edgebranchy build` where TensorRT imports, and
`edgebranchy bench`. Results come back to OUT/boards/NAME/ (results.json, results.json.jsonl,
doctor.json, remote.log, status.json); OUT/status.json lists every board; OUT/report/ is one
report over the boards that finished. Exit status 0 when every board finished, 1 otherwise.

ssh runs with BatchMode=yes: a board that would ask for a password fails at once. Use keys
(ssh-copy-id), an agent, ~/.ssh/config, or -i/-F/-J/-o; never put passwords anywhere.
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "remote", help="deploy to boards over ssh, bench there, fetch results, one report over all",
        description="Copy an artifact and this edgebranchy to one or many boards over ssh, set up the\n"
                    "environment there, build TensorRT engines where TensorRT is present, run the bench with\n"
                    "each board's profile, fetch the results and write one report over all boards. Boards run\n"
                    "in parallel; a board that fails is reported and does not stop the others.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifact", help="artifact directory from `edgebranchy export`")
    p.add_argument("targets", nargs="*", metavar="TARGET", help="user@host[:port] or an ~/.ssh/config alias")
    p.add_argument("--inventory", metavar="FILE", help="boards from a .toml inventory or a plain table")
    p.add_argument("--only", metavar="NAMES", help="comma-separated board names: run just these")
    p.add_argument("--profile", default="auto", help="profile for boards that do not name one (default: auto)")
    p.add_argument("--workdir", default="~/.edgebranchy", help="work directory on the boards (default: %(default)s)")
    p.add_argument("--out", default="runs/remote", help="local output directory (default: %(default)s)")
    p.add_argument("--bench-args", default="", metavar="ARGS",
                   help='options for `edgebranchy bench` on every board, e.g. --bench-args="--samples 500 '
                        '--trials 3" (not --out or --profile)')
    p.add_argument("--no-engines", action="store_true", help="do not build TensorRT engines on the boards")
    data = p.add_argument_group("evaluation data (the board needs the data the bench runs on)")
    data.add_argument("--data-dir", metavar="DIR",
                      help="send a sample of DIR/<class>/ images (DIR/test/<class>/ where there is one) to every "
                           "board, checked there by sha256, and bench on it")
    data.add_argument("--samples", type=samples, default=500, metavar="N",
                      help="with --data-dir: at most N files, taken from the classes in turn (default: %(default)s)")
    data.add_argument("--board-data-dir", metavar="PATH", help="or bench on this data directory on the boards")
    env = p.add_argument_group("board environment")
    env.add_argument("--wheel", metavar="FILE", help="wheel to install (default: built from this source tree)")
    env.add_argument("--remote-python", default="python3", metavar="PATH",
                     help="the boards' Python that creates the venv (default: %(default)s)")
    env.add_argument("--venv-args", default="", metavar="ARGS", help="extra `python -m venv` options")
    env.add_argument("--pip-args", default="", metavar="ARGS",
                     help='extra `pip install` options, e.g. --pip-args="--index-url URL" or "--no-index"; a change '
                          'reinstalls')
    env.add_argument("--extras", default="", metavar="NAMES",
                     help="this project's extras to install on the boards, comma separated (e.g. nvml); an image "
                          "folder artifact gets `images` (Pillow) without asking; a change reinstalls")
    ssh = p.add_argument_group("ssh (passed to the OpenSSH client)")
    ssh.add_argument("-F", "--ssh-config", metavar="FILE", help="ssh client configuration file")
    ssh.add_argument("-J", "--jump", metavar="HOST", help="jump host(s), as ssh -J")
    ssh.add_argument("-i", "--identity", metavar="KEY", help="private key file, as ssh -i")
    ssh.add_argument("-o", "--ssh-option", action="append", default=[], metavar="KEY=VALUE", help="as ssh -o")
    ssh.add_argument("--connect-timeout", type=bounded_int(1, "seconds"), default=10, metavar="S", help="seconds (default: %(default)s)")
    run = p.add_argument_group("run")
    run.add_argument("--jobs", type=bounded_int(1, "boards"), metavar="N", help="boards at a time (default: all, at most 16)")
    run.add_argument("--step-timeout", type=bounded_seconds(low_open=True), default=3600.0, metavar="S",
                     help="longest any one step may take on a board (default: %(default)s)")
    run.add_argument("--dry-run", action="store_true", help="print the plan and exit without connecting")
    return p


def _split(text: str, what: str) -> list[str]:
    from edgebranchy.errors import EdgeBranchyError

    try:
        return shlex.split(text)
    except ValueError as e:
        raise EdgeBranchyError(f"{what}: {e}") from None


def _check_bench_args(words: list[str]) -> None:
    """Catch a typo here, before it fails on every board."""
    from edgebranchy.cli import bench
    from edgebranchy.errors import EdgeBranchyError

    for w in words:
        if w.split("=")[0] in ("--out", "--profile"):
            raise EdgeBranchyError(f"--bench-args: {w.split('=')[0]} is set by `remote` (use --out / the "
                                   "inventory's profile)")

    class _Parser(argparse.ArgumentParser):
        def error(self, message):
            raise EdgeBranchyError(f"--bench-args: {message}")

    sub = _Parser(prog="bench").add_subparsers(parser_class=_Parser)
    bench.add_parser(sub).parse_args(["ARTIFACT", *words])


def _boards(args) -> tuple[list, list]:
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.remote.targets import load_inventory, parse_target, unique_names

    boards = [parse_target(t, profile=args.profile, workdir=args.workdir) for t in args.targets]
    if args.inventory:
        boards += load_inventory(args.inventory, profile=args.profile, workdir=args.workdir)
    if not boards:
        raise EdgeBranchyError("no boards: give TARGET(s) (user@host) or --inventory FILE")
    boards = unique_names(boards)
    if args.only:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = names - {b.name for b in boards}
        if unknown:
            raise EdgeBranchyError(f"--only: no board named {', '.join(sorted(unknown))} "
                                   f"(boards: {', '.join(b.name for b in boards)})")
        return [b for b in boards if b.name in names], [b for b in boards if b.name not in names]
    return boards, []


def _data(args, bench_args: list[str]):
    """The evaluation data part to send (--data-dir), or None; an image folder artifact with no data for the
    boards is refused here, before it fails on every board."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.remote import bundle

    given = {w.split("=")[0] for w in bench_args} & {"--data-dir", "--dataset"}
    if args.data_dir and args.board_data_dir or (args.data_dir or args.board_data_dir) and given:
        raise EdgeBranchyError("give the boards' data one way: --data-dir DIR, --board-data-dir PATH or "
                               f"{' / '.join(sorted(given)) or '--data-dir'} in --bench-args")
    if args.data_dir:
        return bundle.data_part(args.data_dir, args.samples)
    if not args.board_data_dir and not given and bundle.artifact_extras(args.artifact):
        raise EdgeBranchyError(f"{args.artifact} was trained on an image folder, which the boards do not have: "
                               "pass --data-dir DIR (a sample of it is sent, --samples N) or --board-data-dir PATH")
    return None


def _extras(args, wheel) -> list[str]:
    """The project's extras for the boards: the artifact's needs and --extras, each one the wheel offers."""
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.remote import bundle

    named = [e.strip() for e in args.extras.split(",") if e.strip()]
    offered = bundle.wheel_extras(wheel)
    unknown = [e for e in named if e not in offered]
    if unknown:
        raise EdgeBranchyError(f"--extras: {', '.join(unknown)} is not an extra of {wheel.label} "
                               f"(it offers {', '.join(offered)})")
    return sorted(set(named) | set(bundle.artifact_extras(args.artifact)))


def run(args) -> int:
    from pathlib import Path

    from edgebranchy.util.wrongkind import refuse_wrong_kind

    refuse_wrong_kind(args.artifact, "artifact", "remote")

    from edgebranchy.remote import bundle
    from edgebranchy.remote.fleet import plan_text
    from edgebranchy.remote.ssh import SshOptions

    boards, others = _boards(args)
    bench_args = _split(args.bench_args, "--bench-args")
    _check_bench_args(bench_args)
    ssh = SshOptions(config=args.ssh_config, jump=args.jump, identity=args.identity,
                     options=tuple(args.ssh_option), connect_timeout=args.connect_timeout)
    artifact = bundle.artifact_part(args.artifact)
    profiles = bundle.profiles_part()
    data = _data(args, bench_args)
    if args.dry_run:
        wheel = args.wheel or f"built from {bundle.project_root() or '(no source tree: pass --wheel)'}"
        print(plan_text(boards, {"artifact": f"{args.artifact} ({artifact.size_text})", "wheel": wheel,
                                 "profiles": profiles.label, "out": args.out, "bench": bench_args}, ssh.argv))
        return 0
    from edgebranchy.util.locks import output_lock
    from edgebranchy.util.outputs import check_output

    def check():  # --out: missing, empty, or an earlier remote run's folder (its boards are kept), never a user's
        return check_output(args.out, [args.artifact, args.inventory, args.wheel], "fleet", force=True,
                            option="--out")

    with output_lock(args.out, "--out", check=check):
        return _run(args, boards, others, bench_args, ssh, artifact, profiles, data, Path(args.out))


def _run(args, boards, others, bench_args, ssh, artifact, profiles, data, out) -> int:
    import tempfile
    from datetime import datetime, timezone

    from edgebranchy.remote import bundle
    from edgebranchy.remote.fleet import kept_results, run_fleet, status_table
    from edgebranchy.remote.job import JobConfig

    with tempfile.TemporaryDirectory(prefix="edgebranchy-wheel-") as tmp:
        wheel_path = args.wheel or bundle.build_wheel(tmp)
        wheel = bundle.wheel_part(wheel_path)
    extras = _extras(args, wheel)
    cfg = JobConfig(artifact=artifact, wheel=wheel, profiles=profiles, ssh=ssh, out=out,
                    run_id=datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"), python=args.remote_python,
                    venv_args=tuple(_split(args.venv_args, "--venv-args")),
                    pip_args=tuple(_split(args.pip_args, "--pip-args")), bench_args=tuple(bench_args),
                    extras=tuple(extras), data=data, board_data=args.board_data_dir,
                    engines=not args.no_engines, step_timeout=args.step_timeout)
    print(f"{len(boards)} board{'s' if len(boards) != 1 else ''}: {', '.join(b.name for b in boards)}; "
          f"artifact {artifact.label} ({artifact.size_text}), wheel {wheel.label}")
    outcome = run_fleet(boards, cfg, workers=args.jobs, kept=kept_results(others, out))
    print()
    print(status_table(outcome.results))
    print()
    print(outcome.report_note)
    print(f"status: {outcome.status_file}")
    failed = [r.board.name for r in outcome.results if r.status in ("failed", "unreachable")]
    if failed:
        print(f"to rerun the boards that did not finish: add --only {','.join(failed)}")
        return 1
    return 0
