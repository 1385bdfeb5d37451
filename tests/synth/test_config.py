"""SynthConfig: the documented defaults, and bad values rejected with the argument's name."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from usvid.errors import InputError
from usvid.synth import SynthConfig


def test_defaults_match_mbud_shape():
    c = SynthConfig()
    assert (c.patients, c.seconds, c.width, c.height, c.fps) == (8, 4.0, 854, 500, 30.0)
    assert (c.box_fraction, c.seed, c.normal_fraction) == (0.02, 0, 0.0)
    assert c.num_frames == 120 and c.frame_rate == 30


def test_frame_count_and_rate():
    c = SynthConfig(seconds=0.5, fps=29.97)
    assert c.num_frames == 15
    assert c.frame_rate == Fraction(2997, 100)
    assert SynthConfig(seconds=0.5, fps=25).num_frames == 13
    assert SynthConfig(seconds=0.1, fps=30).num_frames == 3


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SynthConfig().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": -2}, "width=-2"),
        ({"height": 0}, "height=0"),
        ({"width": 99}, "width=99: must be even"),
        ({"height": 40}, "height=40"),
        ({"fps": 0}, "fps=0"),
        ({"fps": -30.0}, "fps=-30.0"),
        ({"fps": float("nan")}, "fps=nan"),
        ({"seconds": 0}, "seconds=0"),
        ({"seconds": 0.01}, "gives no frame"),
        ({"patients": 0}, "patients=0"),
        ({"patients": 2.5}, "patients=2.5"),
        ({"box_fraction": 1.5}, "box_fraction=1.5"),
        ({"normal_fraction": -0.1}, "normal_fraction=-0.1"),
        ({"seed": -1}, "seed=-1"),
        ({"preset": "quick"}, "preset='quick'"),
    ],
)
def test_bad_values_name_the_argument(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        SynthConfig(**kwargs)
