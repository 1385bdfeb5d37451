"""Static int8 export (``usvid export --int8``): calibration on a store, the held-out check, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from usvid.cli.app import app

from tests.helpers.stores import make_store
from usvid.errors import ConfigError, InputError, ProcessingError
from usvid.inference import load_predictor
from usvid.inference.export import ExportConfig
from usvid.inference.export_onnx import OnnxExportConfig
from usvid.inference.quantize import Int8Config, compare_int8, quantize_int8

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

# Random tiny networks sit near ties everywhere, so the round trip tests lift the limits; the limits
# themselves are tested on constructed outputs below, and on a trained BUSI model in benchmarks/int8_check.py.
LOOSE = {"min_agreement": 1e-9, "min_mask_iou": 0.0}


@pytest.fixture(scope="module")
def store64(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("int8") / "store", labels=("benign", "malignant", "normal"))


def test_int8_export_is_quantized_loads_and_predicts(tiny_checkpoints, store64, tmp_path):
    out = tmp_path / "tiny.int8.onnx"
    res = quantize_int8(tiny_checkpoints["lanet_tiny"], out, Int8Config(calibration=store64.path,
                                                                        calibration_frames=16, **LOOSE))
    assert res.path == out and out.is_file()
    graph = onnx.load(str(out)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert int8_weights, "convolution weights should be stored as int8"
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["usvid.precision"] == "int8"
    r = res.report
    assert r.check_split == "val" and r.frames == 3 * 12  # one val video per class, 12 frames each
    assert 0.0 <= r.agreement_all <= 1.0 and r.mask_iou is not None
    assert r.accuracy_fp32 is not None and r.accuracy_int8 is not None  # the store's labels are the model's
    pred = load_predictor(out).predict(torch.randint(0, 256, (2, 1, 70, 90), dtype=torch.uint8))
    assert pred.probs.shape == (2, 3) and torch.allclose(pred.probs.sum(1), torch.ones(2), atol=1e-4)


def test_int8_outputs_stay_close_to_fp32(tiny_checkpoints, store64, tmp_path):
    res = quantize_int8(tiny_checkpoints["lanet_tiny"], tmp_path / "a.onnx",
                        Int8Config(calibration=store64.path, calibration_frames=24, **LOOSE))
    # Even for a random network, 8-bit ranges fitted on the same kind of frames keep probabilities close.
    assert res.report.max_prob_diff < 0.2 and res.report.mean_prob_diff < 0.05


def test_failed_check_writes_nothing(tiny_checkpoints, store64, tmp_path, monkeypatch):
    import usvid.inference.quantize as q

    real = q.run_onnx
    # The int8 model's answers with classes rotated: every decisive frame now disagrees.
    monkeypatch.setattr(q, "run_onnx", lambda path, x: (np.roll(real(path, x)[0], 1, axis=1), *real(path, x)[1:]))
    out = tmp_path / "bad.onnx"
    with pytest.raises(ProcessingError, match="not written"):
        quantize_int8(tiny_checkpoints["lanet_tiny"], out,
                      Int8Config(calibration=store64.path, calibration_frames=8, min_agreement=0.5))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _config() -> Int8Config:
    return Int8Config(calibration=Path("-"), min_agreement=0.98, min_mask_iou=0.9)


def test_compare_counts_only_decisive_frames_and_pools_mask_iou():
    probs = torch.tensor([[0.9, 0.1], [0.52, 0.48], [0.2, 0.8], [0.7, 0.3]])
    got = np.array([[0.85, 0.15], [0.47, 0.53], [0.25, 0.75], [0.45, 0.55]], np.float32)  # last one flips
    mask = torch.zeros(4, 1, 2, 2)
    mask[:, :, 0, 0] = 0.9
    got_mask = mask.numpy().copy()
    got_mask[0, 0, 1, 1] = 0.8  # one extra pixel: IoU 4 / 5
    r = compare_int8((probs, mask), (got, got_mask), [0, 0, 1, 0], _config(), "val")
    assert r.decisive == 3 and r.agreement == pytest.approx(2 / 3) and r.agreement_all == pytest.approx(2 / 4)
    assert r.mask_iou == pytest.approx(4 / 5)
    assert r.accuracy_fp32 == pytest.approx(1.0) and r.accuracy_int8 == pytest.approx(2 / 4)
    assert not r.passed
    same = compare_int8((probs, mask), (probs.numpy(), mask.numpy()), None, _config(), "val")
    assert same.passed and same.agreement == 1.0 and same.mask_iou == 1.0 and same.accuracy_fp32 is None
    # A near tie that flips is tolerated: only the 0.52/0.48 frame differs.
    tie = probs.numpy().copy()
    tie[1] = [0.49, 0.51]
    assert compare_int8((probs, mask), (tie, mask.numpy()), None, _config(), "val").passed


def test_store_without_check_split_is_a_clear_error(tiny_checkpoints, tmp_path):
    store = make_store(tmp_path / "s", splits={"train": 1})
    with pytest.raises(InputError, match="no frames in split val or test"):
        quantize_int8(tiny_checkpoints["lanet_tiny"], tmp_path / "x.onnx", Int8Config(calibration=store.path))
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"format": "tensorrt"}, "--format onnx"),
    ({"onnx": OnnxExportConfig(precision="fp16")}, "without --fp16"),
    ({"sample": Path("v.mp4")}, "drop --sample"),
])
def test_export_config_refuses_bad_int8_combinations(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ExportConfig(int8=Int8Config(calibration=Path("s")), **kwargs)


def test_export_config_holds_its_parts():
    config = ExportConfig(int8=Int8Config(calibration=Path("s"), calibration_frames=16))
    assert config.precision == "int8" and config.int8.calibration_frames == 16
    assert ExportConfig(format="tensorrt").precision == "fp32"  # fp16 only when asked, as for ONNX
    with pytest.raises(ConfigError, match="minmax, percentile or entropy"):  # checked by the part itself
        ExportConfig(int8=Int8Config(calibration=Path("s"), method="median"))


def test_cli_int8_errors_name_the_problem(tiny_checkpoints, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--int8", "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "needs --calibration" in res.output
    res = runner.invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--calibration", str(tmp_path),
                              "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "only applies with --int8" in res.output
    res = runner.invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--int8", "--calibration",
                              str(tmp_path / "nostore"), "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 2 and "nostore" in res.output and "frame store" in res.output
    assert not (tmp_path / "m.onnx").exists()
