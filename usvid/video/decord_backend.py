"""decord backend: a packet index built at open, batched decoding to RGB (grey is converted from RGB)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from usvid.errors import InputError, ProcessingError, optional_import
from usvid.video.base import DEFAULT_BATCH_SIZE, FrameBatch, ReaderBase, VideoInfo, rgb_to_grey


def _codec_name(path: Path) -> str:
    import av

    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].codec_context.name
    except (av.error.FFmpegError, IndexError):
        return "unknown"


class DecordReader(ReaderBase):
    """A video file read with decord; see :class:`usvid.video.base.VideoReader`."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        decord = optional_import("decord", "decord")
        self.path = path
        try:
            # threads=0 lets FFmpeg pick, as PyAV's "AUTO" threading does.
            self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads)
        except (decord.DECORDError, RuntimeError) as err:
            raise InputError(f"{path}: not a readable video ({str(err).splitlines()[0]})") from None
        n = len(self._vr)
        if n == 0:
            raise InputError(f"{path}: the video stream has no frames")
        stamps = self._vr.get_frame_timestamp(list(range(n)))[:, 0]
        self._stamps = stamps - stamps[0]
        span = float(self._stamps[-1])
        fps = (n - 1) / span if n > 1 and span > 0 else float(self._vr.get_avg_fps() or 25.0)
        first = self._vr[0].shape
        self.info = VideoInfo(
            path=path,
            width=int(first[1]),
            height=int(first[0]),
            num_frames=n,
            fps=fps,
            duration_seconds=n / fps,
            codec=_codec_name(path),
            backend="decord",
        )
        self._vr.seek(0)

    def _batch(self, indices: list[int], grey: bool) -> FrameBatch:
        import decord

        try:
            rgb = self._vr.get_batch(indices).asnumpy()
        except decord.DECORDError as err:
            raise ProcessingError(
                f"{self.path}: decoding failed ({str(err).splitlines()[0]}); the file is corrupt"
            ) from None
        frames = list(rgb_to_grey(rgb)) if grey else list(rgb)
        return FrameBatch.from_numpy(frames, indices, [float(self._stamps[i]) for i in indices])

    def batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, grey: bool = True, raw_luma: bool = False
    ) -> Iterator[FrameBatch]:
        for idx in self.index_batches(batch_size):
            yield self._batch(idx, grey)

    def get_frames(self, indices: Sequence[int], *, grey: bool = True) -> FrameBatch:
        wanted = self.check_indices(indices)
        order = sorted(set(wanted))
        batch = self._batch(order, grey)
        pos = {i: k for k, i in enumerate(order)}
        take = [pos[i] for i in wanted]
        return FrameBatch(batch.data[take], batch.indices[take], batch.pts_seconds[take])

    def close(self) -> None:
        self._vr = None
