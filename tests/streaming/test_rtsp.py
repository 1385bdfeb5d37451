"""An RTSP feed on loopback (GStreamer's RTSP server, ``rtsp_server.py``): frames arrive over RTSP/TCP, the server
is killed ("signal lost"), started again, and the stream resumes.

Needs Debian's GStreamer RTSP server bindings for the system Python (``.ci/setup-rtsp.sh``); skips without them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.helpers.streaming import (
    RTSP_SERVER,
    CollectSink,
    FakePredictor,
    free_port,
    live_config,
    lose_and_resume,
)
from usvid.inference.overlay import overlay_layout
from usvid.streaming import StreamPipeline

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin")
PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
         "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('rtph264pay')")


def _gstreamer_rtsp_available() -> bool:
    if SYSTEM_PYTHON is None:
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, timeout=30).returncode == 0


pytestmark = pytest.mark.skipif(not _gstreamer_rtsp_available(),
                                reason="needs GStreamer's RTSP server for /usr/bin/python3 (.ci/setup-rtsp.sh)")


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), str(port)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        pytest.fail(f"RTSP server did not start: {line!r}")
    return proc


def test_rtsp_feed_lost_and_back():
    port = free_port(socket.SOCK_STREAM)
    view = CollectSink("view", idle=True)
    view.queue_size = 1024
    pipe = StreamPipeline(live_config(f"rtsp://127.0.0.1:{port}/live", open_timeout_s=15.0), FakePredictor(),
                          sinks=[view])
    servers = [start_server(port)]

    def kill() -> None:
        servers[-1].kill()
        servers[-1].wait()

    try:
        pipe.start()
        lose_and_resume(pipe, view, kill, lambda: servers.append(start_server(port)), first=15)
    finally:
        for server in servers:
            server.kill()
            server.wait()
        pipe.stop("test")
        summary = pipe.wait()
    assert summary.stats.signal_lost_events >= 1 and summary.stats.reconnects >= 1
    shown = [f for f in view.frames if f.result is not None]
    layout = overlay_layout(174, 98)
    assert shown and all(f.image.shape[:2] == (layout.canvas_height, layout.canvas_width) for f in shown)
    assert max(float(layout.frame_part(f.image).max()) for f in shown) > 150  # the white ball, decoded
