"""What ``usvid synth`` generates: one frozen, validated configuration."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Literal

from usvid.errors import InputError

Label = Literal["benign", "malignant", "normal"]
LABELS: tuple[str, ...] = ("benign", "malignant", "normal")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

# Below this the chrome and the lesion no longer fit around a usable scan region.
MIN_WIDTH, MIN_HEIGHT = 64, 48


def _whole(name: str, value: Any, low: int, high: int | None = None, hint: str = "") -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise InputError(f"{name}={value!r}: must be a whole number {allowed}{hint}")


def _number(
    name: str, value: Any, low: float, high: float, *, low_open: bool = False, hint: str = ""
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    if not ok:
        allowed = f"{'>' if low_open else '>='} {low:g} and <= {high:g}"
        raise InputError(f"{name}={value!r}: must be a number {allowed}{hint}")


@dataclass(frozen=True)
class SynthConfig:
    """A synthetic MBUD-style scan set: ``patients`` patients with 1..``max_videos_per_patient`` videos each.

    Every patient has one label; lesion videos (``benign``/``malignant``) split the non-normal patients
    evenly, ``normal_fraction`` of the patients get lesion-free ``normal`` videos. About ``box_fraction`` of
    all frames carry a COCO annotation (mostly frames showing the lesion), like MBUD's 384 of 22,202.
    ``sector_fraction`` of the videos use a sector (convex) scan region, the others a linear one.
    ``crf``/``preset`` are the libx264 settings; they change file size and speed, not the content.
    """

    patients: int = 8
    seconds: float = 4.0
    width: int = 854
    height: int = 500
    fps: float = 30.0
    box_fraction: float = 0.02
    seed: int = 0
    normal_fraction: float = 0.0
    max_videos_per_patient: int = 3
    sector_fraction: float = 0.25
    crf: int = 23
    preset: str = "ultrafast"

    def __post_init__(self) -> None:
        _whole("patients", self.patients, 1, hint=", e.g. --patients 8")
        _number("seconds", self.seconds, 0.0, 3600.0, low_open=True, hint=", e.g. --seconds 4")
        size_hint = (
            f" (H.264 yuv420p needs even sizes of at least {MIN_WIDTH}x{MIN_HEIGHT}), e.g. --size 854x500"
        )
        for name, value, low in (("width", self.width, MIN_WIDTH), ("height", self.height, MIN_HEIGHT)):
            _whole(f"size {name}", value, low, 8192, hint=size_hint)
            if value % 2:
                raise InputError(f"size {name}={value}: must be even{size_hint}")
        _number("fps", self.fps, 0.0, 240.0, low_open=True, hint=" frames per second, e.g. --fps 30")
        _number("box_fraction", self.box_fraction, 0.0, 1.0, hint=", e.g. --box-fraction 0.02")
        _whole("seed", self.seed, 0, hint=", e.g. --seed 0")
        _number("normal_fraction", self.normal_fraction, 0.0, 1.0, hint=", e.g. --normal-fraction 0.2")
        _whole("max_videos_per_patient", self.max_videos_per_patient, 1, 10)
        _number("sector_fraction", self.sector_fraction, 0.0, 1.0)
        _whole("crf", self.crf, 0, 51)
        if self.preset not in X264_PRESETS:
            raise InputError(f"preset={self.preset!r}: must be one of {', '.join(X264_PRESETS)}")
        if self.num_frames < 1:
            raise InputError(
                f"seconds={self.seconds!r} at fps={self.fps!r} gives no frame; make seconds * fps at least 1"
            )

    @property
    def num_frames(self) -> int:
        """Frames per video: ``seconds * fps`` rounded half up (0.5 s at 25 fps is 13 frames)."""
        return math.floor(self.seconds * self.fps + 0.5)

    @property
    def frame_rate(self) -> Fraction:
        """``fps`` as the exact fraction the container stores (29.97 -> 2997/100)."""
        return Fraction(self.fps).limit_denominator(1001)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
