"""ONNX export: checker, dynamic batch, parity with PyTorch, embedded metadata, failure paths."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.helpers.checkpoints import CLASSES, SIZE
from usvid.checkpoint import load_checkpoint
from usvid.errors import ConfigError, InputError, ProcessingError
from usvid.inference.export_onnx import (
    OnnxExportConfig,
    ParityReport,
    compare_outputs,
    export_onnx,
    read_onnx_info,
)
from usvid.inference.metadata import ModelInfo, model_hash
from usvid.inference.torch_backend import InferenceModel
from usvid.preprocess import PreprocessConfig


def _torch_vs_ort(ckpt_path, onnx_path, batch: int, seed: int):
    ckpt = load_checkpoint(ckpt_path)
    module = InferenceModel(ckpt.build_model())
    x = torch.rand(batch, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        ref = [t.numpy() for t in module(x)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})
    return ref, got


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls"])
def test_export_checker_and_parity(name, tiny_checkpoints, tiny_exports):
    out = tiny_exports[name]
    model = onnx.load(str(out.path))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert out.parity is not None and out.parity.passed
    assert out.parity.frames == (3 + 2 if name == "lanet_tiny" else 3)  # random + sample frames
    # independent check, on batch sizes the export never saw
    for batch in (1, 5):
        ref, got = _torch_vs_ort(tiny_checkpoints[name], out.path, batch, seed=batch)
        assert len(ref) == len(got) == (1 if name == "resnet_tiny_cls" else 2)
        assert got[0].shape == (batch, len(CLASSES))
        np.testing.assert_allclose(got[0], ref[0], atol=1e-4, rtol=0)
        np.testing.assert_allclose(got[0].sum(1), 1.0, atol=1e-5)
        if len(ref) > 1:
            assert got[1].shape == (batch, 1, SIZE // 32, SIZE // 32)
            np.testing.assert_allclose(got[1], ref[1], atol=1e-4, rtol=0)


def test_metadata_embedded_and_read_back(tiny_checkpoints, tiny_onnx):
    ckpt = load_checkpoint(tiny_checkpoints["lanet_tiny"])
    info = read_onnx_info(tiny_onnx["lanet_tiny"])
    assert info.class_names == CLASSES
    assert info.preprocess == PreprocessConfig(size=SIZE)
    assert info.model_config == ckpt.model_config
    assert info.model_hash == model_hash(ckpt.model_config, ckpt.state_dict)
    assert info.has_mask is True
    assert read_onnx_info(tiny_onnx["resnet_tiny_cls"]).has_mask is False
    props = {p.key: p.value for p in onnx.load(str(tiny_onnx["lanet_tiny"])).metadata_props}
    assert props["usvid.precision"] == "fp32"
    assert "letterbox" in props["usvid.input_geometry"]
    assert props["usvid.version"]


def test_model_hash_tracks_weights(tiny_checkpoints):
    ckpt = load_checkpoint(tiny_checkpoints["lanet_tiny"])
    h = model_hash(ckpt.model_config, ckpt.state_dict)
    changed = dict(ckpt.state_dict)
    key = next(k for k, v in changed.items() if v.is_floating_point())
    changed[key] = changed[key] + 1e-3
    assert model_hash(ckpt.model_config, changed) != h
    assert model_hash(ckpt.model_config, dict(ckpt.state_dict)) == h


def test_failed_parity_writes_nothing(tiny_checkpoints, tiny_onnx, tmp_path, monkeypatch):
    import shutil

    import usvid.inference.export_onnx as mod

    # skip the slow trace: the "exported" graph is the fixture's, the parity check reports a failure
    monkeypatch.setattr(mod, "_torch_export", lambda module, example, path, *a: shutil.copyfile(
        tiny_onnx["resnet_tiny_cls"], path))
    bad = ParityReport(frames=3, max_prob_diff=0.3, max_mask_diff=None, class_agreement=0.0, mask_iou=None,
                       tolerance=1e-4)
    monkeypatch.setattr(mod, "check_onnx_parity", lambda *a, **k: bad)
    target = tmp_path / "bad.onnx"
    with pytest.raises(ProcessingError, match="differs from PyTorch"):
        export_onnx(tiny_checkpoints["resnet_tiny_cls"], target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary left behind either


def test_compare_outputs_detects_differences():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    mask = torch.zeros(3, 1, 4, 4)
    mask[:, :, 1:3, 1:3] = 0.9
    same = compare_outputs((probs, mask), (probs.clone(), mask.clone()), 1e-4)
    assert same.passed and same.mask_iou == 1.0 and same.class_agreement == 1.0
    flipped = compare_outputs((probs, mask), (probs.flip(1), mask), 1e-4)
    assert not flipped.passed and flipped.class_agreement == 0.0  # the tie in row 3 is not counted
    shrunk = mask.clone()
    shrunk[:, :, 1, 1:3] = 0.1
    worse = compare_outputs((probs, mask), (probs, shrunk), 1e-4)
    assert not worse.passed and worse.mask_iou == pytest.approx(0.5)


def test_bad_inputs(tiny_checkpoints, tmp_path):
    with pytest.raises(InputError, match="missing.pt"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(InputError, match="corrupt.pt"):
        export_onnx(corrupt, tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="opset"):
        OnnxExportConfig(opset=13)
    with pytest.raises(ConfigError, match="precision"):
        OnnxExportConfig(precision="int8")
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(plain))
    with pytest.raises(InputError, match="no usvid metadata"):
        read_onnx_info(plain)


def test_model_info_round_trip():
    info = ModelInfo(("a", "b"), PreprocessConfig(size=96, mean=0.1, std=0.5), {"arch": "lanet"}, "abc", True)
    assert ModelInfo.from_metadata(info.to_metadata(), "x") == info
    broken = {**info.to_metadata(), "usvid.preprocess": "{not json"}
    with pytest.raises(InputError, match="corrupt"):
        ModelInfo.from_metadata(broken, "x")


def test_stride16_lanet_exports_and_predicts_the_same_box_in_both_backends(tmp_path):
    """A finer mask grid (``mask_stride=16``) survives export: the mask is ``SIZE / 16`` a side in both runtimes,
    and both predictors draw the same box from it, in frame pixels."""
    from tests.helpers.checkpoints import make_checkpoint
    from usvid.inference.postprocess import mask_to_box
    from usvid.inference.predictor import load_predictor

    ckpt = make_checkpoint(tmp_path / "s16.pt", "lanet_tiny", CLASSES, size=SIZE, store_size=SIZE,
                           bn_stats=True, mask_stride=16)
    out = export_onnx(ckpt, tmp_path / "s16.onnx")
    assert out.parity is not None and out.parity.passed
    assert read_onnx_info(out.path).model_config["mask_stride"] == 16
    ref, got = _torch_vs_ort(ckpt, out.path, batch=2, seed=7)
    assert got[1].shape == (2, 1, SIZE // 16, SIZE // 16)
    np.testing.assert_allclose(got[1], ref[1], atol=1e-4, rtol=0)

    frames = torch.randint(0, 256, (2, 1, 96, 160), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    # a threshold inside the tiny model's mask range, so there is a box to compare
    by_torch = load_predictor(ckpt, backend="torch", device="cpu")
    threshold = float(by_torch.predict(frames).mask.median())
    preds = [load_predictor(p, backend=b, device="cpu", threshold=threshold).predict(frames)
             for p, b in ((ckpt, "torch"), (out.path, "onnxruntime"))]
    assert preds[0].mask.shape == preds[1].mask.shape == (2, 1, SIZE // 16, SIZE // 16)
    assert all(b is not None for b in preds[0].boxes)
    for i, (a, b) in enumerate(zip(preds[0].boxes, preds[1].boxes)):
        np.testing.assert_allclose([a.x, a.y, a.w, a.h], [b.x, b.y, b.w, b.h], atol=1.0)
        # the box is the mask's at the network's own input size: read as a stride-32 mask (a 128 px input) it
        # would land elsewhere
        mask = preds[0].mask[i, 0].numpy()
        assert mask_to_box(mask, (160, 96), None, threshold, input_size=SIZE) == a
        assert mask_to_box(mask, (160, 96), None, threshold) != a
