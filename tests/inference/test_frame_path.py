"""The frame a network sees in deployment is the frame it was trained and scored on, bit for bit.

Extraction's own per-video code (``StoredFrames``: crop, letterbox, blank, range) stores ``S x S`` frames; training
reads them and resizes ``S -> M`` (:class:`TrainAugment`, :func:`preprocess`); a predictor gets the decoded
frames and the scan region. For the same decoded frames both must give the same uint8 ``S``-frames and the same
network input, for ``S = M`` and ``S != M``, on synthetic scans and on real clinical clips.

Before the shared path (today's extraction against the former inference geometry, on the four frames of the
854x500 synthetic scan below with a 600x420 elliptical region): at S = M = 256, 3,578 of 262,144 stored pixels
differed, by up to 228 grey levels, all along the region's edge (1,547 of 65,536 at 128); with a rectangular
region, the network inputs differed by a mean 0.031 (max 0.45) at S = 128, M = 256 and by a mean 0.067 (max 0.68)
at S = 256, M = 512. After: none, the tests below.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from usvid.checkpoint import checkpoint_from_model, load_checkpoint, save_checkpoint
from usvid.data.extract import ExtractConfig
from usvid.data.extract.frames import StoredFrames
from usvid.data.sources import SourceItem
from usvid.errors import ConfigError
from usvid.inference.geometry import network_frames
from usvid.inference.torch_backend import TorchPredictor
from usvid.models import create_model
from usvid.preprocess import PreprocessConfig
from usvid.training.augment import TrainAugment
from usvid.training.config import TrainConfig
from usvid.video.reader import GreyFrame, open_video
from usvid.video.roi import ScanRegion, full_frame_region, scan_region_of
from usvid.video.testvideos import write_test_video

OFF = dict(rotation_degrees=0.0, hflip_p=0.0, vflip_p=0.0, brightness=0.0, contrast=0.0)
# (S, M): store side and network side; S != M both ways.
PATHS = [(128, 128), (128, 256), (160, 96)]


class _Frames:
    """Stands in for extraction's .npy writer: keeps what would be written."""

    def __init__(self) -> None:
        self.written: list[np.ndarray] = []

    def append(self, frames: np.ndarray) -> None:
        self.written.append(frames.copy())


def extracted(frames: np.ndarray, region: ScanRegion, size: int, limited_range: bool = False) -> np.ndarray:
    """``(T, H, W)`` uint8 decoded frames -> ``(T, S, S)`` uint8 exactly as ``usvid extract`` stores them."""
    item = SourceItem("v", "p", "benign", Path("v.mp4"), "test")
    stored = StoredFrames(item, "train", region, ExtractConfig(size=size, batch_size=3))
    writer = _Frames()
    for i, grey in enumerate(frames):
        stored.take(writer, GreyFrame(i, i / 25, grey, limited_range))
    stored.flush(writer)
    return np.concatenate(writer.written)


def predictor_for(tmp_path: Path, store_size: int | None, size: int) -> TorchPredictor:
    torch.manual_seed(0)
    model = create_model("lanet_tiny", num_classes=2).eval()
    path = tmp_path / f"s{store_size}_m{size}.pt"
    save_checkpoint(path, checkpoint_from_model(model, ["benign", "malignant"],
                                                PreprocessConfig(size=size, store_size=store_size)))
    return TorchPredictor.from_checkpoint(path, "cpu")


def trained_input(stored: np.ndarray, predictor: TorchPredictor) -> torch.Tensor:
    """Training's network input for stored frames (augmentation off), at the checkpoint's M."""
    pre = predictor.info.preprocess
    images = torch.from_numpy(stored)[:, None]
    augment = TrainAugment(TrainConfig(size=pre.size, **OFF), pre)
    return augment(images, torch.zeros_like(images))[0]


