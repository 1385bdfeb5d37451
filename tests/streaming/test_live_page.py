"""The live page of ``usvid stream --serve`` in headless Chromium, driven over the DevTools protocol.

A real ``usvid stream`` process (tiny checkpoint) on a loopback UDP feed of synthetic frames: screenshots at
two window sizes (the picture scaled to fit, aspect ratio kept, nothing outside the viewport), then the
feed stops, the figures freeze, and the page's text must equal ``/status.json`` and the ``--stats`` file
written when the process is stopped. Also: a source name holding markup shows as text, without its
credentials.

Skips when no ``chromium`` is installed (``.ci/setup-chromium.sh`` installs Debian's package).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.cdp import CHROMIUM, Chromium
from tests.helpers.streaming import UDP_SENDER, FakePredictor, SyntheticLiveReader, free_port, wait_for
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.server import NOTICE
from usvid.video.roi import RegionConfig

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/setup-chromium.sh)")

FRAME_W, FRAME_H = 640, 360
ROI = (40, 30, 560, 300)
SIZES = ((1280, 800), (480, 800))
LETTERBOX = (43, 43, 43)  # #stage's background (#2b2b2b)
TEXT_IDS = (
    "signal", "class", "probability", "latency-p50", "latency-p95", "latency-window", "fps", "frames",
    "dropped", "scan-region", "source", "model", "notice",
)
PAGE_STATE = (
    "JSON.stringify({"
    " text: Object.fromEntries(%s.map((id) => [id, document.getElementById(id).textContent])),"
    " rects: Object.fromEntries(%s.map((id) => [id, document.getElementById(id).getBoundingClientRect()])),"
    " video: document.getElementById('video').getBoundingClientRect(),"
    " stage: document.getElementById('stage').getBoundingClientRect(),"
    " natural: [document.getElementById('video').naturalWidth,"
    "           document.getElementById('video').naturalHeight],"
    " viewport: [innerWidth, innerHeight],"
    " scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight]})"
) % (json.dumps(TEXT_IDS), json.dumps(TEXT_IDS))


def page_state(browser: Chromium) -> dict:
    return json.loads(browser.evaluate(PAGE_STATE))


def get_status(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url + "status.json", timeout=2) as resp:
            return json.loads(resp.read())
    except (OSError, urllib.error.URLError):
        return None


def frozen_status(url: str, timeout_s: float = 15.0) -> dict:
    """``/status.json`` once the signal is lost and the frames already captured are all through."""
    deadline = time.perf_counter() + timeout_s
    last = None
    while time.perf_counter() < deadline:
        status = get_status(url)
        if status is not None and status["signal"] == "signal lost" and status == last:
            return status
        last = status
        time.sleep(0.5)
    pytest.fail(f"the figures never froze after the feed stopped: {last}")


def picture_box(shot: np.ndarray, stage: dict) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in the screenshot of what differs from the letterbox inside the stage."""
    x0, y0 = round(stage["x"]), round(stage["y"])
    area = shot[y0 : y0 + round(stage["height"]), x0 : x0 + round(stage["width"])].astype(int)
    ys, xs = np.nonzero(np.abs(area - LETTERBOX[::-1]).max(axis=2) > 8)
    assert len(xs), "no picture on the page"
    return x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def check_layout(state: dict, shot: np.ndarray) -> None:
    vw, vh = state["viewport"]
    assert state["scroll"][0] <= vw and state["scroll"][1] <= vh, state["scroll"]  # nothing to scroll to
    video = state["video"]
    assert video["x"] >= 0 and video["y"] >= 0 and video["right"] <= vw and video["bottom"] <= vh, video
    for name, rect in state["rects"].items():  # every status item shown, inside the viewport
        assert rect["width"] > 0 and rect["right"] <= vw + 0.5 and rect["bottom"] <= vh, (name, rect)
    # The picture as drawn: the whole frame, scaled to the space left, aspect ratio kept.
    nat_w, nat_h = state["natural"]
    stage = state["stage"]
    scale = min(stage["width"] / nat_w, stage["height"] / nat_h)
    x, y, w, h = picture_box(shot, stage)
    assert abs(w - nat_w * scale) <= 3 and abs(h - nat_h * scale) <= 3, (w, h, nat_w * scale, nat_h * scale)
    assert x >= 0 and y >= 0 and x + w <= vw and y + h <= vh


