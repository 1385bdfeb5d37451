"""Sources: kinds, clear errors for sources that never open, native-rate playback, the continuous timeline."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.streaming import HEIGHT, WIDTH, free_port
from usvid.errors import InputError
from usvid.streaming.config import StreamConfig
from usvid.streaming.sources import CaptureWorker, SourceState, Timeline, classify_source, make_reader
from usvid.video.testvideos import write_frame_folder


def config(source: str, **kwargs) -> StreamConfig:
    return StreamConfig(source=source, model=Path("unused.pt"), **kwargs)


def test_classify_source(tmp_path, clip_path):
    assert classify_source("udp://127.0.0.1:5000") == "network"
    assert classify_source("rtsp://127.0.0.1/live") == "network"
    assert classify_source("/dev/video0") == "device"
    assert classify_source(str(clip_path)) == "file"
    assert classify_source(str(write_frame_folder(tmp_path / "frames", num_frames=2))) == "folder"
    with pytest.raises(InputError, match="a stream plays one video"):
        classify_source(str(tmp_path / "frames" / ".."))  # a folder of frame folders
    dcm = tmp_path / "cine.bin"
    dcm.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    assert classify_source(str(dcm)) == "dicom"


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("/no/such/scan.mp4", "does not exist"),
        ("ftp://127.0.0.1/x", "unsupported URL scheme 'ftp'"),
        ("/dev/video97", "capture device /dev/video97 does not exist"),
    ],
)
def test_bad_sources_fail_at_once(source, match):
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=match):
        make_reader(config(source)).open()
    assert time.perf_counter() - t0 < 2.0


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"could not open video file '.*broken\.mp4'"):
        make_reader(config(str(bad))).open()


def test_network_source_that_never_opens_fails_within_the_timeout():
    url = f"udp://127.0.0.1:{free_port()}"  # nobody sends there
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"could not open network source 'udp://127\.0\.0\.1:\d+'.*sender"):
        make_reader(config(url, open_timeout_s=1.0)).open()
    assert time.perf_counter() - t0 < 4.0


def test_refused_tcp_source_fails_fast():
    url = f"tcp://127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="could not open network source"):
        make_reader(config(url, open_timeout_s=3.0)).open()
    assert time.perf_counter() - t0 < 4.0


def test_file_reader_frames(clip_path):
    reader = make_reader(config(str(clip_path)))
    reader.open()
    frames = list(reader.frames())
    reader.close()
    assert len(frames) == 30 and reader.fps == pytest.approx(15)
    bgr, grey, pts, luma = frames[3]
    assert luma is not None and luma.shape == grey.shape  # libx264 yuv420p: limited range, kept for detection
    assert bgr.shape == (HEIGHT, WIDTH, 3) and bgr.dtype == np.uint8
    assert grey.shape == (HEIGHT, WIDTH) and grey.dtype == np.uint8
    assert [f[2] for f in frames[:3]] == pytest.approx([0, 1 / 15, 2 / 15])


def run_capture(cfg: StreamConfig) -> tuple[list, list, float]:
    reader = make_reader(cfg)
    reader.open()
    frames, states = [], []
    stop = threading.Event()
    worker = CaptureWorker(reader, cfg, frames.append, lambda s, m: states.append(s), stop)
    t0 = time.perf_counter()
    worker.start()
    worker.join(20)
    return frames, states, time.perf_counter() - t0


def test_recorded_file_plays_at_native_rate(clip_path):
    """30 frames at 15 fps take about 2 s with --realtime, frames arrive on the source's schedule."""
    frames, states, elapsed = run_capture(config(str(clip_path), realtime=True))
    assert len(frames) == 30 and states[-1] is SourceState.ENDED
    assert 1.8 < elapsed < 3.5
    wall = np.array([f.captured_at for f in frames]) - frames[0].captured_at
    pts = np.array([f.pts_seconds for f in frames])
    np.testing.assert_allclose(pts, np.arange(30) / 15, atol=1e-6)
    # Each frame leaves no earlier than its time and (on a loaded 2-core box) not much later.
    assert (wall - pts).min() > -0.005 and np.median(wall - pts) < 0.1


def test_recorded_file_as_fast_as_possible(clip_path):
    frames, _, elapsed = run_capture(config(str(clip_path)))
    assert len(frames) == 30 and elapsed < 1.5


def test_max_frames_stops_capture(clip_path):
    frames, _, _ = run_capture(config(str(clip_path), max_frames=7))
    assert [f.index for f in frames] == list(range(7))


def test_timeline_never_runs_backwards_across_reconnections():
    tl = Timeline(fps=30)
    first = [tl.map(10.0 + i / 30) for i in range(5)]
    assert first == pytest.approx([i / 30 for i in range(5)])
    tl.new_segment(30)
    second = [tl.map(0.0 + i / 30) for i in range(3)]  # the sender restarted its clock
    assert second[0] > first[-1] and np.all(np.diff(second) > 0)
    assert tl.map(second[-1] - 100) > second[-1]  # a jump back inside a connection keeps order too


def test_image_folder_source(tmp_path):
    import cv2

    from tests.helpers.streaming import synthetic_frames

    frames = synthetic_frames(6, width=161, height=97)  # odd sizes: images have no 4:2:0 constraint
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), f)
    got, _, elapsed = run_capture(config(str(tmp_path), realtime=True, fps=20.0))
    assert [f.image.shape for f in got] == [(97, 161, 3)] * 6
    np.testing.assert_array_equal(got[2].image, frames[2])
    assert [f.pts_seconds for f in got] == pytest.approx([i / 20 for i in range(6)])
    assert 0.2 < elapsed < 1.5  # paced at the given 20 fps (5 intervals = 0.25 s)


def test_dicom_cine_source():
    pydicom_examples = pytest.importorskip("pydicom.examples")
    path = str(pydicom_examples.get_path("ybr_color"))  # a real 30-frame ultrasound cine, 320x240
    got, states, _ = run_capture(config(path))
    assert len(got) == 30 and got[0].image.shape == (240, 320, 3) and got[0].grey.shape == (240, 320)
    assert states[-1] is SourceState.ENDED
