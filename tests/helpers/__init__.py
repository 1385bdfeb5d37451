"""Builders shared by the tests, each defined once: checkpoints, videos, frame stores, datasets, stream fakes.

Conftests wrap them in fixtures; test modules import them from here (``from tests.helpers.videos import
write_video``), never from another test module or a conftest (``tests/packaging/test_test_imports.py``).
"""
