"""TensorRT: clear errors without tensorrt or a GPU; cache key and sidecar; real builds only with both."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest
import torch

from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.inference.export import ExportConfig, export_model
from usvid.inference.metadata import ModelInfo
from usvid.inference.tensorrt_engine import (
    EngineRecord,
    TensorRTConfig,
    engine_cache_key,
    read_record,
    require_tensorrt,
    sidecar_path,
)
from usvid.preprocess import PreprocessConfig

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_trt = pytest.mark.skipif(not (HAS_TRT and torch.cuda.is_available()), reason="needs tensorrt and CUDA")


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed here")
def test_missing_tensorrt_message(tiny_checkpoints, tmp_path):
    with pytest.raises(MissingDependencyError, match=r"'tensorrt' is not installed.*pip install 'usvid\[tensorrt\]'"):
        require_tensorrt()
    out = tmp_path / "m.engine"
    with pytest.raises(MissingDependencyError, match="tensorrt"):
        export_model(tiny_checkpoints["lanet_tiny"], out, ExportConfig(format="tensorrt"))
    assert list(tmp_path.iterdir()) == []  # nothing exported before the check


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_missing_gpu_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # importable, but no GPU
    with pytest.raises(MissingDependencyError, match="NVIDIA GPU with CUDA"):
        require_tensorrt()


def test_cache_key_changes_with_every_component():
    base = ("abc123", "fp16", "10.3.0", "NVIDIA H100", 8, 8, (1, 256, 256))
    key = engine_cache_key(*base)
    assert key == engine_cache_key(*base)
    for i, other in enumerate(("abc124", "fp32", "10.4.0", "NVIDIA A100", 16, 4, (1, 512, 512))):
        changed = list(base)
        changed[i] = other
        assert engine_cache_key(*changed) != key, f"component {i} does not reach the key"


def test_sidecar_round_trip(tmp_path):
    info = ModelInfo(("benign", "malignant"), PreprocessConfig(size=256), {"arch": "lanet"}, "h", True)
    record = EngineRecord(info, "fp16", "10.3.0", "NVIDIA H100", 8, 8, "/x/model.fp16.onnx", "k")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    with pytest.raises(InputError, match="no sidecar m.engine.json"):
        read_record(engine)
    sidecar_path(engine).write_text(json.dumps(record.to_json()))
    assert read_record(engine) == record
    sidecar_path(engine).write_text(json.dumps({"precision": "fp16"}))
    with pytest.raises(InputError, match="incomplete"):
        read_record(engine)


def test_config_validation():
    assert TensorRTConfig(max_batch=32).optimal_batch == 8
    assert TensorRTConfig(max_batch=2, fp16=False).precision == "fp32"
    with pytest.raises(ConfigError, match="max-batch"):
        TensorRTConfig(max_batch=0)
    with pytest.raises(ConfigError, match="opt_batch"):
        TensorRTConfig(max_batch=4, opt_batch=8)
    with pytest.raises(ConfigError, match="format"):
        ExportConfig(format="tflite")


@needs_trt
@pytest.mark.gpu
def test_build_parity_cache_and_rebuild(tiny_checkpoints, tmp_path, monkeypatch):
    import usvid.inference.tensorrt_engine as trt_mod
    from usvid.inference import load_predictor

    monkeypatch.setenv("USVID_CACHE_DIR", str(tmp_path / "cache"))
    builds = []
    real_build = trt_mod.build_engine
    monkeypatch.setattr(trt_mod, "build_engine", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    out = tmp_path / "m.engine"
    config = ExportConfig(format="tensorrt", tensorrt=TensorRTConfig(fp16=True, max_batch=4))
    report = export_model(tiny_checkpoints["lanet_tiny"], out, config)
    assert report.parity.passed and out.is_file() and sidecar_path(out).is_file()
    export_model(tiny_checkpoints["lanet_tiny"], tmp_path / "again.engine",
                 config)
    assert len(builds) == 1  # the second export came from the cache
    frames = torch.randint(0, 256, (6, 1, 75, 121), dtype=torch.uint8)  # 6 > max_batch: runs in chunks
    ref = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").predict(frames)
    got = load_predictor(out).predict(frames)
    torch.testing.assert_close(got.probs, ref.probs, atol=2e-2, rtol=0)
    # an engine recorded for another GPU is rebuilt, not loaded
    data = json.loads(sidecar_path(out).read_text())
    data["gpu_name"] = "Some Other GPU"
    sidecar_path(out).write_text(json.dumps(data))
    load_predictor(out)
    assert read_record(out).gpu_name == torch.cuda.get_device_name()
