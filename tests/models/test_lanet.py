"""LA-Net model behaviour: gradients from both losses, MAM with P = 0, ablations, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from usvid.models import ChannelGate, LesionAwareNet, MaskAttention, SpatialGate, create_model

X_SHAPE = (2, 1, 64, 96)


def _grad_norms(model) -> dict[str, float]:
    def norm(module) -> float:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        return float(sum(g.abs().sum() for g in grads)) if grads else 0.0

    return {
        "backbone": norm(model.backbone),
        "lanet": norm(model.lanet),
        "classifier": norm(model.classifier),
    }


def test_classification_loss_reaches_fex_lanet_and_classifier():
    torch.manual_seed(0)
    model = create_model("lanet_tiny").train()
    out = model(torch.rand(*X_SHAPE))
    F.cross_entropy(out.logits, torch.tensor([0, 1])).backward()
    norms = _grad_norms(model)
    assert all(v > 0 for v in norms.values()), norms
    # Every LA-Net part sits on the path logits <- MAM <- P.
    for part in (
        model.lanet.cbam[0].channel_gate,
        model.lanet.cbam[3].spatial_gate,
        model.lanet.squeeze[0],
        model.lanet.fuse,
    ):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_mask_loss_reaches_fex_and_lanet_only():
    torch.manual_seed(0)
    model = create_model("lanet_tiny").train()
    out = model(torch.rand(*X_SHAPE))
    target = torch.zeros_like(out.mask)
    target[..., 1:, 1:] = 1.0
    F.binary_cross_entropy(out.mask, target).backward()
    norms = _grad_norms(model)
    assert norms["backbone"] > 0 and norms["lanet"] > 0
    assert norms["classifier"] == 0.0


def test_without_mam_classification_loss_does_not_reach_lanet():
    model = create_model("lanet_tiny", use_mam=False).train()
    out = model(torch.rand(*X_SHAPE))
    F.cross_entropy(out.logits, torch.tensor([0, 1])).backward()
    norms = _grad_norms(model)
    assert norms["lanet"] == 0.0 and norms["backbone"] > 0


def test_mam_formula_and_zero_mask_identity():
    mam = MaskAttention()
    f = torch.randn(2, 8, 3, 4)
    p = torch.rand(2, 1, 3, 4)
    torch.testing.assert_close(mam(f, p), f * (1 + p))
    assert torch.equal(mam(f, torch.zeros_like(p)), f)


def test_model_with_zero_mask_equals_plain_classifier_path():
    torch.manual_seed(0)
    model = create_model("lanet_tiny").eval()
    bn = model.lanet.fuse[1]
    with torch.no_grad():  # drive P to exactly 0: sigmoid(-1e4) underflows to 0 in float32
        bn.weight.zero_()
        bn.bias.fill_(-1e4)
    x = torch.rand(*X_SHAPE)
    with torch.no_grad():
        out = model(x)
        plain = model.classifier(model.backbone(x).f4)
    assert torch.count_nonzero(out.mask) == 0
    assert torch.equal(out.logits, plain)


def test_eval_is_deterministic_and_mask_in_unit_range():
    torch.manual_seed(0)
    model = create_model("lanet_tiny").eval()
    x = torch.rand(*X_SHAPE)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.mask, b.mask)
    assert bool(((a.mask >= 0) & (a.mask <= 1)).all())


ABLATIONS = [
    ("use_cam", ChannelGate, "channel_gate"),
    ("use_sam", SpatialGate, "spatial_gate"),
    ("use_mam", MaskAttention, None),
]


@pytest.mark.parametrize(("flag", "module_type", "key_part"), ABLATIONS)
def test_ablation_removes_module_and_changes_output(flag, module_type, key_part):
    torch.manual_seed(0)
    full = create_model("lanet_tiny").eval()
    ablated = create_model("lanet_tiny", **{flag: False}).eval()
    assert any(isinstance(m, module_type) for m in full.modules())
    assert not any(isinstance(m, module_type) for m in ablated.modules())
    # Same weights for everything the two share; the only keys left over belong to the removed gate.
    result = ablated.load_state_dict(full.state_dict(), strict=False)
    assert result.missing_keys == []
    if key_part is None:
        assert result.unexpected_keys == []
    else:
        assert result.unexpected_keys and all(key_part in k for k in result.unexpected_keys)
    x = torch.rand(*X_SHAPE)
    with torch.no_grad():
        a, b = full(x), ablated(x)
    assert not torch.allclose(a.logits, b.logits)
    if flag == "use_mam":
        torch.testing.assert_close(a.mask, b.mask)  # MAM acts after the mask
    else:
        assert not torch.allclose(a.mask, b.mask)


def test_shared_cbam_mode_has_one_cbam_and_projections():
    model = create_model("lanet_tiny", cbam_mode="shared")
    assert len(model.lanet.cbam) == 1
    assert [p[0].in_channels for p in model.lanet.project] == [8, 16, 32, 64]
    assert {p[0].out_channels for p in model.lanet.project} == {16}
    per_scale = create_model("lanet_tiny")
    assert len(per_scale.lanet.cbam) == 4 and per_scale.lanet.project is None


def test_lanet_branch_is_xavier_initialised():
    torch.manual_seed(0)
    branch = LesionAwareNet((64, 128, 256, 512))
    w = branch.squeeze[3].weight.detach()  # (1, 512, 3, 3): xavier bound sqrt(6 / (fan_in + fan_out))
    bound = (6 / (512 * 9 + 9)) ** 0.5
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.9 * bound
    assert torch.count_nonzero(branch.squeeze[3].bias) == 0


def test_classifier_is_xavier_initialised():
    model = create_model("resnet_tiny_cls")
    w = model.classifier.fc.weight.detach()
    bound = (6 / (64 + 2)) ** 0.5
    assert float(w.abs().max()) <= bound
    assert torch.count_nonzero(model.classifier.fc.bias) == 0
