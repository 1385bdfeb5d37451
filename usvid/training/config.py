"""Training configuration: one frozen dataclass, loadable from JSON/YAML that rejects unknown keys.

Defaults follow the paper (section 3.3): Adam, lr 1e-3, batch 8, tau 0.8, alpha 0.1, lambda 0.5,
100 classification epochs. Choices the paper leaves open are documented on the fields.

Named recipes (:data:`RECIPES`) are bundles of options laid over these defaults: ``paper`` (the defaults
themselves) and ``finetune`` (for ImageNet-initialised EfficientNet-Lite FEXs). The CLI applies them as
recipe < ``--config FILE`` < flags.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from usvid import configfile
from usvid.errors import ConfigError, did_you_mean, unknown_name
from usvid.models.config import MAX_INPUT_SIZE
from usvid.outputs import check_path_text

PseudoSource = Literal["self", "stage1", "ema"]
ClassBalance = Literal["none", "oversample", "undersample"]
Scheduler = Literal["none", "cosine"]
ScheduleUnit = Literal["epoch", "step"]
OptimizerName = Literal["adam", "adamw"]
Device = Literal["auto", "cpu", "cuda"]

#: Fields a resumed run may change; everything else must match the run being resumed.
RESUMABLE_CHANGES = frozenset({"epochs", "device", "num_workers", "log_every"})


#: The held-out split: only `usvid eval` reads it; nothing is chosen on it.
TEST_SPLIT = "test"


def refuse_test_split(option: str, split: str, chosen: str, fix: str) -> None:
    """Raise :class:`ConfigError` when ``split`` (the value of ``option``) is the test split.

    Whatever is chosen on a split (``chosen``: best.pt, the mask threshold) has seen it, so choosing on test would
    leak it into the model and make the test figures optimistic.
    """
    if split == TEST_SPLIT:
        raise ConfigError(f"{option} '{split}' is not allowed: {chosen} is chosen on the validation split, never "
                          f"on '{split}' (that would leak the test split into the model); {fix}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. The resolved config is written to ``RUN/config.json``."""

    model: str = "lanet_r18"
    #: Network input size M (the paper uses 256 and 512); stored frames are resized to M x M.
    size: int = 256
    #: t_l: stage-1 epochs (FEX + LA-Net on annotated frames, L_loc only). Skipped for models without a mask.
    stage1_epochs: int = 10
    #: t_c: stage-2 epochs (all networks, L_hyb).
    epochs: int = 100
    #: Frames per optimizer step on each process (m + m').
    batch_size: int = 8
    #: m: annotated frames per stage-2 batch. None = in proportion to the annotated share of the epoch's
    #: frames, at least 1 while any annotated frame exists (video data has ~2% boxes; one per batch keeps
    #: the supervised localisation anchor in every step).
    annotated_per_batch: int | None = None
    lr: float = 1e-3
    #: "adam" (the paper; weight_decay is L2 added to the gradient) or "adamw" (decoupled weight decay, not
    #: applied to biases and normalisation weights).
    optimizer: OptimizerName = "adam"
    weight_decay: float = 0.0
    #: Stage-2 learning-rate schedule after any warm-up: "none" (constant, the paper) or "cosine" (to 0 at the
    #: end of the last epoch). The schedule follows the current ``epochs``: a resumed run given more epochs
    #: stretches the remaining cosine over the new total (the lr never climbs back up).
    scheduler: Scheduler = "none"
    #: Linear learning-rate warm-up at the start of each stage, in epochs (fractions make sense with
    #: ``schedule_unit="step"``); 0 = none (the paper).
    warmup_epochs: float = 0.0
    #: How often warm-up and schedule move the lr: once per "epoch" (the paper's granularity) or every optimizer
    #: "step" (smoother; better when there are only a few epochs).
    schedule_unit: ScheduleUnit = "epoch"
    #: lr multiplier of the FEX (backbone) parameters; < 1 keeps ImageNet-pretrained features close to home.
    fex_lr_scale: float = 1.0
    #: Label smoothing of L_cls (0 = the paper's plain cross-entropy).
    label_smoothing: float = 0.0
    #: Decay of an exponential moving average of the model weights, updated after every optimizer step (with
    #: the usual ``min(decay, (1 + t) / (10 + t))`` start-up so short runs are not stuck near the initial
    #: weights). The average is what validation scores, what ``best.pt`` and ``FitResult.model`` hold, and it is
    #: saved in ``last.pt`` so resume is exact (``last.pt``'s own weights stay the raw ones it resumes from).
    #: None = off (the paper). Not the "ema" pseudo-label teacher (``pseudo_source``/``ema_decay``).
    weight_ema_decay: float | None = None
    #: tau of equation 6: per-pixel threshold turning P' into the pseudo-label.
    tau: float = 0.8
    #: alpha of equation 6: weight of the pseudo-label term.
    alpha: float = 0.1
    #: lambda of equation 6: weight of L_cls against L'_loc.
    lam: float = 0.5
    #: Where the pseudo-label comes from: "self" = the model's own P' in the same step, detached (the paper and
    #: the authors' code); "stage1" = a frozen copy of the model after stage 1; "ema" = an EMA teacher.
    pseudo_source: PseudoSource = "self"
    ema_decay: float = 0.99
    #: Cap on unannotated frames drawn per video per epoch (scan videos hold thousands of near-identical
    #: frames); None = all. Annotated frames are never capped.
    frames_per_video: int | None = 64
    #: Per-class frame counts of each epoch made equal by resampling ("oversample" = repeat minority frames).
    class_balance: ClassBalance = "oversample"
    #: Fraction of annotated patients whose annotations are kept (the paper's 25/50/75% study), seeded.
    box_fraction: float = 1.0
    #: Frames per video used for per-epoch validation (evenly spaced); None = all.
    val_frames_per_video: int | None = 16
    train_split: str = "train"
    val_split: str = "val"
    # Augmentation (Kornia, on the training device, image and mask together).
    #: Random resized crop first (area share range of the crop, then resized back to M x M; mask nearest);
    #: None = off (the paper's text). The authors' code crops with (0.75, 1.0).
    rrc_scale: tuple[float, float] | None = None
    #: Aspect-ratio range of the random resized crop.
    rrc_ratio: tuple[float, float] = (0.75, 4 / 3)
    rotation_degrees: float = 15.0
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    # Model overrides passed to usvid.models.create_model (None = the variant's default).
    use_cam: bool | None = None
    use_sam: bool | None = None
    use_mam: bool | None = None
    #: LA-Net's fusion of f1..f3 onto f4's grid: "bilinear" (the authors') or "area" (every position averaged).
    fusion_pool: str | None = None
    #: LA-Net's starting lesion probability (the fusion BN's bias = its logit); None = the paper's init.
    mask_prior: float | None = None
    #: Input pixels per cell of LA-Net's mask P: 32 (f4's grid, the paper's), 16 or 8; None = the variant's.
    mask_stride: int | None = None
    #: FEX initialisation passed to create_model: a torchvision ResNet state-dict path, or "imagenet" for
    #: the variants that ship ImageNet weights (EfficientNet-Lite); None = the paper's Xavier init.
    #: No downloads happen at run time.
    pretrained: str | None = None
    #: Whole-network starting weights (fine-tuning): a usvid checkpoint or a shipped model's name such as
    #: ``lanet-effl0-bus``. The network is then the checkpoint's (``model`` must name the same one or be left
    #: at the checkpoint's), its classes must be the store's, and ``pretrained`` is not used.
    init: str | None = None
    seed: int = 0
    device: Device = "auto"
    #: Mixed precision: bf16 autocast on CUDA and on CPUs with native bf16 units (avx512_bf16 / amx_bf16; fp32 on
    #: other CPUs, where emulated bf16 is slower), fp16 with a grad scaler on CUDA without bf16. The mask loss
    #: stays fp32 from logits. The choice is recorded in the run's config.json (``compute``).
    amp: bool = True
    #: channels-last memory format (faster on CUDA and, measured, on CPU at 128-256 px).
    channels_last: bool = True
    #: After training, choose the mask threshold with the best mask JSI on the validation split and store it
    #: in best.pt (usvid.training.calibrate), the default of predict, stream and eval. Models with a mask only.
    calibrate_threshold: bool = True
    #: Data-loading worker processes; None = by device: 0 on the CPU (loader processes take cores from the
    #: compute threads: LA-Net-R18 at 256 px, bf16, 2 cores, 30 steps: 15.3 frames/s with 0 workers, 13.0
    #: with 1; benchmarks/results/cpu_train_workers.json), 2 on CUDA.
    num_workers: int | None = None
    log_every: int = 10

    def __post_init__(self) -> None:
        # JSON and YAML give lists; tuples keep configs comparable (resume checks) and hashable.
        for name in ("rrc_scale", "rrc_ratio"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_literals()
        self._check_splits()
        self._check_recipe_options()
        if self.size <= 0 or self.size % 32 or self.size > MAX_INPUT_SIZE:
            raise ConfigError(
                f"size must be a multiple of 32 (the network's stride) from 32 to {MAX_INPUT_SIZE} (memory grows "
                f"with its square; the paper uses 256 and 512), got {self.size}"
            )
        for name in ("stage1_epochs", "epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.annotated_per_batch is not None and not 0 <= self.annotated_per_batch <= self.batch_size:
            raise ConfigError(
                f"annotated_per_batch must be between 0 and batch_size ({self.batch_size}), "
                f"got {self.annotated_per_batch}"
            )
        for name in ("tau", "alpha", "lam", "box_fraction", "ema_decay", "hflip_p", "vflip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        for name in ("frames_per_video", "val_frames_per_video"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 or None (all frames), got {getattr(self, name)}")
        if (self.num_workers is not None and self.num_workers < 0) or self.log_every < 1:
            raise ConfigError("num_workers must be >= 0 and log_every >= 1")

    def _check_splits(self) -> None:
        refuse_test_split("val_split", self.val_split, "best.pt",
                          "validate on 'val' (or another held-out split) and keep 'test' for `usvid eval`")
        if self.train_split == self.val_split:
            raise ConfigError(
                f"train_split and val_split are both '{self.train_split}': validation must use frames the model "
                "does not train on; set val_split to another split (e.g. 'val')"
            )

    def _check_recipe_options(self) -> None:
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise ConfigError(
                f"weight_decay and warmup_epochs must be >= 0, got {self.weight_decay} and {self.warmup_epochs}"
            )
        if self.fex_lr_scale <= 0:
            raise ConfigError(f"fex_lr_scale must be positive (1 = the FEX trains at lr), got {self.fex_lr_scale}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.weight_ema_decay is not None and not 0.0 < self.weight_ema_decay < 1.0:
            raise ConfigError(
                f"weight_ema_decay must be in (0, 1) (e.g. 0.999) or None (off), got {self.weight_ema_decay}"
            )
        for name, top in (("rrc_scale", 1.0), ("rrc_ratio", math.inf)):
            value = getattr(self, name)
            if value is None and name == "rrc_scale":
                continue
            if value is None or len(value) != 2 or not 0.0 < value[0] <= value[1] <= top:
                raise ConfigError(
                    f"{name} must be a (low, high) pair with 0 < low <= high{' <= 1' if top == 1.0 else ''}, "
                    f"got {value}"
                )

    def _check_literals(self) -> None:
        for name, kind in (
            ("pseudo_source", PseudoSource),
            ("class_balance", ClassBalance),
            ("scheduler", Scheduler),
            ("schedule_unit", ScheduleUnit),
            ("optimizer", OptimizerName),
            ("device", Device),
        ):
            value = getattr(self, name)
            if value not in get_args(kind):
                raise unknown_name(name.replace("_", " "), str(value), get_args(kind))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys are an error (a typo must not silently fall back to a default)."""
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(f"unknown training option '{key}'.{did_you_mean(key, known)}")
        return cls(**data)

    def merged(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` applied (unknown names rejected)."""
        return TrainConfig.from_dict({**self.to_dict(), **overrides})


#: Named bundles of options laid over the defaults (``usvid train --recipe NAME``).
RECIPES: dict[str, dict[str, Any]] = {
    # The paper's section 3.3: Adam at a constant 1e-3, Xavier init, no crop, plain cross-entropy.
    "paper": {},
    # Fine-tuning an ImageNet-initialised EfficientNet-Lite FEX (set epochs for the data at hand).
    "finetune": {
        "model": "lanet_effl0",
        "pretrained": "imagenet",
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-2,
        "scheduler": "cosine",
        # A quarter epoch: the study's CPU schedule is 2 epochs; a longer one can keep it (it is per step).
        "warmup_epochs": 0.25,
        "schedule_unit": "step",
        "label_smoothing": 0.1,
        "rrc_scale": (0.75, 1.0),
        # Averages over the last ~100 steps (a short run has a few hundred; the start-up ramp caps it early on).
        "weight_ema_decay": 0.99,
        # 1.0 retrains the ImageNet features fully (grey ultrasound is far from ImageNet); 0.1 was not compared
        # in the study for lack of CPU time.
        "fex_lr_scale": 1.0,
    },
}


def recipe_config(name: str) -> TrainConfig:
    """The defaults with recipe ``name`` applied (see :data:`RECIPES`)."""
    if name not in RECIPES:
        raise unknown_name("recipe", name, tuple(RECIPES))
    return TrainConfig.from_dict(dict(RECIPES[name]))


def load_config(path: str | Path, base: TrainConfig | None = None) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.json``, ``.yaml``/``.yml`` (needs PyYAML) or ``.toml`` file
    (:func:`usvid.configfile.load_config`: unknown keys and wrong types are refused, naming file and key).

    The file's options are laid over ``base`` (e.g. a recipe's config; default: the plain defaults)."""
    return configfile.load_config(TrainConfig, check_path_text(path, "--config"), base or TrainConfig())


def check_resume_compatible(saved: TrainConfig, wanted: TrainConfig, run: Path) -> None:
    """Refuse to resume with options that would make the continued run a different experiment."""
    diff = [
        f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(wanted, f.name)!r}"
        for f in fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(wanted, f.name)
    ]
    if diff:
        raise ConfigError(
            f"{run}: cannot resume with different options ({'; '.join(diff)}); "
            f"only {', '.join(sorted(RESUMABLE_CHANGES))} may change. Drop those options or use a new --out"
        )

