"""Fixtures shared by all tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
    from usvid.checkpoint import checkpoint_from_model, save_checkpoint
    from usvid.models import create_model
    from usvid.preprocess import PreprocessConfig

    torch.manual_seed(0)
    model = create_model("lanet_tiny", num_classes=2)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, checkpoint_from_model(model, ["benign", "malignant"], PreprocessConfig(size=64)))
    return path
