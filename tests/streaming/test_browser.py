"""The browser view in headless Chromium: load the page, screenshot it, check overlay pixels and status text.

Skips when no ``chromium`` is installed (``.ci/setup-chromium.sh`` installs Debian's package).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.cdp import CHROMIUM
from tests.helpers.streaming import FakePredictor, SyntheticLiveReader
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.video.roi import RegionConfig

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/setup-chromium.sh)")


def chromium(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=2500",
        *args,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, timeout=60, check=False)


def test_page_in_headless_chromium(tmp_path):
    width, height = 320, 180
    cfg = StreamConfig(
        source="synthetic://live", model=Path("unused.pt"), serve="127.0.0.1:0", region=RegionConfig((0, 0, width, height))
    )
    pipe = StreamPipeline(
        cfg, FakePredictor(), reader=SyntheticLiveReader(fps=30, width=width, height=height)
    )
    pipe.start()
    try:
        shot = tmp_path / "page.png"
        chromium(pipe.url, tmp_path, "--window-size=900,400", f"--screenshot={shot}")
        dom = chromium(pipe.url, tmp_path, "--dump-dom").stdout.decode()
    finally:
        pipe.stop("test")
        pipe.wait()
    image = cv2.imread(str(shot))
    assert image is not None, "chromium wrote no screenshot"
    # The overlay reached the page: its "malignant" colour is on screen. (The picture's size and aspect
    # ratio at two window sizes: test_live_page.py.)
    red = (np.abs(image.astype(int) - (50, 50, 235)).sum(axis=2) < 90).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(red)
    assert n > 1 and stats[1:, cv2.CC_STAT_AREA].max() > 200, stats
    # The page's status panel, filled in by its script from /status.json.
    assert 'id="signal" class="">live<' in dom
    assert 'id="class">malignant<' in dom and 'id="probability">80%<' in dom
    assert float(dom.split('id="latency-p50">', 1)[1].split("<", 1)[0]) > 0
