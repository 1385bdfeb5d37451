"""ImageNet-style initialisation from a local torchvision state dict; stem folding; clear failures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from usvid.errors import ConfigError, InputError, MissingDependencyError
from usvid.models import create_model, fold_stem


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BN statistics so a wrong BN mapping shows up in the features
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save(net.state_dict(), path)
    return path, torch.load(path, weights_only=True)


def test_one_channel_stem_is_folded_and_features_match_torchvision(resnet18_file):
    path, state = resnet18_file
    model = create_model("lanet_r18", pretrained=path).eval()
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    # A grey image through the folded stem == the same image replicated to RGB through torchvision's ResNet.
    ref = torchvision.models.resnet18(weights=None).eval()
    ref.load_state_dict(state)
    trunk = torch.nn.Sequential(*list(ref.children())[:-2])
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(model.backbone(x).f4, trunk(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_three_channel_model_keeps_rgb_stem(resnet18_file):
    path, state = resnet18_file
    model = create_model("resnet18_cls", in_channels=3, pretrained=path)
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])


def test_fold_stem_other_channel_counts():
    w = torch.randn(4, 3, 7, 7)
    two = fold_stem(w, 2)
    assert two.shape == (4, 2, 7, 7)
    torch.testing.assert_close(two, w[:, :2] * 1.5)
    assert fold_stem(w, 5).shape == (4, 5, 7, 7)


def test_missing_path_fails_clearly(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(InputError, match=r"nope\.pth: pretrained weights file does not exist"):
        create_model("lanet_r18", pretrained=missing)


def test_wrong_depth_fails_clearly(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(InputError, match=r"not a torchvision ResNet-50 state dict .* missing"):
        create_model("resnet50_cls", pretrained=path)


def test_not_a_state_dict_fails_clearly(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    # One line naming the file; not PyTorch's advice to retry with weights_only=False.
    with pytest.raises(InputError, match=r"bad\.pth: not a PyTorch state dict, or damaged.*will not unpickle"):
        create_model("resnet18_cls", pretrained=bad)


def test_tiny_variant_has_no_pretrained_weights(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(ConfigError, match="tiny test variants have no pretrained weights"):
        create_model("lanet_tiny", pretrained=path)


def test_imagenet_uses_torchvision_cache_only(tmp_path, resnet18_file):
    path, state = resnet18_file
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(
            MissingDependencyError,
            match=r"not in torchvision's cache .*resnet18-f37072fd\.pth.*never "
            r"downloads",
        ):
            create_model("resnet18_cls", pretrained="imagenet")
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(path.read_bytes())
        model = create_model("resnet18_cls", pretrained="imagenet")
    finally:
        torch.hub.set_dir(old)
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
