"""`usvid export` builds one nested ExportConfig from its flags and an optional --config file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from usvid.cli.app import app

from usvid.errors import ProcessingError
from usvid.inference import export as export_module


@pytest.fixture
def captured(monkeypatch):
    seen = {}

    def fake_export(checkpoint, out, config):
        seen["config"] = config
        raise ProcessingError("stopped by the test")

    monkeypatch.setattr(export_module, "export_model", fake_export)
    return seen


def _run(*args: str):
    return CliRunner().invoke(app, ["export", "model.pt", "--out", "m.onnx", *args])


def test_flags_fill_each_part(captured):
    res = _run("--format", "tensorrt", "--fp16", "--max-batch", "4", "--opset", "19", "--workspace-mib", "512")
    assert "stopped by the test" in res.output, res.output
    config = captured["config"]
    assert config.format == "tensorrt" and config.precision == "fp16"
    assert (config.tensorrt.fp16, config.tensorrt.max_batch, config.tensorrt.workspace_mib) == (True, 4, 512)
    assert (config.onnx.opset, config.onnx.precision, config.int8) == (19, "fp16", None)
    _run("--int8", "--calibration", "store", "--calibration-frames", "16", "--calibration-method", "Entropy")
    int8 = captured["config"].int8
    assert (int8.calibration, int8.calibration_frames, int8.method) == (Path("store"), 16, "entropy")


def test_config_file_with_flags_over_it(captured, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"format": "tensorrt", "tensorrt": {"max_batch": 2, "workspace_mib": 256}}))
    _run("--config", str(path), "--max-batch", "6")
    config = captured["config"]
    assert (config.format, config.tensorrt.max_batch, config.tensorrt.workspace_mib) == ("tensorrt", 6, 256)
    path.write_text(json.dumps({"int8": {"calibration": "s"}}))
    _run("--config", str(path), "--calibration-frames", "8")
    assert (captured["config"].int8.calibration, captured["config"].int8.calibration_frames) == (Path("s"), 8)


def test_config_file_errors_name_the_file_and_key(captured, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"tensorrt": {"max_bacth": 2}}))
    res = _run("--config", str(path))
    assert res.exit_code == 2 and "unknown key 'tensorrt.max_bacth'" in res.output and "export.json" in res.output
    assert "Traceback" not in res.output and "config" not in captured
