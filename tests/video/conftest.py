"""Tiny test videos, written once per session with PyAV (see usvid.video.testvideos for the recipes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from usvid.video.testvideos import write_frame_folder, write_test_video

# name -> (file name, write_test_video options); odd, non-square sizes so H/W swaps fail loudly.
VIDEOS = {
    "plain": ("plain.mp4", dict(width=94, height=62, num_frames=24)),
    "bframes": ("bframes.mp4", dict(width=94, height=62, num_frames=40, bframes=3, gop=10)),
    "vfr": ("vfr.mp4", dict(width=94, height=62, num_frames=30, bframes=2, vfr=True)),
    "odd": ("odd.mkv", dict(width=71, height=45, num_frames=20, codec="ffv1")),
    "mpeg4": ("mpeg4.mp4", dict(width=94, height=62, num_frames=24, codec="mpeg4", bframes=2)),
    "colour": ("colour.mkv", dict(width=33, height=21, num_frames=6, codec="ffv1", colour=True)),
}


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for file, options in VIDEOS.values():
        write_test_video(root / file, **options)
    write_test_video(root / "ultrasound.mp4", kind="ultrasound", width=150, height=98, num_frames=30)
    write_frame_folder(root / "frames", width=75, height=52, num_frames=12)
    return root


@pytest.fixture(scope="session")
def videos(video_dir) -> dict[str, Path]:
    return {name: video_dir / file for name, (file, _) in VIDEOS.items()}
