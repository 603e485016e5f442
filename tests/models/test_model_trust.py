"""A checkpoint's model factory runs code: only modules the user named in $EDGEBRANCHY_TRUST_MODEL_CODE are built."""
from __future__ import annotations

import pytest

from eb_testutil import run_cli
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.models.checkpoint import check_trusted, load_checkpoint, save_checkpoint


@pytest.fixture()
def hostile_checkpoint(tiny_checkpoint, tmp_path):
    """The tiny checkpoint, edited to name `os:system` with a command that would leave a file behind."""
    ck = load_checkpoint(tiny_checkpoint)
    marker = tmp_path / "pwned"
    cfg = dict(ck.config, model={"name": "os:system", "args": {"command": f"touch {marker}"}})
    out = save_checkpoint(tmp_path / "hostile.pt", cfg, ck.branchy_state, ck.baseline_state)
    return out, marker


@pytest.mark.parametrize("trust", ["1", "mynets", "", "osx", "mynets,os.path"])
def test_a_factory_outside_the_trusted_modules_is_refused(hostile_checkpoint, tmp_path, trust):
    """EDGEBRANCHY_TRUST_MODEL_CODE=1 used to trust every module, so a checkpoint naming os:system ran it."""
    ck, marker = hostile_checkpoint
    r = run_cli("export", ck, "--out", tmp_path / "art", env={"EDGEBRANCHY_TRUST_MODEL_CODE": trust})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "EDGEBRANCHY_TRUST_MODEL_CODE" in r.stderr and not marker.exists()
    assert not (tmp_path / "art").exists()


def test_trust_names_modules_and_their_submodules(monkeypatch):
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "mynets, lab.models")
    check_trusted("mynets:branchy", "m.pt")
    check_trusted("mynets.resnets:branchy", "m.pt")
    check_trusted("lab.models.v2:net", "m.pt")
    for name in ("mynetsx:branchy", "lab:net", "lab.modelsx:net", "os:system", "mynets", "mynets:os.system"):
        with pytest.raises(EdgeBranchyError):
            check_trusted(name, "m.pt")
    monkeypatch.setenv("EDGEBRANCHY_TRUST_MODEL_CODE", "1")
    with pytest.raises(EdgeBranchyError, match="name the modules"):
        check_trusted("mynets:branchy", "m.pt")
