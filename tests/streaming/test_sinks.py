"""Sinks: the H.264 recorder keeps the source's timing and odd sizes, the window needs a display."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers.streaming import CollectSink, FakePredictor, SyntheticLiveReader
from usvid.errors import InputError, MissingDependencyError
from usvid.inference.overlay import overlay_layout
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.sinks import JsonlWriter, Mp4Recorder, WindowSink, display_available
from usvid.video.roi import RegionConfig


def decode(path: Path) -> tuple[list[float], tuple[int, int]]:
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        assert container.streams.video[0].codec_context.name == "h264"
    return [f.time for f in frames], (frames[0].width, frames[0].height)


def test_recorder_keeps_source_timing_when_frames_drop(tmp_path):
    """A slow model at 60 fps drops frames; the mp4 still shows each kept frame at its source time."""
    out = tmp_path / "rec.mp4"
    keep = CollectSink()
    keep.queue_size = 256
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), region=RegionConfig(detect=False), max_frames=60)
    pipe = StreamPipeline(
        cfg,
        FakePredictor(delay_s=0.04),
        reader=SyntheticLiveReader(fps=60),
        sinks=[Mp4Recorder(out, fps=60), keep],
    )
    pipe.start()
    s = pipe.wait().stats
    assert s.dropped > 0
    times, _ = decode(out)
    pts = np.array([f.result.frame.pts_seconds for f in keep.frames])
    assert len(times) == len(pts) == s.frames
    np.testing.assert_allclose(times, pts - pts[0], atol=1.5e-3)


def test_recorder_of_odd_frame_sizes_is_even(tmp_path):
    out = tmp_path / "odd.mp4"
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), region=RegionConfig(detect=False), max_frames=8)
    reader = SyntheticLiveReader(fps=30, width=161, height=97)
    summary = StreamPipeline(cfg, FakePredictor(), reader=reader, sinks=[Mp4Recorder(out)]).run()
    times, size = decode(out)
    # The overlay canvas (frame under its label bar) is even-sided already; the recorder keeps it.
    assert size == overlay_layout(161, 97).size and size[0] % 2 == 0 == size[1] % 2
    assert len(times) == summary.stats.frames > 0


@pytest.mark.parametrize(("name", "match"), [("rec.avi", "expected an .mp4"), ("folder", "is a folder")])
def test_recorder_bad_paths(tmp_path, name, match):
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=match):
        Mp4Recorder(tmp_path / name).open()


def test_jsonl_writer_bad_path(tmp_path):
    with pytest.raises(InputError, match="--jsonl .* is a folder"):
        JsonlWriter(tmp_path).open()


def test_window_without_display_says_what_to_do(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    ok, why = display_available()
    assert not ok and "DISPLAY" in why
    with pytest.raises(MissingDependencyError, match="--window: .*use --serve"):
        WindowSink(lambda reason: None).open()
