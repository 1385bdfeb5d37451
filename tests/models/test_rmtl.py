"""RMTL baseline: decoder resolution, pooled mask, losses reach the right parts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from usvid.models import ModelOutput, RMTLDecoder, create_model


def test_decoder_upsamples_by_eight_with_three_deconv_blocks():
    dec = RMTLDecoder(64, (32, 16, 8))
    deconvs = [m for m in dec.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(deconvs) == 3
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in dec.modules()) == 3
    assert dec(torch.randn(2, 64, 2, 3)).shape == (2, 1, 16, 24)


def test_mask_is_the_pooled_high_resolution_mask():
    torch.manual_seed(0)
    model = create_model("rmtl_tiny").eval()
    x = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        full = model.forward_full(x)
        out = model(x)
    assert isinstance(out, ModelOutput)
    assert full.mask_full.shape == (2, 1, 16, 24)
    assert out.mask.shape == (2, 1, 2, 3)
    torch.testing.assert_close(out.mask, F.avg_pool2d(full.mask_full, 8))
    torch.testing.assert_close(out.mask[0, 0, 1, 2], full.mask_full[0, 0, 8:16, 16:24].mean())
    assert bool(((full.mask_full >= 0) & (full.mask_full <= 1)).all())
    # Not stuck at >= 0.5 (as a decoder ending in ReLU + sigmoid would be).
    assert float(full.mask_full.min()) < 0.5


def test_losses_reach_the_right_parts():
    torch.manual_seed(0)
    model = create_model("rmtl_tiny").train()
    out = model(torch.rand(2, 1, 64, 96))
    F.binary_cross_entropy(out.mask, torch.ones_like(out.mask) * 0.5).backward(retain_graph=True)
    assert model.decoder.blocks[0].weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0
    assert model.classifier.fc.weight.grad is None
    F.cross_entropy(out.logits, torch.tensor([1, 0])).backward()
    assert model.classifier.fc.weight.grad.abs().sum() > 0
