"""One board, start to finish: probe, copy what changed, environment, doctor, engines, bench, fetch.

A step that fails ends the board's job with the step's name and the last lines
of its output; the fetched files and a status record are written locally
either way (into a temporary folder renamed into place at the end).
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Callable

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.remote import scripts
from edgebranchy.remote.bundle import Part
from edgebranchy.remote.ssh import ConnectionFailed, Result, SshOptions, Transport
from edgebranchy.remote.targets import Board
from edgebranchy.util.files import atomic_write_json, atomic_write_text

DOCTOR_MISSING = "invalid choice: 'doctor'"


@dataclass(frozen=True)
class JobConfig:
    """What every board gets and how it is reached."""

    artifact: Part
    wheel: Part
    profiles: Part
    ssh: SshOptions
    out: Path                         # local output directory (boards/<name>/ inside)
    run_id: str
    python: str = "python3"           # the board's interpreter that creates the venv
    venv_args: tuple[str, ...] = ()
    pip_args: tuple[str, ...] = ()
    bench_args: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()      # this project's extras to install (images: Pillow for image artifacts)
    data: Part | None = None          # evaluation data sent to WORKDIR/data/LABEL (hash-checked there)
    board_data: str | None = None     # or a data directory already on the board
    engines: bool = True              # build TensorRT engines where TensorRT imports
    step_timeout: float = 3600.0
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)  # set on Ctrl-C


@dataclass
class Step:
    name: str
    status: str        # ok, copied, reused, created, installed, skipped, unavailable, failed
    seconds: float
    detail: str = ""


@dataclass
class BoardResult:
    board: Board
    status: str = "running"           # ok, unreachable, failed
    failed_step: str | None = None
    error: str = ""
    steps: list[Step] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    local_dir: Path | None = None
    results: Path | None = None

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict:
        return {"name": self.board.name, "target": self.board.target, "profile": self.board.profile,
                "workdir": self.board.workdir, "notes": self.board.notes, "status": self.status,
                "failed_step": self.failed_step, "error": self.error, "facts": self.facts,
                "steps": [s.__dict__ for s in self.steps],
                "results": str(self.results) if self.results else None}


class _StepFailed(Exception):
    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


def _create_key(python: str, venv_args: list[str]) -> str:
    return hashlib.sha256("\0".join([python, *venv_args]).encode()).hexdigest()[:16]


def _install_key(cfg: JobConfig) -> str:
    """What the install depends on beside the wheel: the extras and pip's options (a change reinstalls)."""
    return hashlib.sha256("\0".join([*cfg.extras, "|", *cfg.pip_args]).encode()).hexdigest()[:16]


