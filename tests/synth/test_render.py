"""One rendered video: real container properties, truth that matches the pixels, determinism."""

from __future__ import annotations

import av
import numpy as np
import pytest

from usvid.boxes import Box
from usvid.errors import ConfigError, InputError
from usvid.synth import write_scan_video
from usvid.synth.scan import make_geometry


def _inside(box, region) -> bool:
    x, y, w, h = box
    rx, ry, rw, rh = region
    return w > 0 and h > 0 and rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize(("fps", "seconds", "frames"), [(30.0, 1.0, 30), (12.5, 2.0, 25)])
def test_container_properties(tmp_path, fps, seconds, frames):
    path = tmp_path / "odd.mp4"
    truth = write_scan_video(path, seconds=seconds, width=98, height=66, fps=fps, seed=1)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(fps)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames == truth.num_frames == len(truth.boxes)
    assert decoded[0].shape == (66, 98, 3)
    assert (truth.width, truth.height) == (98, 66)
    # Grey B-mode: the scan region has neutral colour.
    x, y, w, h = truth.scan_region
    region = decoded[0][y : y + h, x : x + w].astype(int)
    assert np.abs(region[..., 0] - region[..., 2]).mean() < 3


@pytest.mark.parametrize("shape", ["linear", "sector"])
@pytest.mark.parametrize("label", ["benign", "malignant"])
def test_truth_matches_pixels(tmp_path, decode_grey, label, shape):
    path = tmp_path / "v.mp4"
    truth = write_scan_video(path, label=label, width=160, height=120, seconds=1.0, seed=11, scan_shape=shape)
    frames = decode_grey(path).astype(np.float32)
    rx, ry, rw, rh = truth.scan_region
    assert 0 < len(truth.lesion_frames) < truth.num_frames, (
        "a lesion video shows the lesion in some, not all, frames"
    )
    for index in truth.lesion_frames:
        box = truth.boxes[index]
        # Whole frame pixels, as ints: ground_truth.json and annotations.json write them as integers.
        assert isinstance(box, Box) and all(isinstance(v, int) for v in (box.x, box.y, box.w, box.h))
        x, y, w, h = box.x, box.y, box.w, box.h
        assert _inside((x, y, w, h), (0, 0, 160, 120)) and _inside((x, y, w, h), truth.scan_region)
        # The lesion is hypoechoic: darker than a ring around it (which holds halo, capsule, enhancement).
        mx, my = max(2, w // 2), max(2, h // 2)
        x0, y0, x1, y1 = max(rx, x - mx), max(ry, y - my), min(rx + rw, x + w + mx), min(ry + rh, y + h + my)
        window, inner = frames[index, y0:y1, x0:x1], frames[index, y : y + h, x : x + w]
        ring = (window.sum() - inner.sum()) / (window.size - inner.size)
        assert inner.mean() < ring - 8, f"frame {index}: box {box} is not over a dark lesion"
    # What changes over time is the scan region (and the top bar's clock): the truth is where the image is.
    moving = frames.std(axis=0) > 6
    moving[: ry - 2] = False
    ys, xs = np.nonzero(moving)
    found = (int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min()))
    assert _inside((found[0] + 1, found[1] + 1, found[2] - 2, found[3] - 2), truth.scan_region), (
        found,
        truth,
    )
    if shape == "linear":
        assert np.abs(np.subtract(found, truth.scan_region)).max() <= 1, (found, truth.scan_region)
    else:  # the fan's deep corners are thin and dark, so less of the box moves
        assert found[2] >= 0.9 * rw and found[3] >= 0.9 * rh, (found, truth.scan_region)


@pytest.mark.parametrize("size", [(98, 66), (160, 120), (854, 500)])
def test_sector_fan_fills_its_region(size):
    for seed in range(5):
        geometry = make_geometry(*size, "sector", np.random.default_rng(seed))
        ys, xs = np.nonzero(geometry.fan_mask())
        x, y, w, h = geometry.region
        assert xs.min() <= 2 and ys.min() <= 2 and xs.max() >= w - 3 and ys.max() >= h - 2
        assert geometry.region[0] % 2 == geometry.region[1] % 2 == w % 2 == h % 2 == 0


def test_patient_field_is_burned_in_outside_the_scan_region(tmp_path, decode_grey):
    path = tmp_path / "v.mp4"
    truth = write_scan_video(path, width=160, height=120, seconds=0.5, seed=2, scan_shape="sector")
    x, y, w, h = truth.phi_region
    assert w > 20 and h > 3
    assert not _overlap(truth.phi_region, truth.scan_region)
    assert y + h <= truth.scan_region[1]
    frames = decode_grey(path)
    text = frames[:, y : y + h, x : x + w]
    assert text.max() > 150, "the patient field is drawn"
    assert np.ptp(text.astype(int), axis=0).max() <= 12, "the patient field is static"


def test_normal_video_has_no_lesion(tmp_path):
    truth = write_scan_video(tmp_path / "n.mp4", label="normal", seconds=0.5, seed=4)
    assert truth.lesion_frames == [] and len(truth.boxes) == 15


def test_same_seed_same_video(tmp_path, decode_grey):
    a = write_scan_video(tmp_path / "a.mp4", label="malignant", seconds=0.5, seed=9)
    b = write_scan_video(tmp_path / "b.mp4", label="malignant", seconds=0.5, seed=9)
    c = write_scan_video(tmp_path / "c.mp4", label="malignant", seconds=0.5, seed=10)
    assert a == b
    assert np.array_equal(decode_grey(tmp_path / "a.mp4"), decode_grey(tmp_path / "b.mp4"))
    assert not np.array_equal(decode_grey(tmp_path / "a.mp4"), decode_grey(tmp_path / "c.mp4"))
    assert a.boxes != c.boxes


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="unknown label 'bening'.*Did you mean 'benign'"):
        write_scan_video(tmp_path / "x.mp4", label="bening")
    with pytest.raises(ConfigError, match="unknown scan shape"):
        write_scan_video(tmp_path / "x.mp4", scan_shape="convex")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="width=97"):
        write_scan_video(tmp_path / "x.mp4", width=97)
    assert not (tmp_path / "x.mp4").exists()
