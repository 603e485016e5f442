"""Many boards at once: the jobs in a thread pool, a status table, one report over every board that finished."""
from __future__ import annotations

import shlex
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from edgebranchy.remote.job import BoardJob, BoardResult, JobConfig
from edgebranchy.remote.scripts import workdir_expr
from edgebranchy.remote.targets import Board
from edgebranchy.util.files import atomic_write_json

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
        return all(r.status == "ok" for r in self.results)


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


def run_fleet(boards: list[Board], cfg: JobConfig, *, workers: int | None = None,
              print_fn: Callable[[str], None] = print) -> FleetOutcome:
    """Run every board's job in parallel; write OUT/status.json and OUT/report/ from what finished."""
    lock = threading.Lock()

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
        pool.shutdown(wait=False, cancel_futures=True)
        _write_status(cfg, [j.result for j in jobs])
        left = [j.board for j in jobs if j.result.status != "ok"]
        print_fn(f"interrupted: finished boards are in {cfg.out / 'boards'}; to rerun the others: "
                 f"--only {','.join(b.name for b in left)}")
        raise
    pool.shutdown()
    status = _write_status(cfg, results)
    report, note = _report(cfg, results)
    return FleetOutcome(results, status, report, note)


def _write_status(cfg: JobConfig, results: list[BoardResult]) -> Path:
    return atomic_write_json(cfg.out / STATUS_FILE, {
        "run": cfg.run_id, "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "artifact": {"name": cfg.artifact.label, "digest": cfg.artifact.digest},
        "wheel": {"file": cfg.wheel.label, "digest": cfg.wheel.digest},
        "boards": [r.to_dict() for r in results]})


def _report(cfg: JobConfig, results: list[BoardResult]) -> tuple[Path | None, str]:
    ok = [r for r in results if r.status == "ok" and r.results]
    if not ok:
        return None, "no board finished: no report written (an earlier report, if any, is left as it was)"
    from edgebranchy.errors import EdgeBranchyError
    from edgebranchy.report import build_report

    title = "Fleet run " + cfg.run_id + ": " + ", ".join(f"R{i} {r.board.name}" for i, r in enumerate(ok, 1))
    try:
        files = build_report([r.results for r in ok], cfg.out / REPORT_DIR, title=title)
    except EdgeBranchyError as e:
        return None, f"report not written: {e} (the results are in {cfg.out / 'boards'})"
    return files.html, f"report over {len(ok)} board{'s' if len(ok) != 1 else ''}: {files.html}"


def status_table(results: list[BoardResult]) -> str:
    """A per-board table: board, target, profile, status (and for failures the last lines of the error)."""
    rows = [("board", "target", "profile", "status")]
    for r in results:
        state = r.status if r.status == "ok" else (
            "unreachable" if r.status == "unreachable" else f"failed at {r.failed_step}")
        rows.append((r.board.name, r.board.target, r.board.profile, state))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        if r.status != "ok" and r.error:
            lines.append(f"--- {r.board.name}:")
            lines += ["    " + line for line in r.error.strip().splitlines()[-8:]]
    return "\n".join(lines)
