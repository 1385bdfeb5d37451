"""What the stream shows: only the scan region, "detecting" until it is known, no status in recordings."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers.streaming import HEIGHT, WIDTH, CollectSink, FakePredictor, SyntheticLiveReader
from usvid.inference import overlay
from usvid.inference.overlay import overlay_layout
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.overlay import draw_signal_lost
from usvid.streaming.sinks import Mp4Recorder
from usvid.video.roi import RegionConfig

LAYOUT = overlay_layout(WIDTH, HEIGHT)
UI_ROWS = slice(0, HEIGHT // 8)  # synthetic_frames' static "UI" strip (grey 90)
FIXED = (WIDTH // 6, HEIGHT // 5, WIDTH - 2 * (WIDTH // 6), HEIGHT - 4 - HEIGHT // 5)  # its scan


def run(reader=None, sinks=(), **kwargs) -> list:
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), **kwargs)
    sink = CollectSink()
    sink.queue_size = 512
    reader = reader or SyntheticLiveReader(fps=60)
    StreamPipeline(cfg, FakePredictor(), reader=reader, sinks=[sink, *sinks]).run()
    return [f for f in sink.frames if f.result is not None]


def outside(roi) -> np.ndarray:
    keep = np.zeros((HEIGHT, WIDTH), bool)
    keep[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = True if roi.mask is None else roi.mask > 0
    return ~keep


def notice_pixels(canvas: np.ndarray) -> int:
    ink = np.array(overlay.NOTICE_INK[::-1])
    bar = canvas[LAYOUT.line_origin(1) : LAYOUT.line_origin(2)].astype(int)
    return int((np.abs(bar - ink).sum(axis=-1) < 60).sum())


def test_nothing_of_the_frame_is_shown_until_the_region_is_found_then_only_the_region(monkeypatch):
    texts: list[str] = []
    real = overlay.cv2.putText

    def spy(img, text, *args, **kwargs):
        texts.append(text)
        return real(img, text, *args, **kwargs)

    monkeypatch.setattr(overlay.cv2, "putText", spy)
    frames = run(region=RegionConfig(frames=16), max_frames=90)
    assert any(t.startswith("detecting scan region") for t in texts)
    detecting = [f for f in frames if f.result.roi is None]
    found = [f for f in frames if f.result.roi is not None]
    assert detecting and found, (len(detecting), len(found))
    for f in detecting:
        assert LAYOUT.frame_part(f.image).max() == 0  # the model saw the whole frame; the viewer sees none
        assert notice_pixels(f.image) > 20  # "detecting scan region..." in the bar
    for f in found:
        part = LAYOUT.frame_part(f.image)
        assert part[outside(f.result.roi)].max() == 0 and part[UI_ROWS].max() == 0
        assert part.max() > 150 and notice_pixels(f.image) == 0  # the scan; no notice any more


def test_keep_ui_shows_the_whole_frame():
    frames = run(region=RegionConfig(FIXED), max_frames=10, keep_ui=True)
    assert frames and all(abs(float(LAYOUT.frame_part(f.image)[2, WIDTH // 2].mean()) - 90) < 1
                          for f in frames)
    blanked = run(region=RegionConfig(FIXED), max_frames=10)
    assert blanked and all(LAYOUT.frame_part(f.image)[UI_ROWS].max() == 0 for f in blanked)


def test_signal_lost_screen_is_made_from_the_blanked_frame():
    view = CollectSink("view", idle=True)
    view.queue_size = 512
    cfg = StreamConfig(source="synthetic://live", model=Path("unused.pt"), region=RegionConfig(FIXED), read_timeout_s=0.3,
                       reconnect_initial_s=0.1, reconnect_max_s=0.2, max_frames=None)
    reader = SyntheticLiveReader(fps=60, lose_after=20)
    pipe = StreamPipeline(cfg, FakePredictor(), reader=reader, sinks=[view])
    pipe.start()
    try:
        deadline = time.perf_counter() + 5
        while not any(f.result is None for f in view.frames) and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        pipe.stop("test")
        pipe.wait()
    idle = [f for f in view.frames if f.result is None]
    last = [f for f in view.frames if f.result is not None][-1]
    # The dimmed screen is the last de-identified canvas (without its status line), not the raw frame.
    assert idle and np.array_equal(idle[0].image, draw_signal_lost(last.recording))
    assert LAYOUT.frame_part(last.recording)[UI_ROWS].max() == 0


def status_rows(canvas: np.ndarray) -> np.ndarray:
    top = LAYOUT.line_origin(overlay.STATUS_LINE)
    return canvas[top + 2 : top + LAYOUT.line - 2, : WIDTH - 8]


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


@pytest.mark.parametrize("record_status", [False, True])
def test_recording_carries_the_status_line_only_when_asked(tmp_path, record_status):
    path = tmp_path / "rec.mp4"
    frames = run(region=RegionConfig(FIXED), max_frames=20, record_status=record_status, sinks=[Mp4Recorder(path)])
    # The live views always carry it ...
    assert all(status_rows(f.image).max() > 150 for f in frames)
    if not record_status:
        assert all(status_rows(f.recording).max() <= overlay.BAR_FILL[0] for f in frames)
    # ... the recording only with record_status (decoded: H.264 keeps a flat bar flat, text bright).
    recorded = decode(path)
    assert recorded and recorded[0].shape[:2] == (LAYOUT.canvas_height, LAYOUT.canvas_width)
    brightest = max(int(status_rows(img).max()) for img in recorded)
    assert brightest > 150 if record_status else brightest < 60


class _Check(CollectSink):
    """Checks every overlaid frame as it comes (800x600 canvases are too big to keep): counts frames shown
    before the region was known with any pixel set, and source pixels shown outside the region or in text."""

    def __init__(self, texts, ink) -> None:
        super().__init__(keep=False)
        self.queue_size = 1024
        self.texts, self.ink = texts, ink
        self.detecting = self.found = self.leaks = 0

    def write(self, frame) -> None:
        super().write(frame)
        if frame.result is None:
            return
        h, w = frame.result.frame.grey.shape
        part = overlay_layout(w, h).frame_part(frame.recording).max(axis=-1)
        roi = frame.result.roi
        if roi is None:
            self.detecting += 1
            self.leaks += int((part > 0).sum())
            return
        self.found += 1
        keep = np.zeros((h, w), bool)
        keep[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = True if roi.mask is None else roi.mask > 0
        self.leaks += int((part[~keep] > 0).sum())
        for x0, y0, x1, y1 in self.texts:
            self.leaks += int(((part[y0:y1, x0:x1] > 0) & self.ink[y0:y1, x0:x1]).sum())


@pytest.mark.realdata
@pytest.mark.parametrize("clip", ["0011.mp4", "echo-with-borders.mp4", "low-frame-count.mov", "test.mp4"])
def test_clinical_clip_stream_shows_no_burned_in_text(shared_data, clip):
    """``usvid stream`` of a real clip with vendor UI: while the region is detected no pixel of the frame is
    shown, then nothing outside it. A burned-in text pixel is one inside the clip's hand-annotated text
    boxes (``CLINICAL_UI`` in ``tests/helpers/clinical.py``) that is bright (> 40) in some of its first 160
    frames; none may be shown. (low-frame-count.mov has 20 frames, fewer than detection needs: it stays
    black, "detecting" throughout.)"""
    from tests.helpers.clinical import CLINICAL_UI
    from usvid.inference.frames import FrameReader
    from usvid.video.roi import ROI_FRAMES

    path = shared_data / "videos" / "clinical-ui" / clip
    with FrameReader(path) as reader:
        frames = np.concatenate([b[:, 0].numpy() for b, _ in reader.batches(32)])[:160]
    check = _Check(CLINICAL_UI[clip][1], frames.max(axis=0) > 40)
    cfg = StreamConfig(source=str(path), model=Path("unused.pt"), max_frames=ROI_FRAMES + 40)
    StreamPipeline(cfg, FakePredictor(box=False), sinks=[check]).run()
    assert check.leaks == 0 and check.detecting > 0
    assert check.found > 0 or len(frames) < ROI_FRAMES


def test_stream_config_and_cli_carry_the_overlay_settings():
    from typer.testing import CliRunner
    from usvid.cli.app import app

    from usvid.errors import ConfigError

    cfg = StreamConfig(source="udp://127.0.0.1:5000", model=Path("m.onnx"))
    assert not cfg.keep_ui and not cfg.record_status and not cfg.overlay_style.keep_ui
    with pytest.raises(ConfigError, match="box_min_score"):
        StreamConfig(source="udp://127.0.0.1:5000", model=Path("m.onnx"), box_min_score=1.5)
    out = CliRunner().invoke(app, ["stream", "--help"], terminal_width=200).output
    assert "--keep-ui" in out and "--record-status" in out
