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


def test_list_models_filters_by_glob():
    assert list_models("lanet*") == [n for n in list_models() if n.startswith("lanet")]
    assert "lanet_tiny" in list_models("lanet*") and "rmtl_tiny" not in list_models("lanet*")
    assert list_models("*_tiny") == ["lanet_tiny", "rmtl_tiny"]
    assert list_models("vgg*") == []


@pytest.mark.parametrize("name", list_models())
def test_pretrained_true_builds_or_refuses_in_one_line(name):
    from usvid.errors import UsvidError

    config = model_config(name)
    if config.fex == "efficientnet_lite":
        torch.manual_seed(0)
        a = create_model(name, pretrained=True).backbone.state_dict()
        torch.manual_seed(1)
        b = create_model(name, pretrained=True).backbone.state_dict()
        # whatever the seed, the same (non-zero) weights: they come from the ImageNet file, not the init
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert any(v.float().abs().sum() > 0 for k, v in a.items() if k.endswith("weight"))
        return
    with pytest.raises(UsvidError) as err:
        create_model(name, pretrained=True)
    message = str(err.value)
    assert "\n" not in message
    if config.uses_imagenet_widths:
        assert "no ImageNet ResNet weights" in message and "pretrained=PATH" in message
    else:
        assert "tiny test variants have no pretrained weights" in message


def test_register_model_refuses_a_duplicate_name_and_keeps_the_first():
    from usvid.errors import UsvidError
    from usvid.models import register_model

    before = model_config("lanet_tiny")

    def lanet_tiny() -> ModelConfig:  # same name as the built-in tiny variant, another config
        return ModelConfig(arch="lanet", depth=50)

    with pytest.raises(UsvidError, match=(
        r"^model 'lanet_tiny' is already registered \(by usvid\.models\.variants\.lanet_tiny\); variant names "
        r"must be unique.*give the new variant function another name$"
    )) as err:
        register_model(lanet_tiny)
    assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    assert model_config("lanet_tiny") == before
    assert list_models().count("lanet_tiny") == 1
