"""Fixtures for the CLI tests (checkpoint, store and clips: tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers.stores import one_thread


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # `usvid train` / `eval` run in this process: tiny convolutions are 10-30x slower with contending threads.
    with one_thread():
        yield
