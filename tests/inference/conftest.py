"""Fixtures for the inference tests: tiny freshly initialised checkpoints, their ONNX exports, tiny videos."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tests.helpers.checkpoints import CLASSES, SIZE, TINY, make_checkpoint
from tests.helpers.videos import noise_frames, write_video
from usvid.video.testvideos import write_test_video


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    return {name: make_checkpoint(root / f"{name}.pt", name, CLASSES, size=SIZE, bn_stats=True)
            for name in TINY}


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
    root = tmp_path_factory.mktemp("videos")
    odd = write_test_video(root / "odd.mkv", width=99, height=73, num_frames=7, fps=15, kind="ultrasound",
                           codec="ffv1")
    ntsc = write_video(root / "ntsc.mp4", noise_frames(5, 96, 64), fps=Fraction(30000, 1001), preset=None)
    return {"odd": odd, "ntsc": ntsc}
