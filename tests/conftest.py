"""Fixtures shared by all tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.stores import make_store
from tests.helpers.streaming import synthetic_frames
from tests.helpers.videos import write_video

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip when it is absent (users' clones)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device("cuda")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """A private usvid cache, and ``backend="auto"`` on the CPU kept at torch fp32 (no measuring, no export)
    for every test but those that switch it on (tests/inference/test_autoselect.py): most tests compare
    predictions with fp32 torch, and measuring each tiny model would cost seconds. Set in ``os.environ`` so
    CLI subprocesses inherit it."""
    saved = {k: os.environ.get(k) for k in ("USVID_CACHE_DIR", "USVID_AUTOSELECT")}
    os.environ["USVID_CACHE_DIR"] = str(tmp_path_factory.mktemp("usvid-cache"))
    os.environ["USVID_AUTOSELECT"] = "0"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pytest_collection_modifyitems(config, items):
    # Tests marked gpu skip cleanly on machines without CUDA, even if they forget the fixture.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A freshly initialised ``lanet_tiny`` (2 classes, 64 px input) saved as a usvid checkpoint. Shared: a test
    that changes it must work on a copy."""
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture
def tiny_store(tmp_path: Path):
    """A real 8-video frame store at 64 px (see tests/helpers/stores.py)."""
    return make_store(tmp_path / "store")


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory) -> Path:
    """A 30-frame, 2-second, 174x98 H.264 clip at 15 fps."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", synthetic_frames(30), fps=15)


@pytest.fixture(scope="session")
def long_clip_path(tmp_path_factory) -> Path:
    """A 150-frame, 5-second clip at 30 fps (long enough to signal a process mid-stream)."""
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", synthetic_frames(150, seed=1), fps=30)
