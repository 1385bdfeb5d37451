"""ModelOutput.mask_logits (for a sound loss), fp32 sigmoid under autocast, and LA-Net's fusion pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from usvid.models import FeatureMaps, LesionAwareNet, ModelOutput, create_model, pool_to


def test_two_field_construction_still_works():
    out = ModelOutput(torch.zeros(1, 2), None)
    assert out.mask_logits is None


@pytest.mark.parametrize(("name", "logit_size"), [("lanet_tiny", (2, 3)), ("rmtl_tiny", (16, 24))])
def test_mask_logits_resolution_and_relation_to_mask(name, logit_size):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 96))
    assert out.mask.shape == (2, 1, 2, 3)
    assert out.mask_logits.shape == (2, 1, *logit_size)
    assert out.mask_logits.dtype == torch.float32
    want = out.mask_logits.sigmoid()
    if name == "rmtl_tiny":  # RMTL: mask is the H/32 average of the decoder's H/4 probabilities
        want = F.avg_pool2d(want, 8)
    torch.testing.assert_close(out.mask, want)


def test_vanilla_classifier_has_no_mask_logits():
    with torch.no_grad():
        out = create_model("resnet_tiny_cls").eval()(torch.rand(1, 1, 64, 64))
    assert out.mask is None and out.mask_logits is None


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny"])
def test_mask_sigmoid_is_fp32_under_bf16_autocast(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        last = model.lanet.fuse[1] if name == "lanet_tiny" else model.decoder.head
        last.bias.fill_(8.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(torch.rand(2, 1, 64, 96))
    assert out.mask.dtype == torch.float32 and out.mask_logits.dtype == torch.float32
    # Saturated logits (~8) still give probabilities below 1, unlike a bf16 sigmoid.
    assert float(out.mask_logits.min()) > 5
    assert float(out.mask.max()) < 1.0
    assert out.logits.dtype == torch.bfloat16  # the rest of the network still runs in bf16


def test_half_precision_model_runs_with_fp32_mask():
    model = create_model("lanet_tiny").eval().to(torch.bfloat16)
    with torch.no_grad():
        out = model(torch.rand(1, 1, 64, 64, dtype=torch.bfloat16))
    assert out.mask.dtype == torch.float32 and out.logits.dtype == torch.bfloat16


def test_area_pooling_is_the_exact_cell_average():
    s = torch.randn(2, 1, 16, 24)
    torch.testing.assert_close(pool_to(s, (2, 3), "area", factor=8), F.adaptive_avg_pool2d(s, (2, 3)))
    torch.testing.assert_close(pool_to(s, (2, 3), "bilinear", factor=8),
                               F.interpolate(s, size=(2, 3), mode="bilinear", align_corners=False))


def _branch_output(mode: str, features: FeatureMaps) -> torch.Tensor:
    torch.manual_seed(0)
    branch = LesionAwareNet((8, 16, 32, 64), use_cam=False, use_sam=False, fusion_pool=mode).eval()
    with torch.no_grad():
        return branch(features)


@pytest.mark.parametrize("mode", ["bilinear", "area"])
def test_only_area_pooling_reads_every_f1_position(mode):
    # Bilinear 8x downsampling (align_corners=False) reads only rows/cols 8j+3, 8j+4 of f1; position (0, 0)
    # (spread by the 3x3 squeeze conv to rows/cols 0..1) is never read. Area pooling averages all 64.
    torch.manual_seed(1)
    sizes = ((16, 24), (8, 12), (4, 6), (2, 3))
    f = FeatureMaps(*(torch.randn(1, c, h, w) for c, (h, w) in zip((8, 16, 32, 64), sizes, strict=True)))
    poked = f.f1.clone()
    poked[:, :, 0, 0] += 10.0
    before = _branch_output(mode, f)
    after = _branch_output(mode, f._replace(f1=poked))
    changed = not torch.equal(before, after)
    assert changed == (mode == "area")


def test_fusion_pool_reaches_the_model():
    torch.manual_seed(0)
    bilinear = create_model("lanet_tiny").eval()
    area = create_model("lanet_tiny", fusion_pool="area").eval()
    area.load_state_dict(bilinear.state_dict())  # same parameters: only the pooling differs
    assert area.lanet.fusion_pool == "area" and bilinear.lanet.fusion_pool == "bilinear"
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        assert not torch.allclose(area(x).mask, bilinear(x).mask)


def test_mask_stride_puts_p_on_a_finer_grid_and_the_attention_on_its_f4_average():
    torch.manual_seed(0)
    paper = create_model("lanet_tiny").eval()
    fine = create_model("lanet_tiny", mask_stride=16).eval()
    fine.load_state_dict(paper.state_dict())  # the same parameters: only the grid the fusion works on differs
    seen = []
    fine.mam.register_forward_pre_hook(lambda _, args: seen.append(args[1]))
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        out, ref = fine(x), paper(x)
    assert ref.mask.shape == (2, 1, 2, 3) and out.mask.shape == out.mask_logits.shape == (2, 1, 4, 6)
    assert torch.equal(out.mask, out.mask_logits.sigmoid())
    # The finer grid resolves detail inside an f4 cell: P differs between the four cells of one f4 cell.
    quads = out.mask.unfold(2, 2, 2).unfold(3, 2, 2)  # (2, 1, 2, 3, 2, 2)
    assert (quads.amax((-2, -1)) - quads.amin((-2, -1))).min() > 1e-3
    # The mask attention on f4 gets P's average over each f4 cell (the lesion share of the cell).
    assert torch.allclose(seen[0], F.avg_pool2d(out.mask, 2), atol=1e-6)
    with torch.no_grad():
        assert create_model("lanet_tiny", mask_stride=8).eval()(x).mask.shape == (2, 1, 8, 12)


def test_mask_prior_starts_p_at_the_prior_and_changes_nothing_else():
    torch.manual_seed(0)
    paper = create_model("lanet_tiny").train()
    torch.manual_seed(0)
    prior = create_model("lanet_tiny", mask_prior=0.05).train()
    # logit(0.05) = ln(0.05 / 0.95), written out: the fusion BN's bias, the only parameter that differs
    assert prior.lanet.fuse[1].bias.item() == pytest.approx(-2.944439, abs=1e-6)
    assert paper.lanet.fuse[1].bias.item() == 0.0
    differ = [k for k, v in paper.state_dict().items() if not torch.equal(v, prior.state_dict()[k])]
    assert differ == ["lanet.fuse.1.bias"]
    x = torch.rand(8, 1, 64, 64)
    with torch.no_grad():
        # In training mode the BN normalises the batch: the logits' batch mean is exactly the bias.
        assert prior(x).mask_logits.mean().item() == pytest.approx(-2.944439, abs=1e-4)
        assert paper(x).mask_logits.mean().item() == pytest.approx(0.0, abs=1e-4)
        assert paper(x).mask.median().item() > 0.4 > 0.1 > prior(x).mask.median().item()