def check_same_path(frames: np.ndarray, region: ScanRegion, predictor: TorchPredictor) -> None:
    """Stored frames == predictor's S-frames, and training's input == predictor's input, exactly."""
    pre = predictor.info.preprocess
    stored = extracted(frames, region, pre.frame_size)
    roi = region
    batch = torch.from_numpy(frames)[:, None]
    seen = network_frames(batch, roi, pre.frame_size)[:, 0].numpy()  # what predictors letterbox
    differ = int((seen != stored).sum())
    assert differ == 0, f"{differ} stored pixels differ, by up to {np.abs(seen.astype(int) - stored).max()}"
    x = predictor._prepare(batch, roi)
    assert x.shape == (len(frames), 1, pre.size, pre.size)
    assert torch.equal(x, trained_input(stored, predictor))


def elliptical_region(width: int = 854, height: int = 500) -> ScanRegion:
    mask = np.zeros((420, 600), np.uint8)
    cv2.ellipse(mask, (300, 210), (300, 210), 0, 0, 360, 1, -1)
    return ScanRegion((width - 600) // 2, 40, 600, 420, mask)


@pytest.fixture(scope="module")
def scan_frames(tmp_path_factory) -> np.ndarray:
    """Four decoded frames of an 854x500 ultrasound-like synthetic H.264 scan, ``(4, 500, 854)`` uint8."""
    path = write_test_video(tmp_path_factory.mktemp("scan") / "scan.mp4", width=854, height=500, num_frames=4,
                            kind="ultrasound")
    with open_video(path) as reader:
        return np.stack([f.grey.copy() for f in reader.grey_frames()])


@pytest.mark.parametrize(("store_size", "size"), PATHS)
@pytest.mark.parametrize("masked", [True, False], ids=["elliptical", "rectangle"])
def test_synthetic_scan_same_pixels_stored_and_deployed(scan_frames, tmp_path, store_size, size, masked):
    region = elliptical_region() if masked else ScanRegion(127, 40, 600, 420, np.ones((420, 600), np.uint8))
    check_same_path(scan_frames, region, predictor_for(tmp_path, store_size, size))


def test_blanked_pixels_are_zero_and_the_rest_untouched(scan_frames):
    region = elliptical_region()
    stored = extracted(scan_frames, region, 128)
    plain = extracted(scan_frames, ScanRegion(region.x, region.y, region.w, region.h,
                                              np.ones_like(region.mask)), 128)
    blanked = (stored == 0) & (plain != 0)
    # The corners outside the ellipse are blanked, the centre not, and no kept pixel changed.
    assert blanked[:, 20, 20].all() and not blanked[:, 64, 64].any()
    assert np.array_equal(stored[~blanked], plain[~blanked])


def test_whole_frame_without_roi_is_the_full_frame_region(scan_frames, tmp_path):
    predictor = predictor_for(tmp_path, 128, 256)
    stored = extracted(scan_frames, full_frame_region(854, 500), 128)
    x = predictor._prepare(torch.from_numpy(scan_frames)[:, None], None)
    assert torch.equal(x, trained_input(stored, predictor))


def test_predictor_follows_the_recorded_store_size(scan_frames, tmp_path):
    """S != M really takes the S path: letterboxing straight to M gives another input."""
    frames = torch.from_numpy(scan_frames)[:, None]
    via_store = predictor_for(tmp_path, 128, 256)._prepare(frames, None)
    direct = predictor_for(tmp_path, 256, 256)._prepare(frames, None)
    assert via_store.shape == direct.shape == (4, 1, 256, 256)
    assert float((via_store - direct).abs().mean()) > 1e-3


def test_checkpoint_and_onnx_metadata_record_the_store_size(tmp_path):
    from usvid.inference.metadata import ModelInfo

    predictor = predictor_for(tmp_path, 128, 256)
    assert load_checkpoint(tmp_path / "s128_m256.pt").preprocess == PreprocessConfig(size=256, store_size=128)
    back = ModelInfo.from_metadata(predictor.info.to_metadata(), "model.onnx")
    assert back.preprocess.store_size == 128 and back.preprocess.frame_size == 128


def test_old_checkpoint_without_store_size_keeps_letterboxing_to_m_and_warns_once(scan_frames, tmp_path, caplog):
    torch.manual_seed(0)
    model = create_model("lanet_tiny", num_classes=2).eval()
    path = tmp_path / "old.pt"
    ckpt = checkpoint_from_model(model, ["benign", "malignant"], PreprocessConfig(size=128))
    save_checkpoint(path, ckpt)
    payload = torch.load(path, weights_only=True)
    assert "store_size" in payload["preprocess"]
    # What versions before the record wrote: no store_size in the preprocessing entry.
    del payload["preprocess"]["store_size"]
    from usvid.checkpoint import INTEGRITY, payload_hash

    payload[INTEGRITY] = {"sha256": payload_hash(payload)}
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING, logger="usvid.preprocess"):
        old = TorchPredictor.from_checkpoint(path, "cpu")
        TorchPredictor.from_checkpoint(path, "cpu")
    warned = [r for r in caplog.records if "frame-store size" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0].getMessage()
    assert old.info.preprocess.store_size is None and old.info.preprocess.frame_size == 128
    # Today's behaviour: letterboxed straight to M, i.e. the S = M path.
    check_same_path(scan_frames, elliptical_region(), old)


