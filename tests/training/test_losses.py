"""Equations 5 and 6: L_loc, pseudo-labels, L_hyb."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from usvid.training.losses import binarize, hybrid_loss, loc_loss, mask_target


def test_binarize_is_a_per_pixel_threshold_without_gradient():
    p = torch.tensor([[[[0.1, 0.79], [0.8, 0.95]]]], requires_grad=True)
    y = binarize(p, 0.8)
    assert y.tolist() == [[[[0.0, 0.0], [1.0, 1.0]]]]
    assert not y.requires_grad


def test_mask_target_is_the_lesion_fraction_per_cell():
    m = torch.zeros(1, 1, 64, 64)
    m[..., :32, :16] = 1  # half of the top-left 32x32 cell
    t = mask_target(m, 2)
    assert t.shape == (1, 1, 2, 2)
    assert torch.allclose(t, torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]]))


def test_loc_loss_is_mean_bce_over_selected_frames():
    pred = torch.tensor([0.9, 0.2, 0.6, 0.3]).view(2, 1, 1, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(2, 1, 1, 2)
    manual = -(math.log(0.9) + math.log(0.8)) / 2
    assert math.isclose(float(loc_loss(pred, target, torch.tensor([True, False]))), manual, rel_tol=1e-6)
    assert float(loc_loss(pred, target, torch.tensor([False, False]))) == 0.0


def test_hybrid_loss_is_equation_6():
    torch.manual_seed(0)
    logits = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([0, 1, 1, 0])
    pred = torch.rand(4, 1, 3, 3).clamp(0.05, 0.95).requires_grad_(True)
    target = (torch.rand(4, 1, 3, 3) > 0.5).float()
    annotated = torch.tensor([True, True, False, False])
    pseudo = binarize(pred, 0.8)
    t = hybrid_loss(logits, labels, pred, target, annotated, pseudo, lam=0.5, alpha=0.1)
    l_cls = F.cross_entropy(logits, labels)
    l_loc = F.binary_cross_entropy(pred[:2], target[:2])
    l_pseudo = F.binary_cross_entropy(pred[2:], pseudo[2:])
    assert torch.allclose(t.total, 0.5 * l_cls + 0.5 * (l_loc + 0.1 * l_pseudo))
    assert torch.allclose(t.pseudo, l_pseudo) and torch.allclose(t.loc, l_loc)
    t.total.backward()
    assert pred.grad is not None and logits.grad is not None


def test_pseudo_term_pushes_confident_pixels_up_and_the_rest_down():
    pred = torch.tensor([0.85, 0.6]).view(1, 1, 1, 2).requires_grad_(True)
    t = hybrid_loss(torch.zeros(1, 2), torch.tensor([0]), pred, None, torch.tensor([False]), binarize(pred, 0.8),
                    lam=0.5, alpha=0.1)
    t.total.backward()
    assert pred.grad[0, 0, 0, 0] < 0 < pred.grad[0, 0, 0, 1]


def test_models_without_a_mask_train_on_the_class_loss_only():
    logits = torch.tensor([[2.0, 0.0]])
    t = hybrid_loss(logits, torch.tensor([1]), None, None, torch.tensor([True]), None, lam=0.5, alpha=0.1)
    assert torch.allclose(t.total, F.cross_entropy(logits, torch.tensor([1])))
    assert float(t.loc) == float(t.pseudo) == 0.0


def test_mask_loss_from_logits_keeps_the_gradient_of_saturated_pixels_under_bf16():
    # A model's last conv under bf16 autocast: its logits come out bf16, where sigmoid(8) == 1.0 exactly.
    raw = torch.tensor([8.0, -8.0, 0.5, -1.0]).view(1, 1, 2, 2).requires_grad_(True)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0]).view(1, 1, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = F.conv2d(raw, torch.ones(1, 1, 1, 1))
        assert logits.dtype == torch.bfloat16 and float(logits.detach().sigmoid()[0, 0, 0, 0]) == 1.0
        loss = loc_loss(logits, target, from_logits=True)
    assert loss.dtype == torch.float32
    loss.backward()
    # d(mean BCE)/dz = (sigmoid(z) - y) / N: both saturated (wrong) pixels are pushed hard towards their target.
    expected = (torch.sigmoid(raw.detach()) - target) / 4
    assert torch.allclose(raw.grad, expected, atol=1e-3)
    assert raw.grad[0, 0, 0, 0] > 0.2 and raw.grad[0, 0, 0, 1] < -0.2


def test_mask_loss_from_logits_equals_the_probability_bce_where_not_saturated():
    torch.manual_seed(0)
    z = torch.empty(3, 1, 4, 5).uniform_(-3, 3)
    target = torch.rand(3, 1, 4, 5)
    select = torch.tensor([True, False, True])
    assert torch.allclose(loc_loss(z, target, select, from_logits=True), loc_loss(z.sigmoid(), target, select))
    t_logits = hybrid_loss(torch.zeros(3, 2), torch.tensor([0, 1, 0]), z, target, select, binarize(z.sigmoid(), 0.8),
                           lam=0.5, alpha=0.1, from_logits=True)
    t_probs = hybrid_loss(torch.zeros(3, 2), torch.tensor([0, 1, 0]), z.sigmoid(), target, select,
                          binarize(z.sigmoid(), 0.8), lam=0.5, alpha=0.1)
    assert all(torch.allclose(a, b) for a, b in zip(t_logits, t_probs, strict=True))


def test_label_smoothing_reaches_the_class_loss():
    logits = torch.tensor([[2.0, -1.0]])
    t = hybrid_loss(logits, torch.tensor([0]), None, None, torch.tensor([True]), None, lam=0.5, alpha=0.1,
                    label_smoothing=0.1)
    assert torch.allclose(t.cls, F.cross_entropy(logits, torch.tensor([0]), label_smoothing=0.1))
    assert t.cls > F.cross_entropy(logits, torch.tensor([0]))
