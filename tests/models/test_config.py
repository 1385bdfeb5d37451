"""ModelConfig: validation, JSON round trip, unknown keys."""

from __future__ import annotations

import json

import pytest

from usvid.errors import ConfigError
from usvid.models import ModelConfig, model_config


def test_round_trip_through_json():
    cfg = ModelConfig(
        arch="lanet",
        depth=50,
        num_classes=3,
        use_sam=False,
        cbam_mode="shared",
        spatial_kernel="7x7",
        widths=(8, 16, 32, 64),
    )
    data = json.loads(json.dumps(cfg.to_dict()))
    assert isinstance(data["widths"], list)
    back = ModelConfig.from_dict(data)
    assert back == cfg
    assert back.widths == (8, 16, 32, 64)


def test_from_dict_rejects_unknown_key_with_suggestion():
    data = ModelConfig().to_dict() | {"usecam": False}
    with pytest.raises(ConfigError, match=r"unknown model config key 'usecam'.*Did you mean 'use_cam'"):
        ModelConfig.from_dict(data)


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ConfigError, match="must be a mapping"):
        ModelConfig.from_dict(["lanet"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"arch": "lanett"}, r"'arch' must be one of .*Did you mean 'lanet'"),
        ({"depth": 20}, r"'depth' must be one of \(18, 34, 50, 101\), got 20"),
        ({"widths": (8, 16, 32)}, "'widths' must be 4 whole numbers"),
        ({"widths": (8, 16, 0, 64)}, "'widths' must be a positive whole number"),
        ({"num_classes": 1}, "'num_classes' must be at least 2"),
        ({"in_channels": True}, "'in_channels' must be a positive whole number"),
        ({"use_cam": "no"}, "'use_cam' must be true or false"),
        ({"cbam_mode": "shard"}, "Did you mean 'shared'"),
        ({"spatial_kernel": "5x5"}, "'spatial_kernel' must be one of 7x7, 3x3x3"),
        ({"mask_prior": 1.0}, "'mask_prior' must be a probability strictly between 0 and 1"),
        ({"mask_prior": 0}, "'mask_prior' must be a probability strictly between 0 and 1"),
        ({"mask_prior": "0.05"}, "'mask_prior' must be a probability"),
        ({"arch": "cls", "mask_prior": 0.05}, "mask_prior only applies to arch 'lanet' \\(got arch 'cls'\\)"),
        ({"mask_stride": 12}, r"'mask_stride' must be one of \(8, 16, 32\).*got 12"),
        ({"mask_stride": 16.0}, r"'mask_stride' must be one of \(8, 16, 32\).*got 16.0"),
        ({"mask_stride": True}, r"'mask_stride' must be one of"),
        ({"arch": "rmtl", "mask_stride": 16}, "mask_stride=16 only applies to arch 'lanet' \\(got arch 'rmtl'\\)"),
    ],
)
def test_invalid_values_fail_clearly(changes, match):
    with pytest.raises(ConfigError, match=match):
        ModelConfig(**changes)


@pytest.mark.parametrize("arch", ["rmtl", "cls"])
def test_ablation_flags_refused_outside_lanet(arch):
    # The authors' code ignored ablation flags silently; a flag that cannot take effect must fail loudly.
    with pytest.raises(
        ConfigError, match=f"use_mam=false only applies to arch 'lanet' \\(got arch '{arch}'\\)"
    ):
        ModelConfig(arch=arch, use_mam=False)


def test_replace_rejects_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown model override 'num_class'.*Did you mean 'num_classes'"):
        model_config("lanet_tiny", num_class=3)


def test_config_is_frozen():
    cfg = ModelConfig()
    with pytest.raises(AttributeError):
        cfg.depth = 50  # type: ignore[misc]