def start_stream(tiny_checkpoint: Path, udp_port: int, http_port: int, stats: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "usvid", "stream", f"udp://127.0.0.1:{udp_port}",
        "--model", str(tiny_checkpoint),
        "--serve", f"127.0.0.1:{http_port}", "--stats", str(stats), "--roi", ",".join(map(str, ROI)),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_live_page_of_usvid_stream_serve(tiny_checkpoint, tmp_path):
    udp_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    url, stats_path = f"http://127.0.0.1:{http_port}/", tmp_path / "STATS.json"
    sender = subprocess.Popen(
        [sys.executable, str(UDP_SENDER), str(udp_port), "--seconds", "60", "--fps", "15",
         "--size", f"{FRAME_W}x{FRAME_H}"]
    )
    proc = start_stream(tiny_checkpoint, udp_port, http_port, stats_path)
    try:
        assert wait_for(lambda: proc.poll() is None and (get_status(url) or {}).get("frames", 0) >= 5, 60), (
            "no frames served" if proc.poll() is None else proc.communicate()[1].decode()
        )
        with Chromium(tmp_path / "profile") as browser:
            for i, (width, height) in enumerate(SIZES):
                browser.viewport(width, height)
                if i == 0:
                    browser.send("Page.navigate", {"url": url})
                browser.wait_for(
                    "document.getElementById('video').naturalWidth > 0"
                    " && document.getElementById('frames').textContent !== '0'"
                )
                time.sleep(0.5)  # a few more MJPEG frames at the new size
                shot = cv2.imread(str(browser.screenshot(tmp_path / f"page-{width}x{height}.png")))
                assert shot.shape[:2] == (height, width)
                state = page_state(browser)
                assert state["viewport"] == [width, height]
                check_layout(state, shot)
            # The feed stops: once the figures freeze, the page, /status.json and --stats must agree.
            sender.kill()
            sender.wait()
            status = frozen_status(url)
            browser.wait_for(
                f"document.getElementById('frames').textContent === '{status['frames']}'"
                " && document.getElementById('signal').textContent.startsWith('signal lost')"
            )
            text = page_state(browser)["text"]
            assert get_status(url)["frames"] == status["frames"]  # still frozen
    finally:
        sender.kill()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    written = json.loads(stats_path.read_text())

    assert text["notice"] == NOTICE == "Research use only, not for diagnosis"
    assert text["signal"] == "signal lost, reconnecting"
    assert text["class"] == status["class"] and status["class"] in ("benign", "malignant")
    assert text["probability"] == status["probability_text"] == f"{status['probability']:.0%}"
    for page_id, key, file_key in (
        ("latency-p50", "latency_ms_p50_recent", "recent_latency_p50_ms"),
        ("latency-p95", "latency_ms_p95_recent", "recent_latency_p95_ms"),
    ):
        assert float(text[page_id]) == status[key] == written[file_key] > 0, page_id
    assert int(text["latency-window"]) == status["latency_window_frames"] == written["recent_frames"] > 0
    assert int(text["frames"]) == status["frames"] == written["frames"]
    assert int(text["dropped"]) == status["dropped"] == written["dropped"]
    assert text["scan-region"] == "fixed (40, 30, 560, 300)"
    assert text["source"] == f"udp://127.0.0.1:{udp_port}" and text["model"] == tiny_checkpoint.name


def test_source_with_markup_and_credentials_shows_as_plain_text(tmp_path):
    source = "rtsp://admin:hunter2@cam/live<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    shown = "rtsp://cam/live<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    cfg = StreamConfig(source=source, model=Path("unused.pt"), serve="127.0.0.1:0", region=RegionConfig(detect=False))
    with Chromium(tmp_path / "profile") as browser:  # started first: no stream threads while it forks
        pipe = StreamPipeline(cfg, FakePredictor(), reader=SyntheticLiveReader(fps=30, width=320, height=180))
        pipe.start()
        try:
            browser.viewport(800, 600)
            browser.send("Page.navigate", {"url": pipe.url})
            browser.wait_for("document.getElementById('source').textContent !== '-'")
            page = json.loads(browser.evaluate(
                "JSON.stringify({source: document.getElementById('source').textContent,"
                " title: document.getElementById('source').title, pwned: window.pwned ?? null,"
                " scripts: document.scripts.length, images: document.images.length,"
                " html: document.documentElement.outerHTML})"
            ))
        finally:
            pipe.stop("test")
            pipe.wait()
    assert page["source"] == page["title"] == shown
    assert page["pwned"] is None and page["scripts"] == 1 and page["images"] == 1
    assert "hunter2" not in page["html"] and "&lt;script&gt;" in page["html"]
