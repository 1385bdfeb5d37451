"""Fixtures for the stream tests: a fake predictor with the real interface, tiny synthetic feeds."""

from __future__ import annotations

import threading
import time
import weakref
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from usvid.boxes import Box
from usvid.video.roi import RegionConfig, ScanRegion, full_frame_region
from usvid.inference.metadata import ModelInfo
from usvid.inference.predictor import Prediction, Timing
from usvid.preprocess import PreprocessConfig
from usvid.streaming.config import StreamConfig

# Non-square and not a multiple of 32, so a swapped H/W or a stray resize shows up.
WIDTH, HEIGHT = 174, 98


class FakePredictor:
    """Same interface as :class:`usvid.inference.Predictor`; sleeps ``delay_s`` per call like a slow model.

    Always answers ``probs`` and a box covering the middle half of the region it saw (whole frame or ROI).
    """

    backend = "fake"

    def __init__(
        self, delay_s: float = 0.0, probs=(0.2, 0.8), class_names=("benign", "malignant"), box: bool = True
    ) -> None:
        self.info = ModelInfo(
            class_names=tuple(class_names),
            preprocess=PreprocessConfig(size=64),
            model_config={},
            model_hash="fake",
            has_mask=True,
        )
        self.device = torch.device("cpu")
        self.delay_s = delay_s
        self.probs = torch.tensor([probs], dtype=torch.float32)
        self.box = box
        self.calls = 0
        self.sizes: list[tuple[int, int]] = []
        self.rois: list[ScanRegion | None] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def predict(self, frames: torch.Tensor, roi: ScanRegion | None = None) -> Prediction:
        assert frames.dtype == torch.uint8 and frames.ndim == 4 and frames.shape[1] == 1, frames.shape
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        forward_ms = (time.perf_counter() - t0) * 1e3
        h, w = frames.shape[-2:]
        region = roi or full_frame_region(w, h)
        boxes = [
            Box(region.x + region.w // 4, region.y + region.h // 4, region.w // 2, region.h // 2, 0.9)
            if self.box
            else None
        ]
        with self._lock:
            self.calls += 1
            self.sizes.append((w, h))
            self.rois.append(roi)
            self.active -= 1
        return Prediction(
            self.probs.clone(), None, boxes, self.info.class_names, Timing(0.0, forward_ms, 0.0)
        )


def synthetic_frames(n: int, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    """``(n, H, W, 3)`` uint8: speckle in a scan region that changes every frame, a static UI bar on top."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[:, : height // 8] = 90  # static "UI" strip
    y0, x0 = height // 5, width // 6
    for i in range(n):
        speckle = rng.rayleigh(40.0, (height - y0 - 4, width - 2 * x0)).clip(0, 255).astype(np.uint8)
        frames[i, y0 : height - 4, x0 : width - x0] = speckle[..., None]
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 15, container: str | None = None,
                gop: int | None = None) -> Path:
    """H.264 of RGB ``frames`` ``(T, H, W, 3)`` uint8 (even H and W) at ``fps``; mp4 unless ``container``
    names another format (``"mpegts"``); ``gop``: frames between keyframes."""
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"preset": "ultrafast", **({"g": str(gop)} if gop else {})}
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def live_config(source: str, **kwargs) -> StreamConfig:
    """A network source with short timeouts and backoff, so loss and reconnection happen within a test.

    The whole frame is shown (``keep_ui``): these tests check that real decoded pictures arrive."""
    settings = {"region": RegionConfig(detect=False), "keep_ui": True, "read_timeout_s": 0.5, "reconnect_initial_s": 0.1, "reconnect_max_s": 0.4,
                "open_timeout_s": 8.0, **kwargs}
    return StreamConfig(source=source, model=Path("unused.pt"), **settings)


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    """A 30-frame, 2-second, 174x98 H.264 clip at 15 fps."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", synthetic_frames(30), fps=15)


@pytest.fixture
def fake_predictor() -> FakePredictor:
    return FakePredictor()


class CollectSink:
    """A sink keeping what it is given (optionally slowly; ``keep=False``: frame indices only)."""

    queue_size = 4

    def __init__(self, name: str = "collect", delay_s: float = 0.0, idle: bool = False, keep: bool = True) -> None:
        self.name = name
        self.delay_s = delay_s
        self.wants_idle_frames = idle
        self.keep = keep
        self.frames: list = []
        self.indices: list[int | None] = []
        self.events: list = []
        self.closed = False

    def open(self) -> None:
        pass

    def write(self, frame) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.indices.append(None if frame.result is None else frame.result.frame.index)
        if self.keep:
            self.frames.append(frame)

    def event(self, event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


class SyntheticLiveReader:
    """A live source from memory: ``fps`` frames a second, ``lose_after`` frames then silence (never returns).

    Every image it hands out is tracked by a weak reference (``alive``), so a test can count how many frames
    the pipeline holds at any moment.
    """

    kind = "network"
    live = True

    def __init__(
        self, fps: float = 100.0, lose_after: int | None = None, width: int = WIDTH, height: int = HEIGHT
    ) -> None:
        from usvid.streaming.sources import SourceLost

        self.spec = "synthetic://live"
        self.fps = fps
        self.lose_after = lose_after
        self.size = (width, height)
        self._refs: list[weakref.ref] = []
        self.opens = 0
        self._lost = SourceLost
        self._base = synthetic_frames(8, width, height)

    def open(self) -> None:
        from usvid.errors import InputError

        if self.opens and self.lose_after is not None:
            raise InputError("synthetic source is gone")
        self.opens += 1

    def frames(self):
        t0 = time.perf_counter()
        i = 0
        while self.lose_after is None or i < self.lose_after:
            bgr = self._base[i % len(self._base)].copy()
            self._refs.append(weakref.ref(bgr))
            yield bgr, bgr[..., 0].copy(), i / self.fps
            i += 1
            time.sleep(max(0.0, t0 + i / self.fps - time.perf_counter()))
        time.sleep(0.05)
        raise self._lost("synthetic source went silent")

    @property
    def alive(self) -> list:
        """Images this source made that something still holds."""
        return [r for r in self._refs if r() is not None]

    def close(self) -> None:
        pass




@pytest.fixture(scope="session")
def long_clip_path(tmp_path_factory) -> Path:
    """A 150-frame, 5-second clip at 30 fps (long enough to signal a process mid-stream)."""
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", synthetic_frames(150, seed=1), fps=30)
