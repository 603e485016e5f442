"""`edgebranchy doctor`: for real on this CPU machine (TensorRT absent, with the reason) and against the
strict TensorRT/pycuda double (the tiny engine built, run and compared with ONNX Runtime)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from trt_double import assert_clean, install

from eb_testutil import ROOT
from edgebranchy.device import doctor_device as doctor


def test_doctor_on_this_machine_for_real(tmp_path):
    """A real subprocess without torch importable: exit 0, a table, a JSON file, TensorRT named absent."""
    out = tmp_path / "doctor.json"
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgebranchy.cli import main\n"
            f"raise SystemExit(main(['doctor', '--out', {str(out)!r}, '--power-sample', '0.05']))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr
    rep = json.loads(out.read_text())
    rows = {r["check"]: r for r in rep["checks"]}
    import numpy as np
    import onnxruntime as ort

    assert rows["numpy"]["detail"] == np.__version__
    assert rows["onnxruntime"]["data"]["providers"] == ort.get_available_providers()
    assert rows["tensorrt"]["status"] == "absent" and "No module named 'tensorrt'" in rows["tensorrt"]["detail"]
    assert rows["tensorrt"]["advice"]
    assert "engine" not in rows  # nothing to build without TensorRT
    assert {f"power:{s}" for s in ("tegrastats", "ina3221", "nvml", "rapl", "estimate")} <= set(rows)
    assert rows["power:estimate"]["status"] == "ok" and rows["power:estimate"]["data"]["kind"] == "estimated"
    assert rows["power:tegrastats"]["status"] == "absent" and "tegrastats" in rows["power:tegrastats"]["detail"]
    assert rows["profile"]["status"] == "ok" and "auto-detected" in rows["profile"]["detail"]
    for r in rep["checks"]:
        assert r["check"] in p.stdout and r["status"] in ("ok", "absent", "fail")
    assert "tensorrt" in p.stdout and "absent" in p.stdout


@pytest.mark.parametrize("version", ["8.5.2", "10.3.0", "11.4.0"])
def test_doctor_builds_and_checks_the_tiny_engine_on_the_double(monkeypatch, version):
    d = install(monkeypatch, version, gpu=("Orin (nvgpu)", (8, 7)), dla_cores=2, sm_count=16)
    rows = {r["check"]: r for r in doctor.check_tensorrt()}
    assert rows["tensorrt"]["data"]["version"] == version
    cuda = rows["cuda"]["data"]
    assert (cuda["gpu"], cuda["compute_capability"], cuda["sm_count"], cuda["dla_cores"]) == \
        ("Orin (nvgpu)", "8.7", 16, 2)
    assert rows["engine"]["status"] == "ok", rows["engine"]
    assert rows["engine"]["data"]["max_abs_diff"] <= doctor.TOL
    assert len(d.builds) == 1 and d.builds[0]["profile"]["x"] == [[1, 8], [1, 8], [4, 8]]
    assert_clean(d)


def test_doctor_reports_a_wrong_engine_as_a_failure(monkeypatch):
    """The comparison can fail: an engine that computes something else is reported, with advice."""
    install(monkeypatch, "10.3.0")
    monkeypatch.setattr(doctor, "_ort_reference", lambda x: x[:, :4] + 1.0)
    row = {r["check"]: r for r in doctor.check_tensorrt()}["engine"]
    assert row["status"] == "fail" and row["advice"]


def test_the_doctor_graph_is_package_data():
    assert doctor.graph_bytes().startswith(b"\x08")  # an ONNX ModelProto
    # package data lives in setup.py (it also maps profiles/ into the wheel); the wheel test checks the wheel
    assert '"tensorrt/data/*.onnx"' in (ROOT / "setup.py").read_text()


def test_doctor_on_a_worker_thread_leaves_no_context_pushed(monkeypatch):
    """`pycuda.autoprimaryctx` pushes the primary context on the importing thread for good; pycuda aborts the
    process when a thread ends with a context on its stack (cuda.hpp context_stack::~context_stack). The doctor,
    run by a library user on a worker thread, retains the primary context and pushes it only while it works."""
    import gc
    import threading

    d = install(monkeypatch, "10.3.0")
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(rows=doctor.check_tensorrt(), stack=list(d.state.ctx_stack())))
    t.start()
    t.join()
    gc.collect()
    assert {r["check"]: r["status"] for r in out["rows"]}["engine"] == "ok"
    assert out["stack"] == [] and not any("abort" in v for v in d.violations), d.violations
