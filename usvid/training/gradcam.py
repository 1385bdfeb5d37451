"""Grad-CAM on the last FEX convolution block (paper section 4.5).

The class score's gradient with respect to f4 (the output of the models' ``gradcam_layer()``: ResNet's
``backbone.layer4[-1]``, EfficientNet-Lite's head BN + activation), averaged over space, weights f4's channels; the ReLU of the weighted sum, upsampled to
the input and scaled to [0, 1] per frame, is the map. Pixels outside ``valid`` (the letterbox padding of a stored
frame: black bars, no image) are set to 0 before scaling, so neither the heat drawn there nor the peak the map is
scaled by comes from where there is no image. In eval mode every frame's score depends only on its own
features, so a whole batch is explained with one backward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def target_layer(model: nn.Module) -> nn.Module:
    """The module Grad-CAM explains: the model's ``gradcam_layer()``, else its last ``Conv2d``."""
    if hasattr(model, "gradcam_layer"):
        return model.gradcam_layer()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model has no convolution to explain")
    return convs[-1]


def grad_cam(model: nn.Module, x: torch.Tensor, class_index: torch.Tensor | None = None,
             valid: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM maps.

    Args:
        model: a usvid network (its output has ``logits``); put in eval mode here and restored after.
        x: ``(B, C, H, W)`` float network input (preprocessed).
        class_index: ``(B,)`` int64 classes to explain; None = each frame's predicted class.
        valid: ``(B, H, W)`` bool, True where the frame shows image; the map is exactly 0 elsewhere. None = all.
    Returns:
        ``(B, H, W)`` float32 in [0, 1].
    """
    layer = target_layer(model)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # keeps the graph alive even if every parameter is frozen
            logits = model(x).logits
            if class_index is None:
                class_index = logits.argmax(1)
            score = logits.gather(1, class_index.view(-1, 1).to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, captured[-1])
    finally:
        handle.remove()
        model.train(was_training)
    feats = captured[-1].detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * feats).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    if valid is not None:
        if valid.shape != cam.shape:
            raise ValueError(f"valid must be (B, H, W) = {tuple(cam.shape)}, got {tuple(valid.shape)}")
        cam = cam * valid.to(device=cam.device, dtype=cam.dtype)
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / peak).float()
