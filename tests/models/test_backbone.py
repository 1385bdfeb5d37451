"""FEX: stage strides and channels, torchvision compatibility, Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch
import torchvision

from usvid.errors import ConfigError
from usvid.models import FeatureMaps, ResNetBackbone, create_model


@pytest.mark.parametrize(("depth", "channels"), [(18, (64, 128, 256, 512)), (50, (256, 512, 1024, 2048))])
def test_feature_strides_and_channels_non_square(depth, channels):
    with torch.device("meta"):
        fex = ResNetBackbone(depth, in_channels=1)
        feats = fex(torch.empty(2, 1, 192, 320))
    assert isinstance(feats, FeatureMaps)
    assert fex.channels == channels
    for f, c, stride in zip(feats, channels, (4, 8, 16, 32), strict=True):
        assert f.shape == (2, c, 192 // stride, 320 // stride)


def test_tiny_widths():
    fex = ResNetBackbone(18, widths=(8, 16, 32, 64))
    feats = fex(torch.rand(1, 1, 64, 96))
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    assert feats.f4.shape[-2:] == (2, 3)


@pytest.mark.parametrize(
    ("depth", "builder"),
    [
        (18, torchvision.models.resnet18),
        (50, torchvision.models.resnet50),
        (101, torchvision.models.resnet101),
    ],
)
def test_state_dict_matches_torchvision(depth, builder):
    with torch.device("meta"):
        ours = ResNetBackbone(depth, in_channels=3).state_dict()
        theirs = {k: v for k, v in builder().state_dict().items() if not k.startswith("fc.")}
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_rejects_unknown_depth():
    with pytest.raises(ConfigError, match="FEX depth must be one of"):
        ResNetBackbone(20)


def test_gradcam_layer_outputs_f4():
    model = create_model("lanet_tiny").eval()
    layer = model.gradcam_layer()
    assert layer is model.backbone.layer4[-1]
    seen = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        model(x)
        f4 = model.backbone(x).f4
    handle.remove()
    torch.testing.assert_close(seen[0], f4)
