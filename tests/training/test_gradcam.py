"""Grad-CAM on the last FEX block: shape, range, and that it points at the evidence."""

from __future__ import annotations

import torch
from torch import nn
from usvid.models import ModelOutput, create_model

from usvid.training.gradcam import grad_cam


class TwoChannelModel(nn.Module):
    """f = (x, 1 - x) per pixel; class 1 scores the mean of channel 0 (bright), class 0 that of channel 1 (dark)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.0, 1.0]))

    def gradcam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> ModelOutput:
        f = self.conv(x).mean(dim=(2, 3))
        return ModelOutput(torch.stack([f[:, 1], f[:, 0]], 1), None)


def test_cam_points_at_the_evidence_of_the_explained_class():
    x = torch.zeros(1, 1, 16, 16)
    x[..., 2:6, 9:14] = 1.0  # a bright blob on a dark frame
    model = TwoChannelModel()
    bright = grad_cam(model, x, torch.tensor([1]))[0]
    dark = grad_cam(model, x, torch.tensor([0]))[0]
    assert bright.shape == (16, 16)
    blob = x[0, 0] > 0.5
    assert float(bright[blob].min()) > 0.9 and float(bright[~blob].max()) < 0.1
    assert float(dark[~blob].min()) > 0.9 and float(dark[blob].max()) < 0.1


def test_on_a_real_model_shape_range_and_no_side_effects():
    torch.manual_seed(0)
    model = create_model("lanet_tiny", num_classes=2).train()
    x = torch.rand(3, 1, 64, 96)
    cam = grad_cam(model, x)
    assert cam.shape == (3, 64, 96) and cam.dtype == torch.float32
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0
    assert model.training and all(p.grad is None for p in model.parameters())
