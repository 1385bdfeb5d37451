"""What an extraction reports while it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractProgress:
    """Reported to the ``progress`` callback after every batch and when a video is finished or skipped."""

    video_id: str
    video_number: int
    num_videos: int
    frames_done: int
    frames_total: int
    finished: bool = False
    skipped: bool = False
    failed: bool = False




Progress = Callable[[ExtractProgress], None]
