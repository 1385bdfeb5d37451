"""Parameter and FLOP counts: agree with torchvision's ResNet, scale with input area."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from usvid.errors import InputError
from usvid.models import (
    build_model,
    count_flops,
    count_parameters,
    create_model,
    model_config,
    summarize_models,
)


@pytest.mark.parametrize(
    ("name", "builder"),
    [("resnet18_cls", torchvision.models.resnet18), ("resnet50_cls", torchvision.models.resnet50)],
)
def test_vanilla_classifier_matches_torchvision(name, builder):
    # With RGB input and 1000 classes our vanilla classifier *is* torchvision's ResNet.
    cfg = model_config(name, in_channels=3, num_classes=1000)
    with torch.device("meta"):
        ref = builder()
        x = torch.empty(1, 3, 224, 224)
        counter = FlopCounterMode(display=False)
        with counter:
            ref(x)
        assert count_parameters(build_model(cfg)) == count_parameters(ref)
    assert count_flops(cfg, 224) == counter.get_total_flops()


def test_known_resnet18_figure():
    # torchvision documents ResNet-18 as 1.81 GFLOPS (multiply-adds) at 224: 2 FLOPs per MAC here.
    cfg = model_config("resnet18_cls", in_channels=3, num_classes=1000)
    assert count_flops(cfg, 224) / 2e9 == pytest.approx(1.81, abs=0.01)


def test_flops_scale_with_area_and_lanet_costs_more():
    cfg = model_config("lanet_r18")
    f256, f512 = count_flops(cfg, 256), count_flops(cfg, 512)
    assert f512 / f256 == pytest.approx(4.0, rel=1e-3)
    assert count_flops(cfg, (256, 512)) == pytest.approx(2 * f256, rel=1e-3)
    assert f256 > count_flops(model_config("resnet18_cls"), 256)


def test_flops_reject_bad_size():
    with pytest.raises(InputError, match="multiples of 32"):
        count_flops(model_config("lanet_tiny"), 100)


def test_summarize_models():
    seen = []
    rows = summarize_models(["lanet_tiny", "rmtl_tiny"], sizes=(64, 128), progress=seen.append)
    assert [r.name for r in rows] == seen == ["lanet_tiny", "rmtl_tiny"]
    assert rows[0].params == count_parameters(create_model("lanet_tiny"))
    assert set(rows[0].flops) == {64, 128} and rows[0].flops[128] > rows[0].flops[64] > 0
    assert rows[1].to_dict()["flops"]["64"] == rows[1].flops[64]
