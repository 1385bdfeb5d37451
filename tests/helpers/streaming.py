"""Stream test doubles and feeds: a fake predictor with the real interface, sinks, synthetic live sources,
loopback ports and senders."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import torch

from usvid.boxes import Box
from usvid.inference.metadata import ModelInfo
from usvid.inference.predictor import Prediction, Timing
from usvid.preprocess import PreprocessConfig
from usvid.streaming.config import StreamConfig
from usvid.video.roi import RegionConfig, ScanRegion, full_frame_region

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


def live_config(source: str, **kwargs) -> StreamConfig:
    """A network source with short timeouts and backoff, so loss and reconnection happen within a test.

    The whole frame is shown (``keep_ui``): these tests check that real decoded pictures arrive."""
    settings = {"region": RegionConfig(detect=False), "keep_ui": True, "read_timeout_s": 0.5, "reconnect_initial_s": 0.1, "reconnect_max_s": 0.4,
                "open_timeout_s": 8.0, **kwargs}
    return StreamConfig(source=source, model=Path("unused.pt"), **settings)


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


UDP_SENDER = Path(__file__).with_name("udp_sender.py")
RTSP_SERVER = Path(__file__).with_name("rtsp_server.py")


def start_sender(port: int, seconds: float = 30) -> subprocess.Popen:
    """``udp_sender.py``: an MPEG-TS/H.264 feed to 127.0.0.1:``port`` for ``seconds``."""
    return subprocess.Popen([sys.executable, str(UDP_SENDER), str(port), "--seconds", str(seconds)])


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port nothing listens on now (UDP unless ``kind`` is ``socket.SOCK_STREAM``)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 5.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``predicate`` until true or ``timeout`` s; fails the test at once if ``proc`` exits meanwhile."""
    import pytest

    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"stream exited early: {proc.stderr.read().decode()}")
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
