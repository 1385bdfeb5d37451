"""A loopback UDP MPEG-TS feed, killed and restarted mid-stream: signal lost, reconnect, resume, no crash.

Only ever sends to 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.sinks import JsonlWriter

from .conftest import CollectSink, FakePredictor
from .test_sources import free_port

SENDER = Path(__file__).with_name("udp_sender.py")


def start_sender(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SENDER), str(port), "--seconds", "30"])


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate() and time.perf_counter() < deadline:
        time.sleep(0.02)
    return predicate()


def test_udp_feed_lost_and_back(tmp_path):
    port = free_port()
    jsonl = tmp_path / "pred.jsonl"
    view = CollectSink("view", idle=True)
    view.queue_size = 512
    cfg = StreamConfig(
        source=f"udp://127.0.0.1:{port}",
        model=Path("unused.pt"),
        detect_roi=False,
        read_timeout_s=0.5,
        reconnect_initial_s=0.1,
        reconnect_max_s=0.4,
        open_timeout_s=8.0,
    )
    pipe = StreamPipeline(cfg, FakePredictor(), sinks=[view, JsonlWriter(jsonl)])
    sender = start_sender(port)
    try:
        pipe.start()  # opens once the sender's first packets arrive
        assert wait_for(lambda: pipe.snapshot().frames >= 15, 10), "no frames from the sender"
        sender.kill()
        sender.wait()
        assert wait_for(lambda: pipe.live_status().state.value == "signal lost", 5)
        frames_at_loss = pipe.snapshot().frames
        assert wait_for(lambda: any(f.result is None for f in view.frames), 3), "no 'signal lost' screen"
        sender = start_sender(port)
        assert wait_for(
            lambda: (
                pipe.live_status().state.value == "live" and pipe.snapshot().frames >= frames_at_loss + 15
            ),
            15,
        ), "did not resume"
    finally:
        sender.kill()
        pipe.stop("test")
        summary = pipe.wait()
    assert summary.stats.signal_lost_events >= 1 and summary.stats.reconnects >= 1
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    events = [r["event"] for r in records if "event" in r]
    assert events.index("signal_lost") < events.index("reconnected")
    pts = [r["pts_seconds"] for r in records if "frame" in r]
    assert np.all(np.diff(pts) > 0)  # one timeline across the two connections (for the recording)
    segments = [f.result.frame.segment for f in view.frames if f.result is not None]
    assert segments[0] == 0 and segments[-1] >= 1
