"""Fixtures for the data tests: a manifest of tiny 'ultrasound' videos with sparse boxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.datasets import make_dataset


@pytest.fixture
def dataset(tmp_path) -> Path:
    return make_dataset(tmp_path / "ds")
