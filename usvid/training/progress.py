"""Progress events the training loop reports; the CLI renders them with rich, tests just collect them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple


class TrainEvent(NamedTuple):
    """One report from :func:`usvid.training.loop.fit`.

    ``kind``: "step" (every ``log_every`` steps and the last of an epoch), "epoch" (after validation; ``val``
    holds its metrics) or "stage" (a stage starts; ``steps`` is the steps per epoch).
    ``losses``: running means over the epoch so far ("loss", "cls", "loc", "pseudo").
    """

    kind: Literal["stage", "step", "epoch"]
    stage: int
    epoch: int
    epochs: int
    step: int
    steps: int
    losses: dict[str, float]
    accuracy: float | None = None
    frames_per_s: float = 0.0
    eta_s: float | None = None
    val: dict[str, float | None] | None = None


ProgressFn = Callable[[TrainEvent], None]
