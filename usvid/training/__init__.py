"""Training and evaluation: the paper's two-stage semi-supervised schedule (``fit``) and held-out evaluation
(``evaluate_checkpoint``). ``usvid repeat`` (:mod:`usvid.training.repeat`) runs the paper's comparisons over seeds.

Quick start::

    from usvid.training import TrainConfig, fit, evaluate_checkpoint
    result = fit(TrainConfig(model="lanet_r18", size=256, epochs=100), "store/", "runs/lanet")
    evaluate_checkpoint(result.best, "store/", "test", "runs/lanet/eval")
"""

from usvid.training.config import TrainConfig, load_config
from usvid.training.eval import EvalResult, evaluate_checkpoint
from usvid.training.loop import (
    FitResult,
    TrainingDiverged,
    evaluate,
    fit,
    train_stage1_epoch,
    train_stage2_epoch,
)
from usvid.training.progress import TrainEvent

__all__ = [
    "EvalResult", "FitResult", "TrainConfig", "TrainEvent", "TrainingDiverged", "evaluate", "evaluate_checkpoint",
    "fit", "load_config", "train_stage1_epoch", "train_stage2_epoch",
]
