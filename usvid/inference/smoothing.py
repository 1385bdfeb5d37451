"""Temporal smoothing of per-frame predictions, to stop an overlay flickering (``usvid stream``, ``usvid predict``).

Exponential moving averages in *source time*: the weight of a new frame is ``1 - exp(-dt / tau)``, so the
smoothing behaves the same whether the model keeps up with 30 fps or the newest-frame policy leaves it 12.
* class probabilities: EMA (an average of distributions is still a distribution);
* lesion presence: EMA of 0/1, the box is shown while it is >= 0.5 (hysteresis against one-frame blinks);
* box corners: EMA while consecutive boxes overlap (IoU >= ``reset_iou``), otherwise the box jumps to the
  new lesion at once instead of sliding across the image.

:meth:`TemporalSmoother.per_frame` is the plain per-frame EMA of the older ``usvid predict --smooth ALPHA``: a
fixed weight per frame, and a frame with no lesion drops the box at once. Smoothing is off by default in both
``usvid predict`` and ``usvid stream``, so per-frame results are the model's own.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from usvid.boxes import Box
from usvid.errors import ConfigError

#: Time constant of the smoothing of ``usvid predict --smoothing`` and ``usvid stream --smoothing``, seconds.
DEFAULT_TAU_S = 0.15


class Smoothed(NamedTuple):
    """A smoothed prediction: ``probs`` ``(K,)`` float32 in [0, 1] summing to 1; ``box`` in frame pixels
    with its smoothed score, or ``None`` for no lesion."""

    probs: np.ndarray
    box: Box | None


class TemporalSmoother:
    """Stateful smoother for one stream; call :meth:`update` once per inferred frame, in time order.

    Args:
        tau_s: time constant of the EMA, in seconds of source time.
        reset_iou: a new box overlapping the smoothed one less than this replaces it (0: always blend).
        alpha: fixed weight of every frame after the first, in (0, 1] (1 = off), instead of the source-time
            weight; times then only order the frames.
        hysteresis: keep showing the box while the presence EMA is >= 0.5; without it a frame with no lesion
            drops the box and its history at once.
    """

    def __init__(
        self, tau_s: float = DEFAULT_TAU_S, reset_iou: float = 0.1, *, alpha: float | None = None, hysteresis: bool = True
    ) -> None:
        if tau_s <= 0:
            raise ValueError(f"tau_s must be positive, got {tau_s}")
        if alpha is not None and not 0.0 < alpha <= 1.0:
            raise ConfigError(f"smoothing alpha must lie in (0, 1] (1 = off), got {alpha}")
        self.tau_s = tau_s
        self.reset_iou = reset_iou
        self.alpha = alpha
        self.hysteresis = hysteresis
        self.reset()

    @classmethod
    def per_frame(cls, alpha: float) -> TemporalSmoother:
        """Per-frame EMA with weight ``alpha`` for the newest frame; boxes always blend, no hysteresis."""
        return cls(reset_iou=0.0, alpha=alpha, hysteresis=False)

    def reset(self) -> None:
        """Forget the past (after a reconnection or a change of frame size)."""
        self._t: float | None = None
        self._probs: np.ndarray | None = None
        self._presence = 0.0
        self._box: np.ndarray | None = None
        self._score = 0.0

    def weight(self, t_seconds: float) -> float:
        """Weight of a frame at ``t_seconds`` (1 for the first frame and after a jump back in time)."""
        if self._t is None:
            return 1.0
        if self.alpha is not None:
            return self.alpha
        if t_seconds <= self._t:
            return 1.0
        return 1.0 - math.exp(-(t_seconds - self._t) / self.tau_s)

    def update(self, t_seconds: float, probs: np.ndarray | torch.Tensor, box: Box | None) -> Smoothed:
        """Fold in one frame's prediction.

        Args:
            t_seconds: the frame's time on the source's timeline (with ``alpha``, any increasing number).
            probs: ``(K,)`` class probabilities in [0, 1].
            box: the model's box in frame pixels (its score, None read as 0), or ``None`` for no lesion.
        """
        if isinstance(probs, torch.Tensor):
            probs = probs.detach().float().cpu().numpy()
        probs = np.asarray(probs, dtype=np.float32)
        if self._probs is not None and self._probs.shape != probs.shape:
            self.reset()
        if self._t is not None and t_seconds < self._t:
            self.reset()  # the timeline restarted (a new connection): old state describes another scene
        a = self.weight(t_seconds)
        self._t = t_seconds
        self._probs = probs.copy() if self._probs is None else a * probs + (1 - a) * self._probs
        self._presence = a * float(box is not None) + (1 - a) * self._presence
        if box is None and not self.hysteresis:
            self._box = None
        if box is not None:
            new, score = np.asarray(box.as_xyxy(), dtype=np.float64), float(box.score or 0.0)
            if self._box is None or Box.from_xyxy(*self._box).iou(box) < self.reset_iou:
                self._box, self._score = new, score
            else:
                self._box = a * new + (1 - a) * self._box
                self._score = a * score + (1 - a) * self._score
        shown = self._box is not None and (not self.hysteresis or self._presence >= 0.5)
        out_box = Box.from_xyxy(*(float(v) for v in self._box), score=self._score) if shown else None
        return Smoothed(self._probs.astype(np.float32), out_box)