class BoardJob:
    """Runs the steps for one board; `run()` never raises for a board's own failures."""

    def __init__(self, board: Board, cfg: JobConfig, say: Callable[[str, str], None]):
        self.board = board
        self.cfg = cfg
        self.ssh = Transport(board, cfg.ssh)
        self.result = BoardResult(board)
        self._say = say
        self._log: list[str] = []
        self._fetched: dict[str, bytes] = {}
        self._current = "connect"

    def say(self, text: str) -> None:
        self._say(self.board.name, text)

    # -- running steps ---------------------------------------------------------------------------
    def _record(self, name: str, status: str, t0: float, detail: str = "") -> Step:
        s = Step(name, status, round(time.monotonic() - t0, 2), detail)
        self.result.steps.append(s)
        self.say(f"{name}: {status}" + (f" ({detail})" if detail else ""))
        return s

    def _remote(self, step: str, script: str, stdin: bytes | None = None, *, check: bool = True) -> Result:
        self._current = step
        if self.cfg.cancel.is_set():
            raise _StepFailed(step, "interrupted")
        self._log.append(f"$ [{step}]\n{script}")
        try:
            if stdin is None:
                r = self.ssh.script(script, timeout=self.cfg.step_timeout)
            else:
                r = self.ssh.command(script, stdin=stdin, timeout=self.cfg.step_timeout)
        except ConnectionFailed as e:
            self._log.append(e.result.stderr)
            raise _StepFailed(step, f"connection lost: {e}\n{e.result.tail()}") from None
        self._log.append(f"[exit {r.returncode}]\n{r.stdout}{r.stderr}")
        if check and not r.ok:
            raise _StepFailed(step, f"exit status {r.returncode}\n{r.tail()}")
        return r

    def run(self) -> BoardResult:
        res = self.result
        t0 = time.monotonic()
        try:
            facts = self._probe()
        except ConnectionFailed as e:
            res.status, res.failed_step = "unreachable", "connect"
            res.error = f"{e}\n{e.result.tail(4)}".strip()
            self._record("connect", "failed", t0, str(e))
        except _StepFailed as e:
            self._fail(e.step, str(e))
        else:
            self._record("connect", "ok", t0, _facts_text(facts))
            try:
                self._upload(facts["digests"])
                self._environment(facts)
                self._doctor()
                self._engines()
                self._bench()
                res.status = "ok"
            except _StepFailed as e:
                self._fail(e.step, str(e))
            except Exception as e:  # a bug or a local I/O error must not take the other boards down
                self._fail(self._current, f"{type(e).__name__}: {e}")
        if self.cfg.cancel.is_set() and res.status != "ok":
            return res  # interrupted: the board's folder from an earlier run stays as it was
        try:
            if res.status != "unreachable":
                self._fetch()  # after a failure too: whatever the step left (a partial trial log, doctor.json)
            self._write_local()
        except Exception as e:  # a local I/O error with this board's files must not take the other boards down
            self._fail("fetch", f"{type(e).__name__}: {e}")
        return res

    def _fail(self, step: str, message: str) -> None:
        self.result.status, self.result.failed_step, self.result.error = "failed", step, message
        self._record(step, "failed", time.monotonic(), message.splitlines()[0] if message else "")

    # -- the steps -------------------------------------------------------------------------------
    def _probe(self) -> dict:
        data = self.cfg.data.label if self.cfg.data else ""
        r = self.ssh.script(scripts.probe(self.board.workdir, self.cfg.artifact.label, self.cfg.python, data),
                            timeout=120)
        self._log.append(f"$ [connect]\n[exit {r.returncode}]\n{r.stdout}{r.stderr}")
        got: dict[str, str] = {}
        for line in r.stdout.splitlines():
            if line.startswith(scripts.PROBE_MARK) and "=" in line:
                k, v = line[len(scripts.PROBE_MARK):].split("=", 1)
                got[k] = v
        if "machine" not in got:
            raise _StepFailed("connect", f"the board did not answer the probe (exit {r.returncode})\n{r.tail()}")
        facts = {"machine": got["machine"], "jetson": got.get("jetson") == "1"}
        for k in ("model", "l4t"):
            if got.get(k):
                facts[k] = got[k]
        facts["python"] = got.get("python", "")
        self.result.facts = {k: v for k, v in facts.items()}
        facts["digests"] = {k[len("digest:"):]: v for k, v in got.items() if k.startswith("digest:")}
        facts["venv"] = got.get("venv") == "1"
        facts["artifact_dir"] = got.get("artifact_dir") == "1"
        return facts

    def _upload(self, have: dict[str, str]) -> None:
        wd = self.board.workdir
        art, prof, data = self.cfg.artifact, self.cfg.profiles, self.cfg.data
        parts = [(art, f"artifacts/{art.label}"), (prof, "profiles")] + ([(data, f"data/{data.label}")] if data else [])
        for part, rel in parts:
            t0 = time.monotonic()
            if have.get(f"{rel}.digest") == part.digest:
                self._record(part.name, "reused", t0, f"digest {part.digest[:12]}")
                continue
            self._remote(part.name, scripts.replace_dir(wd, rel, part.digest, checked=part is data), stdin=part.data)
            self._record(part.name, "copied", t0, f"{part.size_text}, digest {part.digest[:12]}")

    def _environment(self, facts: dict) -> None:
        cfg = self.cfg
        venv_args = list(cfg.venv_args)
        if facts["jetson"] and "--system-site-packages" not in venv_args:
            venv_args.append("--system-site-packages")  # TensorRT's bindings live in the system Python only
        key = _create_key(cfg.python, venv_args)
        have = facts["digests"].get("venv.digest", "")
        recreate = not facts["venv"] or have.split(" ")[0] != key
        state = f"{key} {cfg.wheel.digest} {_install_key(cfg)}"
        t0 = time.monotonic()
        if not recreate and have == state:
            self._record("wheel", "reused", t0, cfg.wheel.label)
            self._record("venv", "reused", t0, "edgebranchy already installed")
        else:
            if not facts["python"]:
                raise _StepFailed("venv", f"no Python at {cfg.python!r} on the board ({facts['python'] or 'not found'})"
                                          "; pass --remote-python PATH")
            self._remote("wheel", scripts.put_wheel(self.board.workdir, cfg.wheel.filename), stdin=cfg.wheel.data)
            self._record("wheel", "copied", t0, f"{cfg.wheel.label}, {cfg.wheel.size_text}")
            t0 = time.monotonic()
            self._remote("venv", scripts.environment(self.board.workdir, cfg.python, venv_args, list(cfg.pip_args),
                                                     cfg.wheel.filename, key, state, recreate, list(cfg.extras)))
            extras = f"; extras {','.join(cfg.extras)}" if cfg.extras else ""
            self._record("venv", "created" if recreate else "installed", t0,
                         (" ".join([cfg.python, "-m venv", *venv_args]) if recreate else "installed again") + extras)
        r = self._remote("tensorrt", scripts.has_tensorrt(self.board.workdir), check=False)
        self.result.facts["tensorrt"] = r.stdout.strip() if r.ok and r.stdout.strip() else None

    def _doctor(self) -> None:
        t0 = time.monotonic()
        r = self._remote("doctor", scripts.edgebranchy(self.board.workdir, self.cfg.run_id,
                                                       ["doctor", "--out", "doctor.json"]), check=False)
        if r.ok:
            self._record("doctor", "ok", t0, "doctor.json")
        elif DOCTOR_MISSING in r.stderr:
            self._record("doctor", "unavailable", t0, "this edgebranchy has no `doctor` command")
        else:  # the board's own report on itself failed: worth a line, never worth losing the bench
            self._record("doctor", "failed", t0, r.tail(1))

    def _engines(self) -> None:
        t0 = time.monotonic()
        trt = self.result.facts.get("tensorrt")
        if not trt or not self.cfg.engines:
            self._record("engines", "skipped", t0, "TensorRT not importable" if not trt else "--no-engines")
            return
        r = self._remote("engines", scripts.edgebranchy(
            self.board.workdir, self.cfg.run_id,
            ["build", f"@/artifacts/{self.cfg.artifact.label}", "--profile", self.board.profile]))
        self._record("engines", "ok", t0, (r.stdout.strip().splitlines() or [""])[-1])

    def _bench(self) -> None:
        t0 = time.monotonic()
        r = self._remote("bench", scripts.edgebranchy(
            self.board.workdir, self.cfg.run_id,
            ["bench", f"@/artifacts/{self.cfg.artifact.label}", "--profile", self.board.profile,
             "--out", "results.json", *self._data_args(), *self.cfg.bench_args]))
        lines = r.stdout.splitlines()
        # the verdict (bench's first line; led by a warning when the set-up looks broken), else an older
        # edgebranchy's gain line
        said = [ln for ln in lines if ln.startswith("branchy is ") or
                (ln.startswith("warning: ") and "measured anyway: branchy is " in ln)] or \
            [ln for ln in lines if ln.startswith("latency gain")]
        self._record("bench", "ok", t0, said[0] if said else "")

    def _data_args(self) -> list[str]:
        """bench's --data-dir: the data sent (WORKDIR/data/LABEL) or the directory named on the board."""
        if self.cfg.data is not None:
            return ["--data-dir", f"@/data/{self.cfg.data.label}"]
        return ["--data-dir", self.cfg.board_data] if self.cfg.board_data else []

    def _fetch(self) -> None:
        t0 = time.monotonic()
        try:
            r = self.ssh.script(scripts.fetch_run(self.board.workdir, self.cfg.run_id), timeout=self.cfg.step_timeout)
        except ConnectionFailed as e:
            self._record("fetch", "failed", t0, str(e))
            return
        if r.returncode != 0:
            self._record("fetch", "failed" if self.result.status == "ok" else "skipped", t0, r.tail(1))
            if self.result.status == "ok":
                self.result.status, self.result.failed_step, self.result.error = "failed", "fetch", r.tail()
            return
        try:
            self._fetched = _read_tar(r.raw)
        except _StepFailed as e:  # this board's answer alone is bad: it fails, the fleet goes on
            self._record("fetch", "failed", t0, str(e))
            if self.result.status == "ok":
                self.result.status, self.result.failed_step, self.result.error = "failed", "fetch", str(e)
            return
        self._record("fetch", "ok", t0, ", ".join(sorted(self._fetched)) or "nothing")
        if self.result.status == "ok" and "results.json" not in self._fetched:
            self.result.status, self.result.failed_step, self.result.error = "failed", "fetch", "no results.json"

    def _write_local(self) -> None:
        """boards/<name>/: the fetched files, remote.log and status.json, renamed into place complete."""
        if self.cfg.cancel.is_set() and self.result.status != "ok":
            return  # interrupted (even during the fetch): the folder from an earlier run stays
        boards = self.cfg.out / "boards"
        boards.mkdir(parents=True, exist_ok=True)
        final = boards / self.board.name
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.board.name}.", dir=boards))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it 0700; a results folder is as readable as any other
            for name, data in self._fetched.items():
                (tmp / name).write_bytes(data)
            atomic_write_text(tmp / "remote.log", "\n".join(self._log) + "\n")
            if self.result.status == "ok" and "results.json" in self._fetched:
                self.result.results = final / "results.json"
            self.result.local_dir = final
            atomic_write_json(tmp / "status.json", {**self.result.to_dict(), "run": self.cfg.run_id,
                                                    "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            old = boards / f".{self.board.name}.old"
            if old.exists():
                shutil.rmtree(old)
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _facts_text(facts: dict) -> str:
    where = f"Jetson, {facts.get('l4t') or facts.get('model') or 'L4T'}" if facts["jetson"] else facts.get("model", "")
    py = facts["python"].split(" ")[-1] if facts["python"] else "no Python found"
    return ", ".join(x for x in (facts["machine"], where, f"Python {py}") if x)


def _read_tar(data: bytes) -> dict[str, bytes]:
    """Regular files at the top of a run folder's tar, after the fetch's mark (a login banner before it is
    skipped); anything else, or a path with '/', is ignored. _StepFailed when there is no readable tar, or one
    with a path or link out of its folder (util/readers.tar_files)."""
    from edgebranchy.util.readers import tar_files

    at = data.find(scripts.TAR_MARK)
    if at < 0:
        head = data[:120].decode("utf-8", "replace").splitlines()
        raise _StepFailed("fetch", "the board's answer holds no run folder (" + (
            f"it printed {head[0]!r}: a login banner on stdout, e.g. an echo in .bashrc?" if head else "nothing")
            + ")")
    try:
        files = tar_files(data, "the board's returned tar", "board-tar", start=at + len(scripts.TAR_MARK))
    except EdgeBranchyError as e:
        raise _StepFailed("fetch", str(e)) from None
    out = {}
    for member, body in files:
        parts = [p for p in PurePosixPath(member).parts if p != "."]
        if len(parts) == 1 and parts[0] not in ("status.json", "remote.log") and len(out) < _MAX_FILES \
                and len(body) <= _MAX_FILE:
            out[parts[0]] = body
    return out


_MAX_FILES = 256  # files fetched from one board's run folder
_MAX_FILE = 1 << 30  # bytes of one fetched file
