"""Fixtures of the tensorrt backend tests: the strict double for every claimed TensorRT version, and a copy of
the tiny artifact with engines built by it (each test module sets its build settings in `trt_settings`)."""
from __future__ import annotations

import shutil

import pytest


@pytest.fixture(params=("8.5.2", "8.6.1", "10.3.0", "11.4.0"))
def double(request, monkeypatch):
    """The double claiming one TensorRT version on an Orin GPU; no strictness violation may be left at the end."""
    from trt_double import VERSIONS, assert_clean, install

    assert request.param in VERSIONS
    d = install(monkeypatch, request.param)
    yield d
    assert_clean(d)


@pytest.fixture
def art(tiny_artifact, tmp_path, double, trt_settings):
    """A private copy of the tiny artifact with its engines built (on the installed double) from `trt_settings`."""
    from edgebranchy.artifact.manifest import Artifact
    from edgebranchy.tensorrt.build import build_engines

    dst = tmp_path / "art"
    shutil.copytree(tiny_artifact, dst)
    build_engines(dst, trt_settings, log=lambda s: None)
    return Artifact.load(dst)
