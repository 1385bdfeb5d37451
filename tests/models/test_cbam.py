"""CBAM gates: shapes, ranges, the two spatial kernels, and that disabled gates are absent."""

from __future__ import annotations

import pytest
import torch

from usvid.errors import ConfigError
from usvid.models import CBAM, ChannelGate, SpatialGate


def test_channel_gate_shape_range_and_narrow_hidden():
    gate = ChannelGate(8, reduction=16)  # 8 // 16 == 0: hidden width must not collapse to zero
    assert gate.mlp[0].out_channels == 1
    g = gate(torch.randn(2, 8, 5, 7))
    assert g.shape == (2, 8, 1, 1)
    assert bool(((g > 0) & (g < 1)).all())


def test_channel_gate_is_shared_mlp_over_avg_and_max_pooling():
    torch.manual_seed(0)
    gate = ChannelGate(4, reduction=2)
    x = torch.randn(2, 4, 5, 3)
    avg = x.mean(dim=(2, 3), keepdim=True)
    peak = x.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(gate(x), torch.sigmoid(gate.mlp(avg) + gate.mlp(peak)))
    assert not torch.allclose(gate(x), torch.sigmoid(2 * gate.mlp(avg)))


@pytest.mark.parametrize(("kernel", "n_convs"), [("7x7", 1), ("3x3x3", 3)])
def test_spatial_gate_kernels(kernel, n_convs):
    gate = SpatialGate(kernel)
    convs = [m for m in gate.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == n_convs
    assert convs[0].in_channels == 2 and convs[-1].out_channels == 1
    g = gate(torch.randn(2, 16, 6, 10))
    assert g.shape == (2, 1, 6, 10)
    assert bool(((g > 0) & (g < 1)).all())


def test_spatial_gate_rejects_unknown_kernel():
    with pytest.raises(ConfigError, match=r"spatial_kernel must be '7x7' or '3x3x3', got '5x5'"):
        SpatialGate("5x5")


def test_cbam_without_gates_is_identity_and_has_no_gate_modules():
    cbam = CBAM(16, use_cam=False, use_sam=False)
    assert not any(isinstance(m, (ChannelGate, SpatialGate)) for m in cbam.modules())
    x = torch.randn(1, 16, 4, 4)
    assert torch.equal(cbam(x), x)


def test_cbam_applies_channel_then_spatial():
    torch.manual_seed(0)
    cbam = CBAM(16).eval()
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        xc = x * cbam.channel_gate(x)
        expected = xc * cbam.spatial_gate(xc)
        torch.testing.assert_close(cbam(x), expected)
