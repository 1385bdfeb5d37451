"""The paper's losses (equations 5 and 6).

- ``L_loc``: pixel-wise binary cross-entropy between the predicted lesion mask P and the ground truth
  brought down to P's ``S_n x S_n`` grid by area averaging (so a target cell holds the lesion's share of it).
- ``L_hyb = lam * L_cls + (1 - lam) * (L_loc(annotated) + alpha * L_loc(pseudo))``.
- Pseudo-label ``binarize(P', tau)``: 1 where ``P' >= tau`` else 0, per pixel, from a P' that carries no
  gradient (see :func:`pseudo_labels`).

Losses are computed in float32 outside autocast. The mask loss is taken from the pre-sigmoid mask logits
(``ModelOutput.mask_logits``) with ``binary_cross_entropy_with_logits`` whenever the model gives them: a mask
that leaves a bf16 autocast region as a probability has already lost its saturated pixels (``sigmoid(8)`` is
exactly 1.0 in bf16, so BCE clamps its log and no gradient flows back through the sigmoid). Models without
``mask_logits`` fall back to BCE on the probabilities.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """Scalar loss tensors of one step; ``total`` is what gets back-propagated."""

    total: torch.Tensor
    cls: torch.Tensor
    loc: torch.Tensor
    pseudo: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {"loss": float(self.total), "cls": float(self.cls), "loc": float(self.loc), "pseudo": float(self.pseudo)}


def mask_target(mask: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Ground truth on the grid of the mask it supervises (P's, or the mask logits' own).

    Args:
        mask: ``(B, 1, M, M)`` float in {0, 1}.
        size: ``S`` or ``(S_h, S_w)`` of the supervised mask.
    Returns:
        ``(B, 1, S_h, S_w)`` float32 in [0, 1]: the lesion fraction of each cell.
    """
    return F.adaptive_avg_pool2d(mask.float(), size)


def binarize(prob: torch.Tensor, tau: float) -> torch.Tensor:
    """Equation 6's ``binarize(P', tau)``: ``(prob >= tau)`` as float, no gradient."""
    return (prob.detach() >= tau).float()


def loc_loss(
    pred: torch.Tensor, target: torch.Tensor, select: torch.Tensor | None = None, *, from_logits: bool = False
) -> torch.Tensor:
    """Equation 5: mean pixel-wise BCE over the selected frames (0 when none is selected), in float32.

    Args:
        pred: ``(B, 1, S, S)`` probabilities in [0, 1] (after the model's sigmoid), or pre-sigmoid logits
            (any float dtype, e.g. bf16 from autocast) when ``from_logits``.
        target: ``(B, 1, S, S)`` in [0, 1].
        select: ``(B,)`` bool, frames that count; None = all.
        from_logits: ``pred`` holds logits: the sigmoid is folded into the loss (exact gradient when saturated).
    """
    if select is not None:
        pred, target = pred[select], target[select]
    if pred.numel() == 0:
        return pred.new_zeros((), dtype=torch.float32)
    with torch.autocast(device_type=pred.device.type, enabled=False):
        if from_logits:
            return F.binary_cross_entropy_with_logits(pred.float(), target.float())
        return F.binary_cross_entropy(pred.float(), target.float())


def cls_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy (with optional label smoothing). logits: ``(B, K)``; labels: ``(B,)`` int64 in [0, K)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def hybrid_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    pred: torch.Tensor | None,
    target: torch.Tensor | None,
    annotated: torch.Tensor,
    pseudo_target: torch.Tensor | None,
    *,
    lam: float,
    alpha: float,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
) -> LossTerms:
    """Equation 6. Models without a mask (``pred`` None) train on ``L_cls`` alone.

    Args:
        logits: ``(B, K)``; labels: ``(B,)`` int64.
        pred: ``(B, 1, S, S)`` P in [0, 1], its pre-sigmoid logits when ``from_logits``, or None.
        target: ``(B, 1, S, S)`` ground truth (rows of unannotated frames are ignored).
        annotated: ``(B,)`` bool.
        pseudo_target: ``(B, 1, S, S)`` in {0, 1}, used on the unannotated rows; None = no pseudo term.
        label_smoothing: of ``L_cls`` (0 = the paper's plain cross-entropy).
    """
    l_cls = cls_loss(logits, labels, label_smoothing)
    zero = l_cls.new_zeros(())
    if pred is None:
        return LossTerms(l_cls, l_cls, zero, zero)
    l_loc = loc_loss(pred, target, annotated, from_logits=from_logits) if target is not None else zero
    unannotated = ~annotated
    l_pseudo = (loc_loss(pred, pseudo_target, unannotated, from_logits=from_logits)
                if pseudo_target is not None else zero)
    total = lam * l_cls + (1.0 - lam) * (l_loc + alpha * l_pseudo)
    return LossTerms(total, l_cls, l_loc, l_pseudo)
