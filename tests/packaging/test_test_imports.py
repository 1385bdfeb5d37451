"""Test modules share builders through ``tests/helpers`` only: none imports another test module or a conftest.

Under ``--import-mode=importlib`` an import of a test module runs it a second time under another name (its
fixtures and module state doubled); a builder found only in some test module also gets copied next time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def cross_imports(source: str) -> list[str]:
    """The imports in ``source`` that reach a test module or conftest rather than ``tests.helpers``."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            bad.append(f"line {node.lineno}: relative import from {'.' * node.level}{node.module or ''}")
            continue
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "tests" and parts[1:2] != ["helpers"]:
                bad.append(f"line {node.lineno}: import of {name} (only tests.helpers is shared)")
            elif parts[-1] == "conftest" or parts[-1].startswith("test_"):
                bad.append(f"line {node.lineno}: import of {name} (a test module or conftest)")
    return bad


def test_no_test_module_imports_another():
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 50 and TESTS / "conftest.py" in files  # the scan sees the real tree
    bad = [f"{path.relative_to(TESTS)} {hit}" for path in files for hit in cross_imports(path.read_text())]
    assert not bad, "move the shared code to tests/helpers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "from .conftest import WIDTH\n",
        "from ..training.conftest import make_store\n",
        "from tests.training.conftest import SIZE\n",
        "from tests.video.test_roi import CLINICAL_UI\n",
        "import tests.streaming.test_network\n",
        "def f():\n    from conftest import x\n",
        "from test_sources import free_port\n",
    ],
)
def test_the_check_sees_each_kind_of_cross_import(source):
    assert cross_imports(source)


def test_the_check_allows_helpers_and_the_library():
    assert cross_imports("from tests.helpers.stores import make_store\nimport tests.helpers\n"
                               "from usvid.testing import x\nimport pytest\n") == []
