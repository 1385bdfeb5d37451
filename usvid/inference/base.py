"""What every predictor is and returns: :class:`BasePredictor`, :class:`Prediction`, :class:`Timing`.

Every backend (torch, onnxruntime, TensorRT) runs the same steps: the frame store's geometry (scan-region
crop, letterbox to ``S x S``; :mod:`usvid.inference.geometry`) and the shared
:func:`usvid.preprocess.preprocess`, its own network forward, and the shared mask-to-box post-processing.
Backends differ only in ``_forward``.

A leaf of the inference package: the backends subclass :class:`BasePredictor` from here, and the factory
:func:`usvid.inference.predictor.load_predictor` imports the backends, so imports flow one way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from usvid.boxes import Box, check_mask_threshold
from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.inference.geometry import network_frames
from usvid.inference.metadata import ModelInfo
from usvid.inference.postprocess import masks_to_boxes
from usvid.preprocess import preprocess
from usvid.video.roi import ScanRegion


@dataclass(frozen=True)
class Timing:
    """Wall time of one :meth:`Predictor.predict` call, split by stage, in milliseconds."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass
class Prediction:
    """Predictions for a batch of ``B`` frames.

    Attributes:
        probs: ``(B, K)`` float32 class probabilities in [0, 1], rows summing to 1, on the CPU.
        mask: ``(B, 1, S, S)`` float32 lesion probabilities in [0, 1] at network resolution (covering the
            frame or the ROI), on the CPU; ``None`` for a model without a lesion branch.
        boxes: ``B`` entries: the lesion box in input-frame pixels, or ``None`` for "no lesion".
        class_names: the ``K`` class names, in probability column order.
        timing: wall time of the call that made this prediction.
    """

    probs: torch.Tensor
    mask: torch.Tensor | None
    boxes: list[Box | None]
    class_names: tuple[str, ...]
    timing: Timing

    def __post_init__(self) -> None:
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.class_names):
            raise ValueError(f"probs must be (B, {len(self.class_names)}), got {tuple(self.probs.shape)}")
        if self.mask is not None and (self.mask.ndim != 4 or self.mask.shape[:2] != (len(self), 1)):
            raise ValueError(f"mask must be ({len(self)}, 1, S, S), got {tuple(self.mask.shape)}")
        if len(self.boxes) != len(self):
            raise ValueError(f"need one box entry per frame ({len(self)}), got {len(self.boxes)}")

    def __len__(self) -> int:
        return self.probs.shape[0]

    @property
    def class_indices(self) -> torch.Tensor:
        """``(B,)`` int64 index of the most probable class."""
        return self.probs.argmax(dim=1)

    @property
    def labels(self) -> list[str]:
        return [self.class_names[i] for i in self.class_indices.tolist()]

    def __repr__(self) -> str:
        mask = None if self.mask is None else tuple(self.mask.shape)
        found = sum(b is not None for b in self.boxes)
        return (f"Prediction(probs={tuple(self.probs.shape)}, mask={mask}, boxes={found}/{len(self)} found, "
                f"total_ms={self.timing.total_ms:.1f})")


@runtime_checkable
class Predictor(Protocol):
    """What every backend offers. ``frames`` are ``(B, 1, H, W)`` uint8 (any H, W), or one numpy frame."""

    backend: str
    info: ModelInfo
    device: torch.device

    def predict(self, frames: torch.Tensor | np.ndarray, roi: ScanRegion | None = None) -> Prediction: ...


class NonFiniteOutputError(InputError):
    """The network returned NaN or inf: its weights are damaged, or it overflows at this precision."""


