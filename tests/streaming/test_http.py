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
from pathlib import Path

from tests.helpers.streaming import (
    HEIGHT,
    WIDTH,
    CollectSink,
    FakePredictor,
    free_port,
    live_config,
    lose_and_resume,
    synthetic_frames,
)
from tests.helpers.videos import write_video
from usvid.inference.overlay import overlay_layout
from usvid.streaming import StreamPipeline


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


def test_http_feed_served_lost_and_back(tmp_path):
    # An H.264 MPEG-TS clip with a keyframe every 10 frames, so a reconnection decodes at once.
    write_video(tmp_path / "clip.ts", synthetic_frames(90), fps=30, container="mpegts", gop=10)
    port = free_port(socket.SOCK_STREAM)
    view = CollectSink("view", idle=True)
    view.queue_size = 1024
    pipe = StreamPipeline(live_config(f"http://127.0.0.1:{port}/clip.ts"), FakePredictor(), sinks=[view])
    servers = [LoopbackServer(tmp_path, port)]
    try:
        pipe.start()
        # When the clip ends or the server goes, a live source is never "finished": it is lost.
        lose_and_resume(pipe, view, lambda: servers[-1].stop(),
                        lambda: servers.append(LoopbackServer(tmp_path, port)), first=10, loss_timeout=8)
    finally:
        servers[-1].stop()
        pipe.stop("test")
        summary = pipe.wait()
    assert summary.stats.signal_lost_events >= 1 and summary.stats.reconnects >= 1
    shown = [f for f in view.frames if f.result is not None]
    layout = overlay_layout(WIDTH, HEIGHT)
    pictures = [layout.frame_part(f.image) for f in shown]
    assert shown and all(f.image.shape[:2] == (layout.canvas_height, layout.canvas_width) for f in shown)
    # Real decoded pictures, not blank frames: the static UI strip (grey 90) and the speckle are there.
    assert all(abs(float(p[2, WIDTH // 2].mean()) - 90) < 12 for p in pictures[:5])
    assert max(float(p.max()) for p in pictures) > 150
