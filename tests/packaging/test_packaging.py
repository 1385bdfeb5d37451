"""The package installs in the user's layout: models/ and cli/ ship only as usvid.models and usvid.cli."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import usvid
from usvid.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("usvid-*.whl")
    return whl


def test_wheel_holds_only_the_usvid_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.startswith("usvid-")}
    assert top == {"usvid"}, f"unexpected top-level entries in the wheel: {top}"
    assert any(n.startswith("usvid/models/") for n in names)
    assert any(n.startswith("usvid/cli/") for n in names)
    assert "usvid/cli/app.py" in names


def test_no_code_imports_top_level_models_or_cli():
    pattern = re.compile(r"^\s*(from|import)\s+(models|cli)(\.|\s|$)", re.MULTILINE)
    offenders = []
    for folder in ("usvid", "models", "cli", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_version_flag_and_module_entry_point():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"usvid {usvid.__version__}"
    proc = subprocess.run([sys.executable, "-m", "usvid", "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f"usvid {usvid.__version__}"


def test_help_lists_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
