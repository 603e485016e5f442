"""Backend options are declared once (BackendOption) and drive validation, CLI flags and profile defaults."""
from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.runtime.backends.base import backend_options
from edgebranchy.runtime.backends.options import (BackendOption, add_cli_flags, cli_options, profile_options,
                                                  resolve_options)

DECL = (
    BackendOption("threads", "int", 1, "threads", minimum=0, flag="--threads", profile_key="intra_op_threads"),
    BackendOption("spin", "bool", False, "spinning", flag="--spin"),
    BackendOption("mode", "str", "a", "mode", choices=("a", "b")),
    BackendOption("path", "str", None, "a path", nullable=True),
    BackendOption("providers", "strings", ("X",), "providers"),
)


def test_defaults_overrides_and_every_kind_checked():
    assert resolve_options(DECL, None, "demo") == {"threads": 1, "spin": False, "mode": "a", "path": None,
                                                  "providers": ["X"]}
    got = resolve_options(DECL, {"threads": 0, "spin": True, "mode": "b", "path": "p", "providers": ["Y"]}, "demo")
    assert got == {"threads": 0, "spin": True, "mode": "b", "path": "p", "providers": ["Y"]}
    for bad in ({"threads": -1}, {"threads": True}, {"threads": 1.0}, {"spin": 1}, {"mode": "c"},
                {"path": 3}, {"providers": "X"}, {"providers": [1]}):
        with pytest.raises(EdgeBranchyError, match=f"demo option {next(iter(bad))} must be"):
            resolve_options(DECL, bad, "demo")
    with pytest.raises(EdgeBranchyError, match="unknown demo option.*nope; known: mode, path, providers, spin"):
        resolve_options(DECL, {"nope": 1}, "demo")


def test_cli_flags_come_from_the_declarations():
    other = (BackendOption("device", "str", "cpu", "device", flag="--device"),)
    p = argparse.ArgumentParser()
    add_cli_flags(p, [("demo", DECL), ("other", other)])
    backends = [("demo", DECL), ("other", other)]
    args = p.parse_args(["--threads", "3", "--spin", "on"])
    assert cli_options(args, "demo", backends) == {"threads": 3, "spin": True}
    assert cli_options(p.parse_args([]), "demo", backends) == {}
    with pytest.raises(EdgeBranchyError, match="--device is an option of the other backend, not of demo"):
        cli_options(p.parse_args(["--device", "cuda"]), "demo", backends)
    with pytest.raises(SystemExit):
        p.parse_args(["--spin", "maybe"])


def test_profile_sets_only_the_declared_keys():
    runtime = SimpleNamespace(intra_op_threads=4, backend="demo", batch_size=8)
    assert profile_options(DECL, runtime) == {"threads": 4}


def test_real_backends_declare_their_options():
    ort = {o.name: o for o in backend_options("onnxruntime")}
    assert ort["intra_op_threads"].flag == "--threads" and ort["allow_spinning"].flag == "--spinning"
    assert {o.profile_key for o in ort.values() if o.profile_key} == {
        "intra_op_threads", "allow_spinning", "graph_optimization", "execution_mode"}
    torch_opts = {o.name: o for o in backend_options("torch")}
    assert torch_opts["device"].flag == "--device" and torch_opts["checkpoint"].flag == "--checkpoint"


def test_onnxruntime_backend_validates_against_its_declaration(tiny_artifact):
    from edgebranchy.runtime.runner import EarlyExitRunner

    with pytest.raises(EdgeBranchyError, match="onnxruntime option graph_optimization must be one of"):
        EarlyExitRunner(tiny_artifact, options={"graph_optimization": "max"})
    with pytest.raises(EdgeBranchyError, match="onnxruntime option intra_op_threads must be an integer >= 0"):
        EarlyExitRunner(tiny_artifact, options={"intra_op_threads": -2})
    with EarlyExitRunner(tiny_artifact, options={"intra_op_threads": 2}) as r:
        assert r.backend.describe()["options"]["intra_op_threads"] == 2


def test_predict_cli_passes_backend_flags(tiny_artifact):
    from eb_testutil import run_cli

    r = run_cli("predict", tiny_artifact, "--dataset", "synthetic", "--samples", "8", "--threads", "1",
                "--spinning", "off")
    assert r.returncode == 0, r.stderr
    r = run_cli("predict", tiny_artifact, "--dataset", "synthetic", "--samples", "8", "--device", "cpu")
    assert r.returncode == 2 and "--device is an option of the torch backend" in r.stderr
    assert "Traceback" not in r.stderr


def test_pipeline_empty_batch_is_a_user_error(tiny_artifact):
    from edgebranchy.runtime.runner import EarlyExitRunner

    with EarlyExitRunner(tiny_artifact) as r:
        x = np.zeros((0, *r.artifact.input_shape), dtype=np.float32)
        with pytest.raises(EdgeBranchyError, match="empty batch"):
            list(r.predict_stream([x, x], pipelined=True))


@pytest.mark.parametrize("asked,expected", [(0, 3), (1, 1), (2, 2)])
def test_onnxruntime_threads_zero_are_the_usable_cpus(tiny_artifact, monkeypatch, asked, expected):
    """intra_op_threads 0 is what the process may use (affinity, quota), not ONNX Runtime's host-sized default."""
    import edgebranchy.util.cpus as cpus_mod
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from edgebranchy.util.cpus import CpuBudget

    monkeypatch.setattr(cpus_mod, "usable_cpus", lambda root="/": CpuBudget(3, 64, 3, None, "affinity"))
    b = OnnxRuntimeBackend(Artifact.load(tiny_artifact), {"intra_op_threads": asked})
    try:
        assert b.intra_op_threads == expected and b.threads_per_call == expected
        d = b.describe()
        assert d["intra_op_threads_used"] == expected and d["cpus"]["count"] == 3
    finally:
        b.close()
