"""Fixtures for the inference tests: tiny freshly initialised checkpoints, their ONNX exports, tiny videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from usvid.models import create_model

from usvid.checkpoint import checkpoint_from_model, save_checkpoint
from usvid.preprocess import PreprocessConfig

CLASSES = ("benign", "malignant", "normal")
SIZE = 64  # network input; the tiny variants' mask is then 2x2
TINY = ("lanet_tiny", "rmtl_tiny", "resnet_tiny_cls")


def make_checkpoint(path: Path, name: str, seed: int = 0, size: int = SIZE) -> Path:
    torch.manual_seed(seed)
    model = create_model(name, num_classes=len(CLASSES))
    with torch.no_grad():  # non-trivial BN statistics, so eval-mode BN is not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    save_checkpoint(path, checkpoint_from_model(model.eval(), list(CLASSES), PreprocessConfig(size=size)))
    return path


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {name: make_checkpoint(root / f"{name}.pt", name) for name in TINY}


@pytest.fixture(scope="session")
def tiny_exports(tiny_checkpoints, tmp_path_factory):
    """fp32 ONNX exports of every tiny checkpoint, made once per session (an export takes seconds).

    ``lanet_tiny`` also gets two real-looking sample frames in its parity check.
    """
    from usvid.inference.export_onnx import export_onnx

    root = tmp_path_factory.mktemp("onnx")
    sample = torch.randint(0, 256, (2, 1, 57, 91), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    return {name: export_onnx(path, root / f"{name}.onnx", sample_frames=sample if name == "lanet_tiny" else None)
            for name, path in tiny_checkpoints.items()}


@pytest.fixture(scope="session")
def tiny_onnx(tiny_exports) -> dict[str, Path]:
    return {name: result.path for name, result in tiny_exports.items()}


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> dict[str, Path]:
    """An odd-sized lossless mkv (99x73, 15 fps, 7 frames) and an NTSC-rate mp4 (96x64, 30000/1001, 5 frames)."""
    from fractions import Fraction

    import av
    import numpy as np

    from usvid.video.testvideos import write_test_video

    root = tmp_path_factory.mktemp("videos")
    odd = write_test_video(root / "odd.mkv", width=99, height=73, num_frames=7, fps=15, kind="ultrasound",
                           codec="ffv1")
    ntsc = root / "ntsc.mp4"
    with av.open(str(ntsc), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(30000, 1001))
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(5):
            img = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return {"odd": odd, "ntsc": ntsc}
