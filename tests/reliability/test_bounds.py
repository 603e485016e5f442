"""Every number a user gives that sizes memory, threads, time or a model has a bound, said with its reason and
checked before any work (issue 29, part B); a torch-free install names the extra a command needs, in one line."""
from __future__ import annotations

import pytest

from edgebranchy.errors import EdgeBranchyError
from edgebranchy.util.limits import LIMITS, limit

from eb_testutil import NO_TORCH, run_cli_with
from rel_util import cli, one_error_line

BIG = str(10 ** 12)


@pytest.mark.parametrize("argv, option", [
    (["predict", "ART", "--threads", "100000"], "--threads"),
    (["bench", "ART", "--threads", "100000"], "--threads"),
    (["bench", "ART", "--trials", BIG], "--trials"),
    (["bench", "ART", "--samples", BIG], "--samples"),
    (["bench", "ART", "--batch-size", f"1,{BIG}"], "--batch-size"),
    (["bench", "ART", "--warmup", BIG], "--warmup"),
    (["bench", "ART", "--idle", "1e12"], "--idle"),
    (["bench", "ART", "--min-window", "1e12"], "--min-window"),
    (["models", "--input-size", "30000"], "--input-size"),
    (["models", "--depth", "60002"], "--depth"),
    (["models", "--num-classes", BIG], "--num-classes"),
    (["train", "--batch-size", BIG], "--batch-size"),
    (["train", "--samples", BIG], "--samples"),
    (["train", "--epochs", BIG], "--epochs"),
    (["train", "--image-size", "30000"], "--image-size"),
    (["calibrate", "ART", "--batch-size", BIG], "--batch-size"),
    (["predict", "ART", "--batch-size", BIG], "--batch-size"),
    (["doctor", "--power-sample", "1e12"], "--power-sample"),
    (["doctor", "ART", "--repeats", BIG], "--repeats"),
    (["export", "X.pt", "--out", "A", "--check-samples", BIG], "--check-samples"),
    (["quickstart", "--trials", BIG], "--trials"),
    (["remote", "ART", "h", "--jobs", "100000"], "--jobs"),
    (["remote", "ART", "h", "--step-timeout", "1e12"], "--step-timeout"),
])
def test_cli_bounds_with_their_reason(argv, option):
    rc, out, err = cli(*argv)
    line = one_error_line(err)
    assert rc == 2 and out == "" and option in line and "at most" in line and "(" in line.split("at most")[1], line


def test_library_bounds_before_any_work():
    from edgebranchy.bench.config import BenchConfig, check_config
    from edgebranchy.runtime.backends.declared import ONNXRUNTIME
    from edgebranchy.runtime.backends.options import resolve_options

    for bad in ({"trials": 10 ** 12}, {"samples": 10 ** 12}, {"batch_size": [1, 10 ** 12]}, {"idle_s": 1e12},
                {"warmup_max": 10 ** 12}):
        with pytest.raises(EdgeBranchyError, match="at most"):
            check_config(BenchConfig(artifact="a", out="r.json", **bad))
    with pytest.raises(EdgeBranchyError, match="at most 1024"):
        resolve_options(ONNXRUNTIME, {"intra_op_threads": 100000}, "onnxruntime")
    assert resolve_options(ONNXRUNTIME, {"intra_op_threads": 4}, "onnxruntime")["intra_op_threads"] == 4


def test_model_sizes_are_refused_before_any_layer():
    pytest.importorskip("torch")
    from edgebranchy.models.registry import build_model
    from edgebranchy.train.config import TrainConfig, validate_train_config

    for args in ({"input_size": 30000}, {"depth": 60002}, {"num_classes": 10 ** 12}):
        name = "b-resnet" if "depth" in args else "b-lenet"
        with pytest.raises(EdgeBranchyError, match="at most"):
            build_model(name, args)
    for bad in ({"batch_size": 10 ** 12}, {"limit": 10 ** 12}, {"epochs": 10 ** 12}):
        with pytest.raises(EdgeBranchyError, match="at most"):
            validate_train_config(TrainConfig(model="b-lenet", dataset="synthetic", **bad))


def test_every_bound_has_a_reason():
    for name, (high, why) in LIMITS.items():
        assert high > 0 and why and limit(name) == high


@pytest.mark.parametrize("argv, extra", [
    (["train", "--model", "b-lenet", "--dataset", "synthetic", "--max-steps", "1", "--out", "{tmp}/m.pt"], "train"),
    (["models"], "train"),
    (["export", "{ckpt}", "--out", "{tmp}/art"], "export"),
    (["quickstart", "--out", "{tmp}/q"], "export"),
    (["calibrate", "{ckpt}", "--out", "{tmp}/new.pt"], "train"),
    (["predict", "{art}", "--backend", "torch", "--dataset", "synthetic", "--samples", "4"], "train"),
    (["bench", "{art}", "--backend", "torch", "--dataset", "synthetic", "--samples", "4", "--trials", "1",
      "--out", "{tmp}/r.json", "--profile", "x86-cpu", "--quiet"], "train"),
])
def test_torch_free_install_names_the_extra(argv, extra, tiny_calibrated, tiny_artifact, tmp_path):
    args = [a.format(tmp=tmp_path, ckpt=tiny_calibrated, art=tiny_artifact) for a in argv]
    r = run_cli_with(NO_TORCH, *args)
    line = one_error_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert f"pip install 'edgebranchy[{extra}]'" in line and "Traceback" not in r.stderr, line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_export_and_artifact_calibration_use_the_same_bounds(tiny_calibrated, tiny_artifact, tmp_path):
    """Every whole-number setting goes through util/limits.check_whole: the same words for the type, the floor and
    the bound, named as the setting, before any work (nothing written)."""
    from edgebranchy.calibration.artifact_source import ArtifactSource
    from edgebranchy.export.onnx import export_checkpoint

    for bad, phrase in ((10 ** 12, "at most 10000000"), (-1, "whole number >= 0"), (2.5, "whole number")):
        with pytest.raises(EdgeBranchyError, match=f"`check_samples` must be.*{phrase}"):
            export_checkpoint(tiny_calibrated, tmp_path / "art", check_samples=bad)
        assert not (tmp_path / "art").exists()
    for bad, phrase in ((10 ** 12, "at most 65536"), (0, "whole number >= 1"), (True, "whole number")):
        with pytest.raises(EdgeBranchyError, match=f"`batch_size` must be.*{phrase}"):
            ArtifactSource(tiny_artifact, batch_size=bad)
