"""A small synthetic dataset shared by the synth tests (rendered once per session, well under a second)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from usvid.synth import SynthConfig, SynthSummary, generate_dataset

# Odd, non-square sizes catch width/height swaps; 2 of 8 patients are lesion-free.
SMALL = SynthConfig(
    patients=8, seconds=1.0, width=160, height=120, box_fraction=0.1, seed=5, normal_fraction=0.25
)


def _decode_grey(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


@pytest.fixture(scope="session")
def decode_grey():
    """``decode_grey(path)``: all frames of a video as ``(N, H, W) uint8`` luma (test files cannot import
    helpers from each other under ``--import-mode=importlib``)."""
    return _decode_grey


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> tuple[SynthSummary, dict]:
    """The generated SMALL dataset and its parsed ground_truth.json."""
    summary = generate_dataset(tmp_path_factory.mktemp("synth") / "out", SMALL)
    return summary, json.loads(summary.ground_truth.read_text())
