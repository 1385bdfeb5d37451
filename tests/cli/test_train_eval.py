"""`usvid train` and `usvid eval` through the Typer app: success paths, resume, one-line errors."""

from __future__ import annotations

import json
import shutil

import torch
from typer.testing import CliRunner
from usvid.cli.app import app

TINY = ["--model", "lanet_tiny", "--size", "64", "--stage1-epochs", "1", "--batch-size", "4", "--device", "cpu",
        "--num-workers", "0"]


def _clean_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_train_resume_and_eval(tiny_store, tmp_path):
    runner = CliRunner()
    run, out = tmp_path / "run", tmp_path / "eval"
    first = runner.invoke(app, ["train", str(tiny_store.path), "--out", str(run), "--epochs", "1", *TINY])
    assert first.exit_code == 0, first.output
    assert {"best.pt", "last.pt", "metrics.jsonl", "config.json"} <= {p.name for p in run.iterdir()}
    assert "val acc" in first.output and "best.pt" in first.output
    # Resume without repeating the original options: only the new epoch count.
    second = runner.invoke(app, ["train", str(tiny_store.path), "--out", str(run), "--epochs", "2", "--resume"])
    assert second.exit_code == 0, second.output
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [(json.loads(x)["stage"], json.loads(x)["epoch"]) for x in lines] == [(1, 1), (2, 1), (2, 2)]
    ev = runner.invoke(app, ["eval", str(run / "best.pt"), str(tiny_store.path), "--split", "test", "--out", str(out),
                             "--device", "cpu"])
    assert ev.exit_code == 0, ev.output
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "test" and "jsi_box" in report["frame_level"]
    assert (out / "report.md").is_file() and (out / "roc_frame.png").is_file() and (out / "gradcam.png").is_file()
    # Running train again into the same folder without --resume is refused.
    again = runner.invoke(app, ["train", str(tiny_store.path), "--out", str(run), "--epochs", "1", *TINY])
    _clean_error(again, 2, "already holds a training run")


def test_bad_input_gives_one_line_errors(tiny_store, tmp_path):
    runner = CliRunner()
    _clean_error(runner.invoke(app, ["train", str(tmp_path / "nostore"), "--out", str(tmp_path / "r"), *TINY]),
                 2, "frame store does not exist")
    not_a_store = tmp_path / "empty"
    not_a_store.mkdir()
    _clean_error(runner.invoke(app, ["train", str(not_a_store), "--out", str(tmp_path / "r"), *TINY]),
                 2, "not a finished frame store")
    old = tmp_path / "old_store"
    shutil.copytree(tiny_store.path, old)
    meta = json.loads((old / "store.json").read_text())
    (old / "store.json").write_text(json.dumps({**meta, "version": 99}))
    _clean_error(runner.invoke(app, ["train", str(old), "--out", str(tmp_path / "r"), *TINY]), 2, "version 99")
    _clean_error(runner.invoke(app, ["train", str(tiny_store.path), "--out", str(tmp_path / "r"),
                                     "--model", "lanet_r81", "--device", "cpu"]), 2, "lanet_r18")
    if not torch.cuda.is_available():
        _clean_error(runner.invoke(app, ["train", str(tiny_store.path), "--out", str(tmp_path / "r"), *TINY,
                                         "--device", "cuda"]), 2, "no CUDA device")
    _clean_error(runner.invoke(app, ["train", str(tiny_store.path), "--out", str(tmp_path / "r"), *TINY,
                                     "--size", "100"]), 2, "multiple of 32")
    _clean_error(runner.invoke(app, ["train", str(tiny_store.path), "--out", str(tmp_path / "r"), "--resume"]),
                 2, "no config.json here")
    _clean_error(runner.invoke(app, ["eval", str(tmp_path / "none.pt"), str(tiny_store.path), "--out",
                                     str(tmp_path / "e")]), 2, "checkpoint not found")


def test_train_recipe_under_config_file_under_flags(tiny_store, tmp_path):
    runner = CliRunner()
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"lr": 0.01, "label_smoothing": 0.2, "epochs": 1}))
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tiny_store.path), "--out", str(run), "--recipe", "finetune",
                                 "--config", str(options), *TINY, "--pretrained", "none", "--lr", "0.002",
                                 "--rrc-scale", "0.8,1", "--ema", "0.9", "--weight-decay", "0.05",
                                 "--warmup-epochs", "0.5", "--schedule-unit", "step", "--fex-lr-scale", "0.5"])
    assert result.exit_code == 0, result.output
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["lr"] == 0.002 and train["model"] == "lanet_tiny" and train["pretrained"] is None  # flags
    assert train["label_smoothing"] == 0.2 and train["epochs"] == 1  # the file, over the recipe
    assert train["optimizer"] == "adamw" and train["scheduler"] == "cosine"  # the recipe
    assert train["rrc_scale"] == [0.8, 1.0] and train["weight_ema_decay"] == 0.9 and train["fex_lr_scale"] == 0.5
    assert train["warmup_epochs"] == 0.5 and train["schedule_unit"] == "step" and train["weight_decay"] == 0.05


def test_bad_recipe_options_give_one_line_errors(tiny_store, tmp_path):
    runner = CliRunner()
    base = ["train", str(tiny_store.path), "--out", str(tmp_path / "r"), *TINY]
    _clean_error(runner.invoke(app, [*base, "--recipe", "fintune"]), 2, "Did you mean 'finetune'")
    _clean_error(runner.invoke(app, [*base, "--rrc-scale", "0.8"]), 2, "--rrc-scale: expected LOW,HIGH")
    _clean_error(runner.invoke(app, [*base, "--ema", "high"]), 2, "--weight-ema: expected a number")
    _clean_error(runner.invoke(app, [*base, "--optimizer", "sgd"]), 2, "unknown optimizer 'sgd'")
