"""`export --precision int8`: Q/DQ graphs made by ONNX Runtime's quantizer beside the FP32 ones, the exit head's
softmax and entropy left in FP32, run by the ONNX Runtime backend, recalibrated on their own entropies."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgebranchy.artifact.manifest import Artifact
from edgebranchy.errors import EdgeBranchyError
from edgebranchy.exits.entropy import entropy
from edgebranchy.export.quantize import head_nodes, samples_sha256


def _sess(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_the_manifest_records_both_graph_sets_and_how_the_int8_ones_were_made(tiny_int8_artifact, tiny_calibrated):
    from edgebranchy.export.onnx import _validation_samples
    from edgebranchy.models.checkpoint import load_checkpoint

    art = Artifact.load(tiny_int8_artifact, verify=True)   # every int8 file is hashed and verified
    m = art.manifest
    assert m["precisions"] == ["fp32", "int8"]
    for entry in m["segments"] + [m["baseline"]]:
        assert {entry["file"], entry["int8_file"], entry["int8_tensorrt_file"]} <= set(m["files"])
        assert entry["int8_file"].endswith(".int8.onnx") and entry["int8_tensorrt_file"].endswith(".int8.tensorrt.onnx")
        for check in (entry["int8_check"], entry["int8_tensorrt_check"]):
            assert check["samples"] == 64 and check["top1_agreement"] >= 0.9
    q = m["quantization"]
    assert q["method"] == "onnxruntime.quantization.quantize_static" and q["format"] == "QDQ"
    assert q["samples"] == 64 and q["samples_split"] == "validation"
    # the hash is of the first 64 validation samples, as the checkpoint's recorded split gives them
    cfg = load_checkpoint(tiny_calibrated).config
    assert q["samples_sha256"] == samples_sha256(_validation_samples(cfg, 64, None, "t")[:64])
    assert art.segment_file(0, "int8").name == "seg0.int8.onnx"


@pytest.mark.parametrize("tensorrt", [False, True], ids=["onnxruntime", "tensorrt"])
def test_the_int8_graphs_hold_per_channel_qdq_and_no_quantized_head(tiny_int8_artifact, tensorrt):
    art = Artifact.load(tiny_int8_artifact)
    for k in range(art.num_exits):
        model = onnx.load(str(art.segment_file(k, "int8", tensorrt=tensorrt)))
        ops = [n.op_type for n in model.graph.node]
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
        inits = {i.name: i for i in model.graph.initializer}
        weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                     and "weight" in n.input[0]]
        assert weight_dq and all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1
                                 for n in weight_dq), "weights must have one scale per output channel"
        zero_points = [onnx.numpy_helper.to_array(inits[n.input[2]]) for n in model.graph.node
                       if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]
        assert zero_points
        dq_types = {inits[n.input[0]].data_type for n in model.graph.node
                    if n.op_type == "DequantizeLinear" and n.input[0] in inits}
        if tensorrt:  # what TensorRT's Q/DQ layers take: int8, zero points 0, no int32 (bias) input
            assert all(z.dtype == np.int8 and not z.any() for z in zero_points)
            assert dq_types == {onnx.TensorProto.INT8}
        else:  # ONNX Runtime's x86 fast path: uint8 activations with zero points, int32 biases
            assert all(z.dtype == np.uint8 for z in zero_points) and onnx.TensorProto.INT32 in dq_types
        head = set(head_nodes(model))
        assert head and not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node
                                if n.name in head)
        # logits leave the classifier unquantized: no DequantizeLinear produces them
        assert not any(n.op_type == "DequantizeLinear" and "logits" in n.output for n in model.graph.node)


def test_the_int8_entropy_is_the_fp32_entropy_of_its_own_logits(tiny_int8_artifact, synthetic_test):
    """The entropy contract holds on the INT8 graphs, for extreme logits too (inputs scaled by 1e4)."""
    art = Artifact.load(tiny_int8_artifact)
    _, x, _ = synthetic_test
    temps = art.temperatures or [1.0] * art.num_exits
    for xs, tensorrt in ((x[:200], False), (x[:50] * 1e4, False), (x[:50] * 1e4, True)):
        feats = xs
        for k in range(art.num_exits):
            names = art.segment_outputs(k)
            out = dict(zip(names, _sess(art.segment_file(k, "int8", tensorrt)).run(names, {"x": feats})))
            want = entropy(out["logits"], normalize=art.entropy_normalized, temperature=temps[art.model_exits[k]])
            assert np.isfinite(out["entropy"]).all()
            np.testing.assert_allclose(out["entropy"], want, atol=1e-5)
            feats = out.get("features")


def test_the_onnxruntime_backend_runs_the_int8_graphs(tiny_int8_artifact, synthetic_test):
    from edgebranchy.runtime.runner import EarlyExitRunner

    _, x, y = synthetic_test
    with EarlyExitRunner(tiny_int8_artifact, options={"precision": "int8"}) as r8, \
            EarlyExitRunner(tiny_int8_artifact) as r32:
        assert r8.backend.describe()["precision"] == "int8"
        p8, p32 = r8.predict(x), r32.predict(x)
        p8_one = r8.predict(x[:1])
    assert "not recalibrated" in r8.thresholds_source
    assert (p8.labels == p32.labels).mean() >= 0.9
    assert not np.array_equal(p8.entropy, p32.entropy)     # the int8 graphs ran, not the fp32 ones
    assert p8_one.labels[0] == p8.labels[0] and r8.batch1_form == "segments"
    assert abs((p8.labels == y).mean() - (p32.labels == y).mean()) <= 0.05


def test_the_torch_backend_refuses_int8(tiny_int8_artifact):
    from edgebranchy.runtime.runner import EarlyExitRunner

    with pytest.raises(EdgeBranchyError, match="int8 runs the artifact's Q/DQ graphs"):
        EarlyExitRunner(tiny_int8_artifact, backend="torch", options={"precision": "int8"})


def test_an_artifact_without_int8_graphs_says_how_to_get_them(tiny_artifact):
    with pytest.raises(EdgeBranchyError, match="no INT8 graph for the segment 0; re-export with `precision` int8"):
        Artifact.load(tiny_artifact).segment_file(0, "int8")


def test_int8_recalibration_is_kept_beside_the_fp32_calibration(tiny_int8_artifact, tmp_path):
    """calibrate --precision int8 searches on the INT8 graphs' own entropies; `exits` keep the FP32 thresholds;
    int8 runs take the int8 record, fp32 runs the FP32 thresholds; the recorded exit fractions are exact."""
    from edgebranchy.calibration import calibrate_artifact
    from edgebranchy.data.splits import load_recorded
    from edgebranchy.runtime.runner import EarlyExitRunner

    art = tmp_path / "a"
    shutil.copytree(tiny_int8_artifact, art)
    before = json.loads((art / "manifest.json").read_text())
    rec = calibrate_artifact(art, options={"precision": "int8"}, budget=0.5, batch_size=64, log=lambda s: None)
    m = json.loads((art / "manifest.json").read_text())
    assert m["exits"] == before["exits"] and m["calibration"] == before["calibration"]
    assert m["device_calibration"]["records"]["onnxruntime/int8"]["thresholds"] == rec["thresholds"]
    assert m["device_calibration"]["applied"] is None and rec["precision"] == "int8"
    data = load_recorded(m["source"]["dataset"])
    with EarlyExitRunner(art, options={"precision": "int8"}) as r8, EarlyExitRunner(art) as r32:
        assert r8.thresholds == rec["thresholds"] and "recalibrated on the int8 graphs" in r8.thresholds_source
        assert r32.thresholds == [e["threshold"] for e in before["exits"][:-1]]
        xv = r8.artifact.preprocess(data.val.x)
        exits = r8.predict(xv).exits
    got = (np.bincount(exits, minlength=2) / len(exits)).tolist()
    assert got == pytest.approx(rec["validation"]["exit_fractions"], abs=1e-12)
    assert rec["validation"]["relative_cost"] <= 0.5 + 1e-9


def test_bench_and_predict_put_fp32_and_int8_side_by_side(tiny_int8_artifact, tmp_path):
    """`bench --precision fp32,int8`: one run per precision, each against its own baseline, each with its own
    thresholds; `predict --precision fp32,int8` prints both; a plan never gives int8 the fp32 single graph."""
    from edgebranchy.artifact.results import load_runs_doc
    from edgebranchy.bench.plan import plan_runs

    from eb_testutil import run_cli

    specs, skipped = plan_runs(1, "onnxruntime", ["segments", "single-graph"], precisions=["fp32", "int8"])
    assert [(s.precision, s.form) for s in specs] == [("fp32", "segments"), ("fp32", "single-graph"),
                                                      ("int8", "segments")]
    assert "onnxruntime/int8 · single-graph skipped: the single graph is made of the fp32 segments" in skipped[0]
    art = tmp_path / "a"
    shutil.copytree(tiny_int8_artifact, art)
    r = run_cli("calibrate", art, "--in-place", "--precision", "int8", "--budget", "0.5", "--batch-size", "64")
    assert r.returncode == 0 and "recorded for int8 runs" in r.stdout, r.stderr
    int8_ts = json.loads((art / "manifest.json").read_text())["device_calibration"]["records"]["onnxruntime/int8"]
    out = tmp_path / "b.json"
    r = run_cli("bench", art, "--profile", "x86-cpu", "--power", "estimate", "--dataset", "synthetic", "--samples",
                "12", "--trials", "2", "--warmup", "1", "--warmup-max", "0", "--min-window", "0", "--idle", "0",
                "--precision", "fp32,int8", "--form", "segments", "--out", out)
    assert r.returncode == 0, r.stderr
    runs = load_runs_doc(out)
    assert [x["environment"]["precision"] for x in runs] == ["fp32", "int8"]
    assert runs[1]["environment"]["thresholds"] == int8_ts["thresholds"]
    assert runs[0]["environment"]["thresholds"] == Artifact.load(art).thresholds
    assert "onnxruntime/int8" in runs[1]["label"] and "onnxruntime/fp32" in runs[0]["label"]
    rep = run_cli("report", out, "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr
    md = (tmp_path / "rep" / "report.md").read_text()   # R2 (int8) against its own baseline and against R1 (fp32)
    assert "onnxruntime/int8" in md and "onnxruntime/fp32" in md and "vs R1" in md
    p = run_cli("predict", art, "--dataset", "synthetic", "--samples", "50", "--precision", "fp32,int8")
    assert p.returncode == 0, p.stderr
    assert "backend onnxruntime/int8" in p.stdout and "recalibrated on the int8 graphs" in p.stdout
    side = p.stdout.split("side by side")[1].splitlines()
    assert [line.split(":")[0].strip() for line in side[1:3]] == ["fp32", "int8"]


def test_precision_auto_keeps_fp32_unless_int8_measured_faster(tiny_int8_artifact, tmp_path, synthetic_test):
    from edgebranchy.artifact.precision_record import auto_precision
    from edgebranchy.runtime.precision_choice import choose_precision
    from edgebranchy.runtime.runner import EarlyExitRunner

    art = tmp_path / "a"
    shutil.copytree(tiny_int8_artifact, art)
    with EarlyExitRunner(art, options={"precision": "auto"}) as r:
        assert r.backend.precision == "fp32" and "no measurement" in r.precision_reason
    rec = choose_precision(art, synthetic_test[1][:30], rounds=3)
    assert rec["choice"] == ("int8" if rec["int8_us"] < rec["fp32_us"] else "fp32")
    loaded = Artifact.load(art, verify=True)   # recorded in the manifest, the files untouched
    assert loaded.manifest["quantization"]["measured"]["onnxruntime"] == rec
    for choice, want in (("int8", "int8"), ("fp32", "fp32")):   # the record decides, either way
        m = json.loads((art / "manifest.json").read_text())
        m["quantization"]["measured"]["onnxruntime"]["choice"] = choice
        (art / "manifest.json").write_text(json.dumps(m))
        with EarlyExitRunner(art, options={"precision": "auto"}) as r:
            assert r.backend.precision == want and f"records {want} faster" in r.precision_reason
    assert auto_precision(Artifact.load(art), "tensorrt")[0] == "fp32"
    with EarlyExitRunner(tiny_int8_artifact, options={"precision": "fp32"}) as r:
        assert r.precision_reason is None


def test_int8_recalibration_runs_without_torch(tiny_int8_artifact, tmp_path):
    import subprocess
    import sys
    import textwrap

    from eb_testutil import NO_TORCH, ROOT

    art = tmp_path / "a"
    shutil.copytree(tiny_int8_artifact, art)
    code = NO_TORCH + textwrap.dedent(f"""
        from edgebranchy.cli import main
        rc = main(["calibrate", {str(art)!r}, "--in-place", "--precision", "int8", "--max-accuracy-drop", "2"])
        assert rc == 0, rc
        assert "torch" not in sys.modules
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "device calibration on onnxruntime/int8" in r.stdout
    rec = json.loads((art / "manifest.json").read_text())["device_calibration"]["records"]["onnxruntime/int8"]
    assert rec["backend_options"]["precision"] == "int8" and rec["target"] == 2.0


