"""Fixtures for training/eval tests: tiny real frame stores and configs (built by tests/helpers/stores.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.stores import make_store, one_thread, tiny_config


@pytest.fixture
def store_factory(tmp_path: Path):
    counter = iter(range(1000))

    def factory(**kwargs):
        return make_store(tmp_path / f"store{next(counter)}", **kwargs)

    return factory


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture
def config_factory():
    return tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, _one_thread):
    """One finished tiny run shared by a test module: (store, FitResult)."""
    from usvid.training.loop import fit

    root = tmp_path_factory.mktemp("trained")
    store = make_store(root / "store")
    return store, fit(tiny_config(), store, root / "run")
