"""Two loopback OpenSSH "boards" (one module's worth of servers, shared by the remote tests)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from loopback_sshd import Sshd, client_config, free_port, keygen, start_sshd, why_no_sshd


@dataclass
class Loopback:
    config: Path          # ssh client config: Host board-a, board-b, board-down
    dir: Path
    servers: list[Sshd]
    down_port: int


@pytest.fixture(scope="session")
def loopback(tmp_path_factory) -> Loopback:
    why = why_no_sshd()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("ssh")
    keygen(d / "id_ed25519")
    keygen(d / "host_ed25519")
    auth = d / "authorized_keys"
    auth.write_text((d / "id_ed25519.pub").read_text())
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(start_sshd(d / f"sshd-{name}", auth, d / "host_ed25519"))
    except RuntimeError as e:
        for s in servers:
            s.stop()
        pytest.skip(f"cannot start sshd here: {e}")
    down = free_port()  # nothing listens there: a board that refuses the connection
    cfg = client_config(d / "ssh_config", d / "id_ed25519", d / "known_hosts",
                        {"board-a": servers[0].port, "board-b": servers[1].port, "board-down": down})
    yield Loopback(cfg, d, servers, down)
    for s in servers:
        s.stop()
