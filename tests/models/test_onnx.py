"""The models are export-clean: dynamo ONNX export with a dynamic batch matches PyTorch in onnxruntime."""

from __future__ import annotations

import warnings

import pytest
import torch

from usvid.models import create_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
OPSET = 18


def _export_and_compare(
    name: str, tmp_path, h: int, w: int, dynamic_hw: bool = False, **overrides
) -> None:
    """Export with a dynamic batch (and H, W if asked); run at another batch size (and a swapped H x W)."""
    torch.manual_seed(0)
    model = create_model(name, **overrides).eval()
    has_mask = not name.endswith("_cls")
    outputs = ["logits", "mask", "mask_logits"] if has_mask else ["logits"]
    path = tmp_path / f"{name}.onnx"
    dims = {0: torch.export.Dim("batch", min=1, max=64)}
    if dynamic_hw:
        dims |= {
            2: 32 * torch.export.Dim("h32", min=1, max=32),
            3: 32 * torch.export.Dim("w32", min=1, max=32),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (torch.rand(2, 1, h, w),),
            dynamo=True,
            opset_version=OPSET,
            input_names=["x"],
            output_names=outputs,
            dynamic_shapes={"x": dims},
        )
    program.save(str(path))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == outputs
    # A batch size (and input size) other than the traced ones: shape checks stay out of the graph.
    x = torch.rand(3, 1, w, h) if dynamic_hw else torch.rand(3, 1, h, w)
    got = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = [t for t in model(x) if t is not None]
    assert len(got) == len(want)
    for g, e in zip(got, want, strict=True):
        assert g.shape == tuple(e.shape)
        torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls"])
def test_tiny_variants_export_and_match(name, tmp_path):
    _export_and_compare(name, tmp_path, 64, 96)


def test_area_fusion_pooling_exports_and_matches(tmp_path):
    _export_and_compare("lanet_tiny", tmp_path, 64, 96, fusion_pool="area")


@pytest.mark.slow  # ~30 s on a shared CPU
def test_efficientnet_lite_exports_and_matches(tmp_path):
    # TF "same" padding is computed from the input size: exported for one H x W, like TensorRT engines.
    _export_and_compare("lanet_effl0", tmp_path, 64, 96)


@pytest.mark.slow
def test_dynamic_height_and_width_export_with_area_pooling(tmp_path):
    _export_and_compare("lanet_tiny", tmp_path, 64, 96, dynamic_hw=True, fusion_pool="area")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["lanet_r18", "rmtl_r18", "resnet18_cls", "lanet_r50", "rmtl_r50", "resnet50_cls"]
)
def test_full_size_export_and_match(name, tmp_path):
    _export_and_compare(name, tmp_path, 256, 256)


@pytest.mark.slow
def test_dynamic_height_and_width_export(tmp_path):
    _export_and_compare("lanet_tiny", tmp_path, 64, 96, dynamic_hw=True)
