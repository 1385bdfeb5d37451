"""A loopback UDP MPEG-TS feed, killed and restarted mid-stream: signal lost, reconnect, resume, no crash.

Only ever sends to 127.0.0.1.
"""

from __future__ import annotations

import json

import numpy as np

from tests.helpers.streaming import (
    CollectSink,
    FakePredictor,
    free_port,
    live_config,
    lose_and_resume,
    start_sender,
)
from usvid.streaming import StreamPipeline
from usvid.streaming.sinks import JsonlWriter, events_path


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
