"""Temporal smoothing across frames: exponential moving average of class probabilities and box.

Off in ``usvid predict`` by default (per-frame results stay the paper's); ``usvid stream`` turns it on to
stop the overlay flickering. ``alpha`` is the weight of the newest frame: 1 means no smoothing.
"""

from __future__ import annotations

import torch

from usvid.errors import ConfigError
from usvid.inference.postprocess import LesionBox


class EmaSmoother:
    """EMA of one stream's probabilities ``(K,)`` and lesion box.

    A box is blended with the previous box only while the lesion stays found; a frame with no lesion
    resets the box history, so a vanished lesion disappears at once instead of fading across the image.
    """

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ConfigError(f"smoothing alpha must lie in (0, 1] (1 = off), got {alpha}")
        self.alpha = alpha
        self._probs: torch.Tensor | None = None
        self._box: tuple[float, float, float, float, float] | None = None

    def reset(self) -> None:
        self._probs, self._box = None, None

    def update(self, probs: torch.Tensor, box: LesionBox | None) -> tuple[torch.Tensor, LesionBox | None]:
        """Blend one frame in; ``probs`` is ``(K,)`` float in [0, 1]. Returns the smoothed pair."""
        a = self.alpha
        probs = probs.float()
        self._probs = probs.clone() if self._probs is None else a * probs + (1 - a) * self._probs
        if box is None:
            self._box = None
            return self._probs.clone(), None
        new = (box.x, box.y, box.w, box.h, box.score)
        self._box = new if self._box is None else tuple(a * n + (1 - a) * o for n, o in zip(new, self._box))
        x, y, w, h, score = self._box
        return self._probs.clone(), LesionBox(round(x), round(y), max(1, round(w)), max(1, round(h)), score)
