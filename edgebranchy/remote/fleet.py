"""Many boards at once: the jobs in a thread pool, a status table, one report over every board that finished."""
from __future__ import annotations

import functools
import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.remote.job import BoardJob, BoardResult, JobConfig
from edgebranchy.remote.scripts import workdir_expr
from edgebranchy.remote.targets import Board
from edgebranchy.util.files import atomic_write_json
from edgebranchy.util.readers import load_json

STATUS_FILE = "status.json"
REPORT_DIR = "report"


@dataclass
class FleetOutcome:
    results: list[BoardResult]
    status_file: Path
    report: Path | None
    report_note: str

    @property
    def ok(self) -> bool:
        return all(r.status in ("ok", "kept") for r in self.results)


def plan_text(boards: list[Board], cfg_text: dict, ssh_argv: Callable[[Board], list[str]]) -> str:
    """What a run would do, board by board (--dry-run)."""
    lines = [f"artifact: {cfg_text['artifact']} (copied without engines/)", f"wheel: {cfg_text['wheel']}",
             f"profiles: {cfg_text['profiles']}", f"local output: {cfg_text['out']}", ""]
    for b in boards:
        lines += [f"{b.name}: {b.target}  profile {b.profile}" + (f"  ({b.notes})" if b.notes else ""),
                  f"  ssh: {shlex.join(ssh_argv(b))}",
                  f"  work dir: {b.workdir} ({workdir_expr(b.workdir)})",
                  "  steps: connect; copy artifact/profiles/wheel unless the board has the same digest; "
                  "venv (--system-site-packages on Jetson) + pip install unless unchanged; doctor; "
                  "engines (where TensorRT imports); bench " + " ".join(cfg_text["bench"]) + "; fetch"]
    lines.append("")
    lines.append(f"then: one report over all boards in {Path(cfg_text['out']) / REPORT_DIR}")
    return "\n".join(lines)


def kept_results(boards: list[Board], out: Path) -> list[BoardResult]:
    """Boards not run this time (--only) whose folder under OUT/boards holds finished results from before."""
    kept = []
    for b in boards:
        d = out / "boards" / b.name
        try:
            st = load_json(d / "status.json", "board-status")
        except EdgeBranchyError:
            continue
        if isinstance(st, dict) and st.get("status") == "ok" and (d / "results.json").is_file():
            kept.append(BoardResult(b, status="kept", error=f"results kept from run {st.get('run', '?')}",
                                    local_dir=d, results=d / "results.json", facts=st.get("facts", {})))
    return kept


def run_fleet(boards: list[Board], cfg: JobConfig, *, workers: int | None = None, kept: list[BoardResult] = (),
              print_fn: Callable[[str], None] | None = None) -> FleetOutcome:
    """Run every board's job in parallel; write OUT/status.json and OUT/report/ over what finished (+ `kept`)."""
    lock = threading.Lock()
    print_fn = print_fn or functools.partial(print, flush=True)  # progress lines, as they happen

    def say(name: str, text: str) -> None:
        with lock:
            print_fn(f"[{name}] {text}")

    cfg.out.mkdir(parents=True, exist_ok=True)
    jobs = [BoardJob(b, cfg, say) for b in boards]
    pool = ThreadPoolExecutor(max_workers=workers or min(16, len(jobs)))
    futures = [pool.submit(j.run) for j in jobs]
    try:
        results = [f.result() for f in futures]
    except KeyboardInterrupt:
        cfg.cancel.set()  # unfinished boards write nothing: their folders from earlier runs stay intact
        for j in jobs:
            j.ssh.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        left = [j.board for j in jobs if j.result.status != "ok"]
        print_fn(f"interrupted: boards that finished are in {cfg.out / 'boards'}; {STATUS_FILE} and "
                 f"{REPORT_DIR}/ were not rewritten. To rerun the rest, add --only {','.join(b.name for b in left)}")
        raise
    pool.shutdown()
    status = _write_status(cfg, results + list(kept))
    report, note = _report(cfg, results + list(kept))
    return FleetOutcome(results + list(kept), status, report, note)


def _write_status(cfg: JobConfig, results: list[BoardResult]) -> Path:
    from edgebranchy.util.kinds import FLEET_SCHEMA

    return atomic_write_json(cfg.out / STATUS_FILE, {
        "schema": FLEET_SCHEMA, "run": cfg.run_id, "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "artifact": {"name": cfg.artifact.label, "digest": cfg.artifact.digest},
        "wheel": {"file": cfg.wheel.label, "digest": cfg.wheel.digest},
        "boards": [r.to_dict() for r in results]})


def _report(cfg: JobConfig, results: list[BoardResult]) -> tuple[Path | None, str]:
    ok = [r for r in results if r.status in ("ok", "kept") and r.results]
    if not ok:
        return None, "no board finished: no report written (an earlier report, if any, is left as it was)"
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.report import build_report

    title = "Fleet run " + cfg.run_id + ": " + ", ".join(f"R{i} {r.board.name}" for i, r in enumerate(ok, 1))
    try:
        files = build_report([r.results for r in ok], cfg.out / REPORT_DIR, title=title,
                             boards=[r.board.name for r in ok])
    except EdgeBranchyError as e:
        return None, f"report not written: {e} (the results are in {cfg.out / 'boards'})"
    return files.html, f"report over {len(ok)} board{'s' if len(ok) != 1 else ''}: {files.html}"


def status_table(results: list[BoardResult]) -> str:
    """A per-board table: board, target, profile, status (and for failures the last lines of the error)."""
    rows = [("board", "target", "profile", "status")]
    for r in results:
        state = {"ok": "ok", "unreachable": "unreachable", "kept": "not run (--only): " + r.error}.get(
            r.status, f"failed at {r.failed_step}")
        rows.append((r.board.name, r.board.target, r.board.profile, state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        if r.status in ("failed", "unreachable") and r.error:
            lines.append(f"--- {r.board.name}:")
            lines += ["    " + line for line in r.error.strip().splitlines()[-8:]]
    return "\n".join(lines)
