"""Open report.html from disk in headless Chromium: every plot must load and paint."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import BuiltReport

from edgebranchy.report.figures import BASELINE_COLOR, BRANCHY_COLOR, RUN_COLORS

CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/install-chromium.sh)"),
]


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_every_plot_loads(two_run_report: BuiltReport, tmp_path: Path) -> None:
    url = two_run_report.files.html.resolve().as_uri()
    proc = _chromium(tmp_path / "profile", "--dump-dom", url)
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body[^>]*>", proc.stdout)
    assert body, proc.stdout[:500]
    # set by the page's inline script once loaded: decoded images / all images
    assert 'data-images-loaded="4/4"' in body.group(0), body.group(0)


def _count_colour(rgb: np.ndarray, hex_colour: str, tol: int = 12) -> int:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - target).max(axis=-1) <= tol).sum())


def test_screenshot_shows_the_plots(two_run_report: BuiltReport, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "shot.png"
    url = two_run_report.files.html.resolve().as_uri()
    # tall enough for the whole page: the plots sit below the verdict and the tables
    proc = _chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,5000",
                     f"--screenshot={shot}", url)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    rgb = np.asarray(Image.open(shot).convert("RGB"))
    assert rgb.shape[:2] == (5000, 1280)
    non_white = (rgb < 245).any(axis=-1).mean()
    assert non_white > 0.05, f"page looks blank ({non_white:.1%} non-white)"
    # these colours appear only inside the embedded PNGs: baseline blue and branchy orange in the
    # latency and energy plots, and (a two-run report) the runs' own colours in the exit histogram;
    # each is tens of thousands of pixels when the plots paint
    for colour in (BASELINE_COLOR, BRANCHY_COLOR, *RUN_COLORS[:2]):
        assert _count_colour(rgb, colour) > 5000, colour
