"""The browser view's HTTP side: page, JSON status, snapshot and MJPEG stream, loopback binding."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers.streaming import FakePredictor, SyntheticLiveReader
from usvid.errors import InputError
from usvid.inference.overlay import overlay_layout
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.config import ServeAddress
from usvid.streaming.server import BOUNDARY, BrowserView
from usvid.video.roi import RegionConfig

RED_BGR = (50, 50, 235)  # the shared overlay's "malignant" colour


def get(url: str, timeout: float = 5.0) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.headers["Content-Type"], resp.read()


@pytest.fixture
def served():
    # The whole frame as a fixed scan region: shown, box drawn (de-identification: test_overlay_states).
    cfg = StreamConfig(
        source="synthetic://live", model=Path("unused.pt"), serve="127.0.0.1:0", region=RegionConfig((0, 0, 240, 136))
    )
    pipe = StreamPipeline(cfg, FakePredictor(), reader=SyntheticLiveReader(fps=30, width=240, height=136))
    pipe.start()
    deadline = time.perf_counter() + 5
    while pipe.snapshot().frames < 5 and time.perf_counter() < deadline:
        time.sleep(0.02)
    yield pipe
    pipe.stop("test")
    pipe.wait()


def test_binds_loopback_and_serves_the_page(served):
    assert served.url.startswith("http://127.0.0.1:")
    ctype, body = get(served.url)
    assert ctype.startswith("text/html") and b'<img id="video" src="/stream.mjpg"' in body


def test_status_json(served):
    ctype, body = get(served.url + "status.json")
    status = json.loads(body)
    assert ctype == "application/json"
    assert status["signal"] == "live" and status["class"] == "malignant"
    assert status["probability"] == pytest.approx(0.8) and status["latency_ms_last_frame"] > 0
    assert status["box"] == [60.0, 34.0, 120.0, 68.0] and status["frames"] >= 5


def test_snapshot_shows_the_overlay(served):
    ctype, body = get(served.url + "frame.jpg")
    image = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    layout = overlay_layout(240, 136)
    assert ctype == "image/jpeg" and image.shape == (layout.canvas_height, layout.canvas_width, 3)
    # The box edge (x = 60..180 at y = 34 of the frame, below the label bar) is drawn in the class colour.
    edge = layout.frame_part(image)[33:37, 70:170].reshape(-1, 3).astype(int)
    assert (np.abs(edge - RED_BGR).sum(axis=1) < 90).mean() > 0.5


def test_mjpeg_stream_sends_jpeg_parts(served):
    with urllib.request.urlopen(served.url + "stream.mjpg", timeout=5) as resp:
        assert resp.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        data = b""
        while data.count(b"\xff\xd9") < 2:  # two whole JPEGs: the stream keeps going
            data += resp.read1(65536)
    assert data.startswith(f"--{BOUNDARY}\r\nContent-Type: image/jpeg".encode())


def test_unknown_path_is_404(served):
    with pytest.raises(urllib.error.HTTPError, match="404"):
        get(served.url + "nope")


def test_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=rf"--serve 127\.0\.0\.1:{port}: cannot listen there"):
            BrowserView(ServeAddress("127.0.0.1", port)).open()
