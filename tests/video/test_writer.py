"""The one video writer: atomic finish, odd sizes, lossless codecs, timestamps, the same bytes every run."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest

from usvid.errors import InputError
from usvid.video.writer import VideoWriter, frame_rate


def _decode(path, fmt="gray"):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f for f in container.decode(video=0)]
        return stream, [f.to_ndarray(format=fmt) for f in frames], [f.pts for f in frames]


def _grey(i, w=33, h=21):
    return np.full((h, w), 20 + 10 * i, np.uint8)


def test_odd_sizes_are_padded_and_the_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 25, 33, 21) as writer:
        assert writer.size == (34, 22)
        for i in range(5):
            writer.write(_grey(i))
            writer.write(np.dstack([_grey(i)] * 3))  # BGR as well
        assert not path.exists() and list(tmp_path.glob(".out.mp4.*.tmp"))
    stream, frames, _ = _decode(path)
    assert (stream.width, stream.height, stream.codec_context.pix_fmt) == (34, 22, "yuv420p")
    assert len(frames) == 10 and stream.average_rate == 25
    assert abs(int(frames[0][20, 33]) - 20) <= 3  # the padding repeats the last column and row


def test_a_failed_block_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, 25, 32, 32) as writer:
        writer.write(_grey(0, 32, 32))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_size_and_bad_settings_are_refused(tmp_path):
    with VideoWriter(tmp_path / "a.mp4", 25, 32, 32) as writer, pytest.raises(ValueError, match="40x32"):
        writer.write(_grey(0, 40, 32))
    with pytest.raises(InputError, match="suffix '.xyz'"):
        VideoWriter(tmp_path / "a.xyz", 25, 32, 32)
    with pytest.raises(InputError, match="codec 'vp9'"):
        VideoWriter(tmp_path / "a.mkv", 25, 32, 32, codec="vp9")
    assert frame_rate(29.97) == Fraction(2997, 100) and frame_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)


def test_lossless_codec_keeps_exact_pixels_at_odd_sizes(tmp_path):
    path = tmp_path / "exact.mkv"
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (21, 33), dtype=np.uint8) for _ in range(3)]
    with VideoWriter(path, 10, 33, 21, codec="ffv1") as writer:
        for image in images:
            writer.write(image)
    _, frames, _ = _decode(path)
    assert all(np.array_equal(a, b) for a, b in zip(images, frames, strict=True))


def test_millisecond_timestamps_and_a_non_atomic_fragmented_file(tmp_path):
    path = tmp_path / "rec.mp4"
    writer = VideoWriter(path, 30, 32, 32, time_base=Fraction(1, 1000), tune="zerolatency", threads=1, atomic=False,
                         container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    for i, pts in enumerate((0, 40, 200)):
        writer.write(_grey(i, 32, 32), pts=pts)
    assert path.exists() and not list(tmp_path.glob(".*.tmp"))  # grows in place, before the finish
    writer.finish()
    stream, _, pts = _decode(path)
    assert [round(p * stream.time_base * 1000) for p in pts] == [0, 40, 200]


def test_one_thread_gives_the_same_bytes_every_time(tmp_path):
    digests = []
    for run in range(2):
        path = tmp_path / f"{run}.mp4"
        with VideoWriter(path, 30, 64, 48, threads=1, gop=30, preset="ultrafast") as writer:
            for i in range(8):
                writer.write(_grey(i, 64, 48))
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
