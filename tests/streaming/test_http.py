"""An HTTP source on loopback: an MPEG-TS clip served by ``http.server``, taken down and served again.

Like an encoder or a recorder that offers its feed over HTTP: frames arrive, the server goes away
("signal lost", reconnect with backoff, no crash), the server comes back and the stream resumes.
Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from usvid.streaming import StreamConfig, StreamPipeline

from .conftest import CollectSink, FakePredictor
from .test_network import wait_for

WIDTH, HEIGHT = 174, 98


def write_ts(path: Path, frames: int = 90, fps: int = 30) -> Path:
    """An H.264 MPEG-TS clip: a bright block moving over a dark background, a keyframe every 10 frames."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": "10"}
        rng = np.random.default_rng(0)
        for i in range(frames):
            img = rng.integers(0, 40, (HEIGHT, WIDTH, 3), np.uint8)
            img[30:60, 10 + 2 * i % 120 : 40 + 2 * i % 120] = 220
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class LoopbackServer:
    """Serves ``root`` on 127.0.0.1:``port`` from a thread until :meth:`stop`."""

    def __init__(self, root: Path, port: int) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_http_feed_served_lost_and_back(tmp_path):
    write_ts(tmp_path / "clip.ts")
    port = free_tcp_port()
    view = CollectSink("view", idle=True)
    view.queue_size = 1024
    cfg = StreamConfig(
        source=f"http://127.0.0.1:{port}/clip.ts",
        model=Path("unused.pt"),
        detect_roi=False,
        read_timeout_s=0.5,
        reconnect_initial_s=0.1,
        reconnect_max_s=0.4,
        open_timeout_s=8.0,
    )
    pipe = StreamPipeline(cfg, FakePredictor(), sinks=[view])
    server = LoopbackServer(tmp_path, port)
    try:
        pipe.start()
        assert wait_for(lambda: pipe.snapshot().frames >= 10, 10), "no frames over HTTP"
        server.stop()
        # The clip ends (or the server is gone): a live source is never "finished", it is lost.
        assert wait_for(lambda: pipe.live_status().state.value == "signal lost", 8)
        assert wait_for(lambda: any(f.result is None for f in view.frames), 3), "no 'signal lost' screen"
        frames_at_loss = pipe.snapshot().frames
        server = LoopbackServer(tmp_path, port)
        assert wait_for(
            lambda: pipe.live_status().state.value == "live" and pipe.snapshot().frames >= frames_at_loss + 10, 15
        ), "did not resume when the server came back"
    finally:
        server.stop()
        pipe.stop("test")
        summary = pipe.wait()
    assert summary.stats.signal_lost_events >= 1 and summary.stats.reconnects >= 1
    shown = [f for f in view.frames if f.result is not None]
    assert shown and all(f.image.shape[:2] == (HEIGHT, WIDTH) for f in shown)
    # Real decoded pictures, not blank frames: the moving block is there.
    assert max(float(f.image.max()) for f in shown) > 150
