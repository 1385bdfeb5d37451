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

from usvid.streaming import StreamPipeline
from usvid.streaming.sinks import JsonlWriter, events_path

from .conftest import CollectSink, FakePredictor, live_config
from .test_sources import free_port

SENDER = Path(__file__).with_name("udp_sender.py")


def start_sender(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SENDER), str(port), "--seconds", "30"])


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while not predicate() and time.perf_counter() < deadline:
        time.sleep(0.02)
    return predicate()


def lose_and_resume(pipe, view, stop_source, start_source, first: int, loss_timeout: float = 5) -> None:
    """Wait for ``first`` frames, stop the source, expect "signal lost" (state and screen), start it again,
    expect the stream live with ``first`` more frames. ``start_source`` returns what ``stop_source`` takes."""
    assert wait_for(lambda: pipe.snapshot().frames >= first, 10), "no frames from the source"
    stop_source()
    assert wait_for(lambda: pipe.live_status().state.value == "signal lost", loss_timeout)
    assert wait_for(lambda: any(f.result is None for f in view.frames), 3), "no 'signal lost' screen"
    frames_at_loss = pipe.snapshot().frames
    start_source()
    assert wait_for(
        lambda: pipe.live_status().state.value == "live" and pipe.snapshot().frames >= frames_at_loss + first, 15
    ), "did not resume"


def test_udp_feed_lost_and_back(tmp_path):
    port = free_port()
    jsonl = tmp_path / "pred.jsonl"
    view = CollectSink("view", idle=True)
    view.queue_size = 512
    pipe = StreamPipeline(live_config(f"udp://127.0.0.1:{port}"), FakePredictor(), sinks=[view, JsonlWriter(jsonl)])
    senders = [start_sender(port)]

    def kill() -> None:
        senders[-1].kill()
        senders[-1].wait()

    try:
        pipe.start()  # opens once the sender's first packets arrive
        lose_and_resume(pipe, view, kill, lambda: senders.append(start_sender(port)), first=15)
    finally:
        for sender in senders:
            sender.kill()
        pipe.stop("test")
        summary = pipe.wait()
    assert summary.stats.signal_lost_events >= 1 and summary.stats.reconnects >= 1
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    events = [json.loads(line)["event"] for line in events_path(jsonl).read_text().splitlines()]
    assert events.index("signal_lost") < events.index("reconnected")
    pts = [r["pts_seconds"] for r in records]
    assert np.all(np.diff(pts) > 0)  # one timeline across the two connections (for the recording)
    segments = [f.result.frame.segment for f in view.frames if f.result is not None]
    assert segments[0] == 0 and segments[-1] >= 1
