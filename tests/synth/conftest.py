"""A small synthetic dataset shared by the synth tests (rendered once per session, well under a second)."""

from __future__ import annotations

import json

import pytest

from tests.helpers.videos import decode_grey as _decode_grey
from usvid.synth import SynthConfig, SynthSummary, generate_dataset

# Odd, non-square sizes catch width/height swaps; 2 of 8 patients are lesion-free.
SMALL = SynthConfig(
    patients=8, seconds=1.0, width=160, height=120, box_fraction=0.1, seed=5, normal_fraction=0.25
)


@pytest.fixture(scope="session")
def decode_grey():
    """``decode_grey(path)``: all frames of a video as ``(N, H, W) uint8`` luma."""
    return _decode_grey


@pytest.fixture(scope="session")
def small_set(tmp_path_factory) -> tuple[SynthSummary, dict]:
    """The generated SMALL dataset and its parsed ground_truth.json."""
    summary = generate_dataset(tmp_path_factory.mktemp("synth") / "out", SMALL)
    return summary, json.loads(summary.ground_truth.read_text())
