"""Output shapes for every variant and ablation at 256, 512 and non-square sizes; bad inputs fail clearly."""

from __future__ import annotations

import pytest
import torch

from usvid.errors import InputError
from usvid.models import ModelOutput, build_model, create_model, list_models, model_config

TINY = ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls"]
FULL_REAL = ["lanet_r18", "rmtl_r18", "resnet18_cls", "lanet_r50", "rmtl_r50", "resnet50_cls"]
ABLATIONS = [
    {"use_cam": False},
    {"use_sam": False},
    {"use_mam": False},
    {"use_cam": False, "use_sam": False},
    {"cbam_mode": "shared"},
    {"spatial_kernel": "7x7"},
    {"cbam_mode": "shared", "spatial_kernel": "7x7"},
]


def _check(out: ModelOutput, batch: int, k: int, h: int, w: int, has_mask: bool) -> None:
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (batch, k) and out.logits.dtype == torch.float32
    if not has_mask:
        assert out.mask is None
        return
    assert out.mask.shape == (batch, 1, h // 32, w // 32)
    assert out.mask.device.type == "meta" or bool(((out.mask >= 0) & (out.mask <= 1)).all())


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize(("h", "w"), [(256, 256), (512, 512), (64, 96), (96, 64), (256, 384)])
def test_tiny_variant_shapes(name, h, w):
    model = create_model(name, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, h, w))
    _check(out, 2, 3, h, w, has_mask=name != "resnet_tiny_cls")


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize(("h", "w"), [(256, 256), (512, 512), (64, 160)])
def test_tiny_ablation_shapes(overrides, h, w):
    model = create_model("lanet_tiny", **overrides).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, h, w))
    _check(out, 1, 2, h, w, has_mask=True)


@pytest.mark.parametrize("name", FULL_REAL)
@pytest.mark.parametrize("size", [256, 512])
def test_full_size_shapes(name, size):
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, size, size))
    _check(out, 1, 2, size, size, has_mask=not name.endswith("_cls"))


META_CASES = [(name, 384, 512) for name in list_models()] + [
    (name, s, s) for name in list_models() if name not in FULL_REAL + TINY for s in (256, 512)
]


@pytest.mark.parametrize(("name", "h", "w"), META_CASES)
def test_every_variant_shapes_on_meta(name, h, w):
    # Shape propagation of the real module code without the compute, so R34/R101 stay cheap.
    with torch.device("meta"):
        model = create_model(name).eval()
        out = model(torch.empty(2, 1, h, w))
    _check(out, 2, 2, h, w, has_mask=not name.endswith("_cls"))


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("depth", [18, 50])
def test_full_size_ablation_shapes_on_meta(overrides, depth):
    with torch.device("meta"):
        model = build_model(model_config("lanet_r18").replace(depth=depth, **overrides)).eval()
        out = model(torch.empty(1, 1, 512, 256))
    _check(out, 1, 2, 512, 256, has_mask=True)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 1, 250, 256), r"multiples of 32 .* got 250x256; resize to e\.g\. 256x256"),
        ((1, 1, 64, 100), r"got 64x100"),
        ((1, 3, 64, 64), r"expects 1 input channel\(s\), got 3"),
        ((1, 64, 64), r"must be \(B, C, H, W\), got shape \(1, 64, 64\)"),
    ],
)
def test_bad_inputs_fail_clearly(name, shape, match):
    model = create_model(name).eval()
    with pytest.raises(InputError, match=match):
        model(torch.rand(*shape))


def test_integer_input_is_rejected():
    model = create_model("lanet_tiny").eval()
    with pytest.raises(InputError, match=r"must be float .* got dtype torch\.uint8"):
        model(torch.zeros(1, 1, 64, 64, dtype=torch.uint8))
