"""Fixtures for the stream tests (doubles and feeds: tests/helpers/streaming.py; clips: tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers.streaming import FakePredictor


@pytest.fixture
def fake_predictor() -> FakePredictor:
    return FakePredictor()
