"""``usvid synth``: a working run, and bad input as one line with exit code 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner
from usvid.cli.app import app

from usvid.data.manifest import load_dataset

runner = CliRunner()


def test_synth_writes_a_dataset(tmp_path):
    out = tmp_path / "out"
    args = ["synth", str(out), "--patients", "2", "--seconds", "0.5", "--size", "98x66", "--fps", "20"]
    result = runner.invoke(app, [*args, "--box-fraction", "0.25", "--seed", "7", "--normal-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    assert "manifest" in result.output and "annotations" in result.output
    dataset = load_dataset(out)
    assert sorted({v.label for v in dataset.videos}) in (["benign", "normal"], ["malignant", "normal"])
    assert sum(len(frames) for frames in dataset.boxes.values()) == round(0.25 * 10 * len(dataset.videos))


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--size", "-4x10"], "--size"),
        (["--size=-4x10"], "--size"),
        (["--size", "99x66"], "width"),
        (["--size", "big"], "--size"),
        (["--fps", "0"], "fps"),
        (["--patients", "-1"], "patients"),
        (["--seconds", "-2"], "seconds"),
        (["--box-fraction", "1.5"], "box_fraction"),
        (["--seed", "-3"], "seed"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, names):
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert names in lines[0]
    assert not (tmp_path / "out").exists(), "nothing is written for a bad argument"


def test_unwritable_output_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = runner.invoke(app, ["synth", str(blocker / "out"), "--seconds", "0.2", "--size", "98x66"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "OUT" in lines[0] and "Traceback" not in result.output


def test_typer_rejects_non_numbers_with_exit_2(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), "--fps", "fast"])
    assert result.exit_code == 2 and "Traceback" not in result.output