def test_int8_runs_take_their_backends_record_then_onnxruntimes(tiny_int8_artifact, tmp_path):
    from edgebranchy.artifact.precision_record import thresholds_for

    art = tmp_path / "a"
    shutil.copytree(tiny_int8_artifact, art)
    m = json.loads((art / "manifest.json").read_text())
    fp32 = [e["threshold"] for e in m["exits"][:-1]]
    m["device_calibration"] = {"original_thresholds": fp32, "applied": None,
                               "records": {"onnxruntime/int8": {"thresholds": [0.25]},
                                           "tensorrt/int8": {"thresholds": [0.5]}}}
    (art / "manifest.json").write_text(json.dumps(m))
    a = Artifact.load(art)
    assert thresholds_for(a, "int8", "tensorrt") == ([0.5], "recalibrated on the int8 graphs (tensorrt/int8)")
    assert thresholds_for(a, "int8", "torch")[0] == [0.25]
    assert thresholds_for(a, "fp32", "tensorrt")[0] == fp32 == thresholds_for(a, "fp16", "onnxruntime")[0]
    m["device_calibration"]["records"]["onnxruntime/int8"]["thresholds"] = [-1.0]
    (art / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(EdgeBranchyError, match="device_calibration onnxruntime/int8 thresholds"):
        thresholds_for(Artifact.load(art), "int8", "onnxruntime")
