"""create_model / list_models / build_model: names, overrides, did-you-mean, rebuild from config."""

from __future__ import annotations

import pytest
import torch

from usvid.errors import ConfigError
from usvid.models import ModelConfig, build_model, create_model, list_models, model_config

REQUIRED = [
    "lanet_r18",
    "lanet_r34",
    "lanet_r50",
    "lanet_r101",
    "rmtl_r18",
    "rmtl_r50",
    "resnet18_cls",
    "resnet50_cls",
    "lanet_tiny",
    "rmtl_tiny",
    "resnet_tiny_cls",
]


def test_required_variants_are_registered():
    names = list_models()
    assert set(REQUIRED) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize(
    ("name", "arch", "depth"),
    [("lanet_r50", "lanet", 50), ("rmtl_r18", "rmtl", 18), ("resnet101_cls", "cls", 101)],
)
def test_variant_configs(name, arch, depth):
    cfg = model_config(name)
    assert (cfg.arch, cfg.depth, cfg.widths) == (arch, depth, (64, 128, 256, 512))


def test_unknown_name_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown model 'lanet_r81'\. Did you mean 'lanet_r18'\?"):
        create_model("lanet_r81")


def test_unknown_override_suggests_closest():
    with pytest.raises(ConfigError, match=r"'use_sma'.*Did you mean 'use_sam'"):
        create_model("lanet_tiny", use_sma=False)


def test_overrides_reach_the_model():
    model = create_model("lanet_tiny", num_classes=3, in_channels=3, use_cam=False).eval()
    assert model.config == model_config("lanet_tiny").replace(num_classes=3, in_channels=3, use_cam=False)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out.logits.shape == (2, 3)
    assert model.backbone.conv1.in_channels == 3


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls"])
def test_rebuild_from_config_dict_reproduces_outputs(name):
    torch.manual_seed(0)
    model = create_model(name, cbam_mode="shared") if name == "lanet_tiny" else create_model(name)
    model.eval()
    clone = build_model(ModelConfig.from_dict(model.config.to_dict())).eval()
    clone.load_state_dict(model.state_dict())  # strict: the config fully determines the module tree
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        a, b = model(x), clone(x)
    torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls"])
def test_parameter_groups_partition_the_model(name):
    model = create_model(name)
    groups = model.parameter_groups()
    ids = [id(p) for group in groups.values() for p in group]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert (len(groups["mask_branch"]) > 0) == (name != "resnet_tiny_cls")
    assert (model.lanet is None) == (name != "lanet_tiny")
    # Each part is registered once, so checkpoints hold every tensor under a single name.
    top = {
        "lanet_tiny": {"backbone", "lanet", "classifier"},
        "rmtl_tiny": {"backbone", "decoder", "classifier"},
        "resnet_tiny_cls": {"backbone", "classifier"},
    }[name]
    assert {k.split(".")[0] for k in model.state_dict()} == top
