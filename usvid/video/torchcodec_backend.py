"""torchcodec backend (optional): exact-seek decoding on CPU, or NVDEC on a CUDA device.

torchcodec needs FFmpeg's shared libraries (4 to 8; Debian: ``libavcodec59 libavformat59 ...``) besides
the wheel; without them, or without the package, opening raises :class:`MissingDependencyError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from usvid.errors import InputError, MissingDependencyError, ProcessingError
from usvid.video.base import DEFAULT_BATCH_SIZE, FrameBatch, ReaderBase, VideoInfo, rgb_to_grey


def load_torchcodec():
    """Import ``torchcodec.decoders`` or raise :class:`MissingDependencyError` saying what is missing."""
    try:
        from torchcodec import decoders
    except (ImportError, RuntimeError, OSError) as err:
        # RuntimeError/OSError: the wheel is there but FFmpeg's shared libraries are not.
        raise MissingDependencyError(
            f"torchcodec is not usable ({str(err).splitlines()[0][:200]}); install it with "
            "`pip install torchcodec` and FFmpeg's shared libraries (e.g. `apt-get install ffmpeg`)"
        ) from None
    return decoders


class TorchCodecReader(ReaderBase):
    """A video file read with torchcodec; ``device="cuda"`` decodes with NVDEC."""

    def __init__(self, path: Path, device: str | torch.device = "cpu", threads: int = 0) -> None:
        decoders = load_torchcodec()
        self.path, self.device = path, torch.device(device)
        try:
            self._dec = decoders.VideoDecoder(
                str(path),
                seek_mode="exact",
                device=str(self.device),
                dimension_order="NCHW",
                num_ffmpeg_threads=threads,
            )
        except (RuntimeError, ValueError) as err:
            raise InputError(f"{path}: not a readable video ({str(err).splitlines()[0][:200]})") from None
        meta = self._dec.metadata
        n = int(meta.num_frames or 0)
        if n == 0:
            raise InputError(f"{path}: the video stream has no frames")
        # Timestamps count from the first frame, as in the other backends.
        self._t0 = float(meta.begin_stream_seconds_from_content or meta.begin_stream_seconds or 0.0)
        fps = float(meta.average_fps or 25.0)
        self.info = VideoInfo(
            path=path,
            width=int(meta.width),
            height=int(meta.height),
            num_frames=n,
            fps=fps,
            duration_seconds=n / fps,
            codec=str(meta.codec),
            backend="torchcodec",
            num_frames_header=meta.num_frames_from_header,
        )

    def _wrap(self, data: torch.Tensor, indices: list[int], pts: torch.Tensor, grey: bool) -> FrameBatch:
        if grey:
            if data.device.type == "cpu":
                rgb = data.permute(0, 2, 3, 1).numpy()
                data = torch.from_numpy(np.ascontiguousarray(rgb_to_grey(rgb))[:, None])
            else:
                w = torch.tensor([0.299, 0.587, 0.114], device=data.device).view(1, 3, 1, 1)
                data = (data.float() * w).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        stamps = pts.to(torch.float64).cpu() - self._t0
        return FrameBatch(data, torch.tensor(indices, dtype=torch.int64), stamps)

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        for indices in self.index_batches(batch_size):
            start, stop = indices[0], indices[-1] + 1
            try:
                out = self._dec.get_frames_in_range(start, stop)
            except RuntimeError as err:
                raise ProcessingError(
                    f"{self.path}: decoding failed at frame {start} ({err}); the file is corrupt"
                ) from None
            yield self._wrap(out.data, indices, out.pts_seconds, grey)

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        wanted = self.check_indices(indices)
        try:
            out = self._dec.get_frames_at(wanted)
        except RuntimeError as err:
            raise ProcessingError(f"{self.path}: decoding failed ({err}); the file is corrupt") from None
        return self._wrap(out.data, wanted, out.pts_seconds, grey)

    def close(self) -> None:
        self._dec = None
