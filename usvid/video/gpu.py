"""Getting decoded batches onto the GPU: pinned host memory + non-blocking copies, or NVDEC decoding.

``to_device`` pins a CPU batch and copies it with ``non_blocking=True`` so the copy overlaps the next
decode; ``open_nvdec`` decodes on the GPU itself with torchcodec's CUDA build. Both need CUDA; without it
``to_device`` is a no-op on CPU targets and ``open_nvdec`` raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from usvid.errors import MissingDependencyError
from usvid.video.base import FrameBatch


def to_device(batch: FrameBatch, device: str | torch.device) -> FrameBatch:
    """Copy ``batch.data`` (``(T, C, H, W)`` uint8) to ``device``; pinned + non-blocking for CUDA targets.

    Indices and timestamps stay on the CPU (they are bookkeeping, not model input). The caller must
    synchronise (or use the data on the same stream) before reusing host memory, as usual in PyTorch.
    """
    device = torch.device(device)
    if batch.data.device == device:
        return batch
    data = batch.data
    if device.type == "cuda" and data.device.type == "cpu":
        data = data.pin_memory()
    return FrameBatch(data.to(device, non_blocking=True), batch.indices, batch.pts_seconds)


def prefetch_to_device(batches: Iterable[FrameBatch], device: str | torch.device) -> Iterator[FrameBatch]:
    """Yield batches on ``device``, issuing the copy of batch ``k + 1`` before batch ``k`` is consumed."""
    pending = None
    for batch in batches:
        moved = to_device(batch, device)
        if pending is not None:
            yield pending
        pending = moved
    if pending is not None:
        yield pending


def nvdec_available() -> bool:
    """True when CUDA is present and torchcodec can open a CUDA decoder."""
    if not torch.cuda.is_available():
        return False
    try:
        from usvid.video.torchcodec_backend import load_torchcodec

        load_torchcodec()
    except MissingDependencyError:
        return False
    return True


def open_nvdec(path: str | Path, device: str | torch.device = "cuda"):
    """A :class:`~usvid.video.base.VideoReader` decoding on the GPU (NVDEC) via torchcodec.

    Batches come back as CUDA tensors. Raises :class:`MissingDependencyError` without CUDA or torchcodec.
    """
    if not torch.cuda.is_available():
        raise MissingDependencyError(
            "NVDEC decoding needs a CUDA GPU; none is available (use to_device instead)"
        )
    from usvid.video.reader import open_video

    return open_video(path, "torchcodec", device=device)
