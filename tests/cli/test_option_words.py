"""The same option means the same thing in every command: device, smoothing, threshold, scan region, workers.

Each command's library call is replaced by a recorder, so these check what the CLI builds, not the work.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from usvid.cli.app import app

runner = CliRunner()


class Called(Exception):
    pass


@pytest.fixture()
def record(monkeypatch):
    seen = {}

    def fake(name):
        def call(*args, **kwargs):
            seen[name] = (args, kwargs)
            raise Called  # stop before any work; handle_errors lets it through as a non-zero exit
        return call

    import usvid.inference.predict as predict_lib
    import usvid.streaming as streaming

    monkeypatch.setattr(predict_lib, "predict_videos", fake("predict"))
    monkeypatch.setattr(streaming, "run_stream", fake("stream"))
    return seen


def _predict_config(seen, *flags):
    runner.invoke(app, ["predict", "scan.mp4", "--model", "m.onnx", "--out", "o", *flags])
    return seen["predict"][0][3]


def _stream_config(seen, *flags):
    runner.invoke(app, ["stream", "scan.mp4", "--model", "m.onnx", *flags])
    return seen["stream"][0][0]


def test_predict_with_no_flags_is_the_python_default(record):
    from usvid.inference.predict import PredictConfig

    assert _predict_config(record) == PredictConfig()  # scan region detected, no smoothing, device auto
    assert PredictConfig().region.detect and PredictConfig().region.roi is None


def test_stream_with_no_flags_is_the_python_default(record):
    from usvid.streaming import StreamConfig

    assert _stream_config(record) == StreamConfig(source="scan.mp4", model="m.onnx")


def test_predict_and_stream_share_device_smoothing_threshold_and_scan_region(record):
    predict, stream = _predict_config(record), _stream_config(record)
    for field in ("device", "smoothing", "smoothing_tau_s", "threshold", "region"):
        assert getattr(predict, field) == getattr(stream, field), field
    assert (predict.device, predict.smoothing, predict.region.detect) == ("auto", False, True)
    flags = ("--smoothing", "--smoothing-tau", "0.4", "--threshold", "0.7", "--full-frame", "--device", "cpu")
    predict, stream = _predict_config(record, *flags), _stream_config(record, *flags)
    for config in (predict, stream):
        assert (config.smoothing, config.smoothing_tau_s, config.threshold, config.region.detect, config.device) == (
            True, 0.4, 0.7, False, "cpu")


def test_the_older_predict_smooth_still_works(record):
    config = _predict_config(record, "--smooth", "0.3")
    assert (config.smoothing, config.smoothing_alpha) == (True, 0.3)


def test_auto_device_means_the_cpu_without_cuda():
    import torch

    from usvid.inference.predictor import resolve_device

    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_train_takes_workers_and_the_older_num_workers(monkeypatch, tmp_path):
    import usvid.training.checkpointing as checkpointing

    given = []

    def fake_resolve(out, options, **kwargs):
        given.append(options)
        raise Called

    monkeypatch.setattr(checkpointing, "resolve_config", fake_resolve)
    store = tmp_path / "store"
    store.mkdir()
    for flag in ("--workers", "--num-workers"):
        runner.invoke(app, ["train", str(store), "--out", str(tmp_path / "run"), flag, "3"])
    assert [g["num_workers"] for g in given] == [3, 3]
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
    assert "--workers" in help_text and "--num-workers" not in help_text  # the old name works, unlisted


def test_train_help_defaults_are_the_training_defaults():
    import typer

    from usvid.training.config import TrainConfig

    defaults = TrainConfig()
    params = {p.name: p for p in typer.main.get_command(app).commands["train"].params}
    checked = 0
    for name, param in params.items():
        if isinstance(param.show_default, str) and hasattr(defaults, name):
            value = getattr(defaults, name)
            if value is None:  # "none", or words for a default decided at run time ("0 on the CPU, 2 on CUDA")
                assert not re.fullmatch(r"[\d.e+-]+", param.show_default), name
            else:
                assert param.show_default == str(value), name
            checked += 1
    assert checked >= 15
    text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output
    assert "Stage-1 (localisation) epochs [t_l]" in text and "see `usvid models`" in text
    assert "list_models()" not in text


def test_the_model_default_shown_is_the_shipped_default():
    from usvid.cli.common import MODEL_DEFAULT
    from usvid.shipped import DEFAULT_MODEL

    assert MODEL_DEFAULT.split()[0] == DEFAULT_MODEL


@pytest.mark.parametrize("command", ["predict", "stream"])
def test_smoothing_reads_the_same_in_predict_and_stream(command):
    text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"}).output
    line = next(ln for ln in text.splitlines() if re.search(r"--smoothing\s+--no-smoothing", ln))
    assert "[default: no-smoothing]" in line
    tau = next(ln for ln in text.splitlines() if "--smoothing-tau" in ln)
    assert "[default: 0.15]" in tau
    for option in ("--threshold", "--detect-roi", "--full-frame", "--device"):
        assert option in text
    assert "--smooth " not in text  # the older spelling works but is not listed