class BasePredictor:
    """Shared preprocess -> ``_forward`` -> post-process pipeline; subclasses implement ``_forward``."""

    backend = "base"
    #: The model file, named in errors (None for a network given in memory).
    path: Path | None = None
    #: How ``backend="auto"`` picked this path on the CPU (a :class:`usvid.inference.autoselect.Selection`);
    #: None for a path the caller named.
    selection = None

    def __init__(self, info: ModelInfo, device: torch.device, threshold: float | None = None) -> None:
        # None: the model's own threshold, chosen on its validation split when it was trained (else 0.5).
        self.info = info
        self.device = device
        self.threshold = check_mask_threshold(info.default_threshold if threshold is None else threshold)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    def predict(self, frames: torch.Tensor | np.ndarray, roi: ScanRegion | None = None) -> Prediction:
        """Classify frames and locate the lesion.

        Args:
            frames: ``(B, 1, H, W)`` uint8 grey frames (``(B, C, H, W)`` with ``C`` the model's input
                channels also works), on any device; or one frame as a numpy array: ``(H, W)`` uint8 grey or
                ``(H, W, 3)`` uint8 RGB (made grey as the video readers do, BT.601 luma), predicted as a batch of 1.
            roi: scan region to crop (and blank outside its mask) before letterboxing, in frame pixels;
                ``None`` uses the whole frame.
        Returns:
            A :class:`Prediction` with boxes in ``frames`` pixel coordinates.
        """
        frames = as_frame_batch(frames)
        self._check_frames(frames, roi)
        height, width = frames.shape[-2:]
        t0 = time.perf_counter()
        x = self._prepare(frames, roi)
        t1 = time.perf_counter()
        probs, mask = self._forward(x)
        self._check_outputs(probs, mask)
        t2 = time.perf_counter()
        if mask is None:
            boxes = [None] * len(x)
        else:
            boxes = masks_to_boxes(mask, (width, height), roi, self.threshold, input_size=self.info.preprocess.size)
        t3 = time.perf_counter()
        timing = Timing((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return Prediction(probs, mask, boxes, self.info.class_names, timing)

    def warmup(self, batch_size: int = 1, iterations: int = 2) -> None:
        """Run a few forwards so lazy initialisation (allocators, kernels, graphs) is not timed later."""
        size = self.info.preprocess.size
        frames = torch.zeros(batch_size, 1, size, size, dtype=torch.uint8)
        for _ in range(iterations):
            self.predict(frames)

    def _check_frames(self, frames: torch.Tensor, roi: ScanRegion | None) -> None:
        in_ch = self.info.preprocess.in_channels
        if not isinstance(frames, torch.Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4:
            got = f"{frames.dtype} {tuple(frames.shape)}" if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise InputError(f"frames must be a (B, 1, H, W) uint8 tensor or one (H, W) / (H, W, 3) uint8 numpy "
                             f"frame, got {got}")
        if frames.shape[1] not in (1, in_ch) or frames.shape[0] == 0:
            raise InputError(f"frames must be (B, 1, H, W) or (B, {in_ch}, H, W) with B >= 1, "
                             f"got {tuple(frames.shape)}")
        if roi is not None:
            roi.check_inside(frames.shape[-1], frames.shape[-2])

    def _check_outputs(self, probs: torch.Tensor, mask: torch.Tensor | None) -> None:
        """Refuse NaN/inf outputs: argmax over NaN picks class 0 with no sign that anything is wrong."""
        bad = ~torch.isfinite(probs).all(dim=1)
        if mask is not None:
            bad |= ~torch.isfinite(mask).flatten(1).all(dim=1)
        if bool(bad.any()):
            where = self.path if self.path is not None else f"the {self.backend} model"
            precision = getattr(self, "precision", None)
            hint = f" or overflows in {precision}, try fp32" if precision in ("fp16", "bf16") else ""
            raise NonFiniteOutputError(
                f"{where}: the network returned NaN or infinite values for {int(bad.sum())} of {len(bad)} "
                f"frame(s); the model is damaged{hint}; use another model file"
            )

    def _prepare(self, frames: torch.Tensor, roi: ScanRegion | None) -> torch.Tensor:
        """``(B, C, H, W)`` uint8 -> ``(B, in_channels, M, M)`` float32 network input on ``self.device``.

        Crop, letterbox and blank to the store side ``S`` the model was trained from, as the frame store does
        (:mod:`usvid.inference.geometry`), then the shared :func:`~usvid.preprocess.preprocess` (``S -> M``),
        as training did.
        """
        size = self.info.preprocess.frame_size
        with single_threaded_torch():
            x = network_frames(frames.cpu(), roi, size).to(self.device, non_blocking=True)
            in_ch = self.info.preprocess.in_channels
            if x.shape[1] != in_ch:
                x = x.expand(-1, in_ch, -1, -1)
            return preprocess(x, self.info.preprocess)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x``: ``(B, C, S*32, S*32)`` float32 network input. Returns CPU float32 ``probs (B, K)``, ``mask``."""
        raise NotImplementedError


def as_frame_batch(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """One numpy frame, ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8, as a ``(1, 1, H, W)`` uint8 tensor; a tensor
    is returned as it is (checked by the predictor)."""
    if not isinstance(frames, np.ndarray):
        return frames
    rgb = frames.ndim == 3 and frames.shape[2] == 3
    if frames.dtype != np.uint8 or not (frames.ndim == 2 or rgb) or 0 in frames.shape:
        raise InputError(f"a numpy frame must be (H, W) or (H, W, 3) uint8, got {frames.dtype} {frames.shape}; "
                         "pass a batch as a (B, 1, H, W) uint8 tensor")
    if rgb:
        from usvid.video.base import rgb_to_grey

        frames = rgb_to_grey(np.ascontiguousarray(frames))
    return torch.from_numpy(np.ascontiguousarray(frames))[None, None]


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run this thread's torch CPU ops on one thread, then restore the previous count.

    Preprocessing is a handful of small ops; waking torch's OpenMP pool for them costs more than the
    work, and on a busy CPU (the inference engine's own threads, a decoder, other processes) a woken
    thread can wait milliseconds for a core: 12-20 ms per frame measured on 2 cores, against 0.4 ms
    single-threaded. The setting is per calling thread with torch's OpenMP backend.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; a CUDA request without CUDA is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError(
            f"device '{device}' asked for, but CUDA is not available (no GPU, or torch built without CUDA); "
            "use --device cpu"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device '{device}' is not supported; use auto, cpu, cuda or cuda:N")
    return dev