def test_store_size_must_be_positive():
    with pytest.raises(ConfigError, match="store size must be a positive whole number"):
        PreprocessConfig(size=64, store_size=0)


@pytest.mark.realdata
def test_clinical_clips_same_pixels_stored_and_deployed(shared_data, tmp_path):
    clips = sorted((shared_data / "videos" / "clinical-ui").glob("*.m*"))
    if not clips:
        pytest.skip("no clinical-ui clips")
    predictors = [predictor_for(tmp_path, s, m) for s, m in PATHS]
    masked = 0
    for clip in clips:
        region = scan_region_of(clip)  # extraction's own detection
        masked += region.blanks
        with open_video(clip) as reader:
            frames = []
            for f in reader.grey_frames():
                frames.append(f.grey.copy())
                if len(frames) == 3:
                    break
        frames = np.stack(frames)
        for predictor in predictors:
            check_same_path(frames, region, predictor)
    assert masked, "no clip gave a blanking region: the masked path went untested"


@pytest.mark.realdata
def test_clinical_raw_luma_extraction_differs_by_rounding_only(shared_data):
    """``usvid extract`` expands limited-range luma after letterboxing (cheaper); predictors get full-range frames.

    The two orders agree up to rounding, which the range gain (255/219) can take to 2 grey levels.
    """
    clip = shared_data / "videos" / "clinical-ui" / "echo-with-borders.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not available")
    region = scan_region_of(clip)
    with open_video(clip) as reader:
        raw = next(iter(reader.grey_frames(raw_luma=True)))
        assert raw.limited_range
        raw = raw.grey.copy()[None]
    with open_video(clip) as reader:
        full = next(iter(reader.grey_frames())).grey.copy()[None]
    stored = extracted(raw, region, 128, limited_range=True).astype(int)
    deployed = extracted(full, region, 128).astype(int)
    assert np.abs(stored - deployed).max() <= 2


@pytest.mark.parametrize(("store_size", "size"), [(256, 320), (320, 256), (256, 256)])
@pytest.mark.parametrize("region", [ScanRegion(127, 40, 600, 420), ScanRegion(200, 10, 300, 480)], ids=["wide", "tall"])
def test_lesion_box_maps_back_to_frame_pixels_when_s_differs_from_m(store_size, size, region):
    """A mask with a known box, through the deployed geometry (letterbox to S, resize S -> M), maps back to
    that box in frame pixels within 2 px, also when the store side S is not the network side M."""
    from usvid.inference.postprocess import mask_to_box
    from usvid.preprocess import preprocess

    truth = (300, 150, 120, 90)  # x, y, w, h in frame pixels, inside both regions
    x, y, w, h = truth
    frame = np.zeros((1, 500, 854), np.uint8)
    frame[0, y : y + h, x : x + w] = 255
    stored = region.letterbox(store_size).frames(frame)  # (1, S, S): what the network's input is made from
    net = preprocess(torch.from_numpy(stored)[:, None], PreprocessConfig(size=size, store_size=store_size))
    mask = net[0, 0].numpy()  # (M, M) in [0, 1]: a network mask that is exactly the lesion
    box = mask_to_box(mask, (854, 500), region, 0.5, input_size=size)
    assert box is not None
    got = (box.x, box.y, box.w, box.h)
    assert max(abs(a - b) for a, b in zip(got, truth)) <= 2, (got, truth)
