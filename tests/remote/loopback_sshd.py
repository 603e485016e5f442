"""Real OpenSSH servers on 127.0.0.1 as throwaway "boards" (host and user keys made with ssh-keygen in tmp).

Each server runs `/usr/sbin/sshd -D -e -f CONFIG` as the current user on a free
port with key login only. The boards' sessions get PYTHONPATH pointing at this
interpreter's site-packages (sshd's SetEnv): what a board with numpy,
onnxruntime and psutil preinstalled looks like, so the venv that `remote`
creates there resolves the core dependencies without a download.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def why_no_sshd() -> str | None:
    """None where sshd can be started here, else the reason."""
    for exe in (SSHD, shutil.which("ssh"), shutil.which("ssh-keygen")):
        if not exe or not os.access(exe, os.X_OK):
            return f"OpenSSH not installed ({exe or 'ssh/ssh-keygen'} missing; apt-get install openssh-server " \
                   "openssh-client)"
    return None


@dataclass
class Sshd:
    port: int
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   capture_output=True)


def start_sshd(d: Path, authorized_keys: Path, host_key: Path) -> Sshd:
    """One sshd on a free port, its config and log in `d`; raises RuntimeError if it does not come up."""
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory, needed as root
    site = sysconfig.get_paths()["purelib"]
    for attempt in range(3):
        port = free_port()
        cfg = d / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}", "StrictModes no", "UsePAM no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", f"AllowUsers {getpass.getuser()}", "LogLevel ERROR",
            f"SetEnv PYTHONPATH={site}", ""]))
        log = d / "sshd.log"
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=open(log, "wb"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return Sshd(port, proc, log)
            except OSError:
                time.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise RuntimeError(f"sshd did not start: {log.read_text(errors='replace').strip()[-500:]}")


def client_config(path: Path, key: Path, known_hosts: Path, hosts: dict[str, int]) -> Path:
    """An ssh client config with one Host alias per board."""
    lines = []
    for alias, port in hosts.items():
        lines += [f"Host {alias}", "  HostName 127.0.0.1", f"  Port {port}", f"  User {getpass.getuser()}",
                  f"  IdentityFile {key}", "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
                  f"  UserKnownHostsFile {known_hosts}", "  LogLevel ERROR", ""]
    path.write_text("\n".join(lines))
    return path


def board_python() -> str:
    """The interpreter the boards' venvs are made from: the base of this one (a venv of a venv is the base's)."""
    return getattr(sys, "_base_executable", None) or sys.executable
