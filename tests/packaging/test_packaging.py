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


def test_wheel_carries_the_shipped_model_files_unchanged(wheel):
    import hashlib
    import json

    card = json.loads((ROOT / "usvid" / "weights" / "lanet-effl0-bus" / "model.json").read_text())
    with zipfile.ZipFile(wheel) as z:
        assert "usvid/weights/lanet-effl0-bus/model.json" in z.namelist()
        for name, entry in card["files"].items():
            data = z.read(f"usvid/weights/lanet-effl0-bus/{name}")
            assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])


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


PIPELINE = ["synth", "extract", "train", "eval", "repeat", "export", "predict", "stream", "models", "demo"]


def _help(*args: str) -> str:
    # Wide, so every option's help and default sit on its own line.
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "500"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_the_commands_in_pipeline_order():
    listed = [line.split()[1] for line in _help().splitlines()
              if line.startswith("│ ") and len(line.split()) > 1 and line.split()[1] in PIPELINE]
    assert listed == PIPELINE


@pytest.mark.parametrize("command", PIPELINE)
def test_help_shows_flags_as_flags_upper_case_names_and_every_default(command):
    import typer

    text = _help(command)
    assert re.search(r"<(bool|str|int|float|path|list\[\w+\])>", text) is None, text  # typer's value types
    assert "{" not in text, text  # typer's {NAME} around required arguments in the usage line
    lines = text.splitlines()
    params = typer.main.get_command(app).commands[command].params
    for param in params:
        if param.param_type_name == "argument":
            assert param.metavar and param.metavar == param.metavar.upper(), param.name
            continue
        if param.hidden:
            continue
        name = next(o for o in param.opts if o.startswith("--"))
        (line,) = [ln for ln in lines if re.match(rf"[│ *]*{re.escape(name)}[ ,]", ln)]
        expected = "[required]" if param.required else "[default: "
        assert expected in line, f"usvid {command} {name}: no {expected} in its help: {line}"
