"""The OpenSSH client as a transport: run a shell script on a board, stream files to and from it.

Everything goes through the user's own `ssh` (keys, agent, ~/.ssh/config, jump
hosts), always with BatchMode=yes: a board that would ask for a password fails
at once with a message instead of hanging a parallel run.
"""
from __future__ import annotations

import shlex
import subprocess
import threading
from dataclasses import dataclass, field
from typing import IO

from edgebranchy.remote.targets import Board

SSH_FAILED = 255  # what ssh exits with when the connection itself fails


@dataclass(frozen=True)
class SshOptions:
    """Client options passed through to every ssh call."""

    config: str | None = None        # -F
    jump: str | None = None          # -J
    identity: str | None = None      # -i
    options: tuple[str, ...] = ()    # -o KEY=VALUE, as given
    connect_timeout: int = 10
    executable: str = "ssh"

    def argv(self, board: Board) -> list[str]:
        """ssh and its options up to (and including) `--` and the destination."""
        cmd = [self.executable, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
               "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.config:
            cmd += ["-F", self.config]
        if self.jump:
            cmd += ["-J", self.jump]
        if self.identity:
            cmd += ["-i", self.identity]
        for o in self.options:
            cmd += ["-o", o]
        if board.port:
            cmd += ["-p", str(board.port)]
        # "--" ends ssh's options: the destination is never read as one, whatever an inventory says
        return cmd + ["--", board.destination]


@dataclass
class Result:
    """What one remote command did."""

    returncode: int
    stdout: str
    stderr: str
    argv: list[str] = field(default_factory=list)
    raw: bytes = b""   # stdout as bytes (a tar stream)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 12) -> str:
        """The last lines of stderr (else stdout): what a failure report shows."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])


class ConnectionFailed(Exception):
    """ssh could not reach or log in to the board."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


def explain_ssh_failure(stderr: str) -> str:
    """One sentence on why ssh exited 255, from its own message."""
    s = stderr.lower()
    if "permission denied" in s:
        return ("login refused (BatchMode: no password prompts): set up key login for this board "
                "(ssh-copy-id) or pass -i KEY / -F CONFIG")
    if "host key verification failed" in s or "remote host identification has changed" in s:
        return "host key not known or changed: connect once with plain ssh to accept it, or fix known_hosts"
    if "connection refused" in s:
        return "connection refused (no ssh server listening on that port)"
    if "timed out" in s:
        return "connection timed out"
    if "could not resolve" in s or "name or service not known" in s:
        return "host name not found"
    if "no route to host" in s or "network is unreachable" in s:
        return "no route to host"
    return "ssh failed"


class Transport:
    """ssh to one board."""

    def __init__(self, board: Board, options: SshOptions):
        self.board = board
        self.options = options
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _run(self, remote_command: str, stdin: bytes | IO[bytes] | None, timeout: float | None) -> Result:
        argv = self.options.argv(self.board) + [remote_command]
        data = stdin if isinstance(stdin, (bytes, type(None))) else stdin.read()
        try:
            # its own session: Ctrl-C reaches only this process, which sets the fleet's cancel flag and then
            # ends the ssh calls (Transport.terminate); an ssh killed by the terminal's SIGINT first raced that
            # flag, and its board wrote a status.json for a run the user had interrupted
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except FileNotFoundError:
            return Result(127, "", f"{self.options.executable}: OpenSSH client not found on this machine", argv)
        with self._lock:
            self._proc = proc
        try:
            out, err = proc.communicate(data or b"", timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return Result(124, out.decode("utf-8", "replace"),
                          err.decode("utf-8", "replace") + f"\ntimed out after {timeout:.0f} s", argv, raw=out)
        finally:
            with self._lock:
                self._proc = None
        res = Result(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), argv, raw=out)
        if res.returncode == SSH_FAILED:
            raise ConnectionFailed(explain_ssh_failure(res.stderr), res)
        return res

    def terminate(self) -> None:
        """Stop the ssh call in progress, if any (Ctrl-C: whatever the terminal did or did not signal)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()

    def script(self, text: str, timeout: float | None = None) -> Result:
        """Run a POSIX shell script on the board (sent on stdin: no quoting limits, any login shell)."""
        return self._run("sh -s", text.encode("utf-8"), timeout)

    def command(self, shell: str, stdin: bytes | IO[bytes] | None = None, timeout: float | None = None) -> Result:
        """Run one `sh -c` command line on the board, with `stdin` fed to it."""
        return self._run("sh -c " + shlex.quote(shell), stdin, timeout)
