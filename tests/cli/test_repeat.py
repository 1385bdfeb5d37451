"""`usvid repeat`: the study command parses its options into one library call and prints the table."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner
from usvid.cli.app import app

from usvid.training import repeat


def test_repeat_runs_the_study_with_its_options(tmp_path, monkeypatch):
    calls = {}

    def fake_repeat_runs(store, base, variants, seeds, out, *, positive, on_run):
        calls.update(store=store, base=base, variants=variants, seeds=seeds, out=out, positive=positive)
        result = repeat.StudyResult()
        for name in variants:
            row = {"seed": 0, "frame_accuracy": 0.5}
            on_run(name, 0, row)
            result.variants[name] = [row]
            result.summary[name] = {"frame_accuracy": (0.5, float("nan"))}
        return result

    monkeypatch.setattr(repeat, "repeat_runs", fake_repeat_runs)
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["repeat", str(tmp_path / "store"), "--study", "ablations", "--seeds", "2",
                                      "--out", str(out), "--depth", "50", "--epochs", "3", "--size", "64",
                                      "--device", "cpu", "--positive", "benign"])
    assert result.exit_code == 0, result.output
    assert calls["seeds"] == [0, 1] and calls["positive"] == "benign"
    assert set(calls["variants"]) == set(repeat.STUDIES["ablations"])
    assert calls["variants"]["no_cam"] == {"model": "lanet_r50", "use_cam": False}
    assert (calls["base"].epochs, calls["base"].size, calls["base"].device) == (3, 64, "cpu")
    assert "no_sam seed 0 done" in result.output and "| no_mam | 1 | 0.500 |" in result.output


def test_repeat_refuses_unknown_study_and_depth_in_one_line(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["repeat", str(tmp_path), "--study", "ablation", "--out", str(tmp_path / "o")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "ablations" in bad.output  # did you mean
    depth = runner.invoke(app, ["repeat", str(tmp_path), "--depth", "34", "--out", str(tmp_path / "o")])
    assert depth.exit_code != 0 and "--depth must be 18 or 50" in depth.output


def test_old_module_entry_points_to_the_command():
    proc = subprocess.run([sys.executable, "-m", "usvid.training.repeat", "x"], check=False,
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "usvid repeat" in proc.stderr
