"""Training configuration: one frozen dataclass, loadable from JSON/YAML that rejects unknown keys.

Defaults follow the paper (section 3.3): Adam, lr 1e-3, batch 8, tau 0.8, alpha 0.1, lambda 0.5,
100 classification epochs. Choices the paper leaves open are documented on the fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from usvid.errors import ConfigError, MissingDependencyError, did_you_mean, require_file, unknown_name

PseudoSource = Literal["self", "stage1", "ema"]
ClassBalance = Literal["none", "oversample", "undersample"]
Scheduler = Literal["none", "cosine"]
Device = Literal["auto", "cpu", "cuda"]

#: Fields a resumed run may change; everything else must match the run being resumed.
RESUMABLE_CHANGES = frozenset({"epochs", "device", "num_workers", "log_every"})


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
    weight_decay: float = 0.0
    scheduler: Scheduler = "none"
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
    rotation_degrees: float = 15.0
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    # Model overrides passed to usvid.models.create_model (None = the variant's default).
    use_cam: bool | None = None
    use_sam: bool | None = None
    use_mam: bool | None = None
    #: Path to a torchvision ResNet state dict for the FEX (no downloads happen at run time).
    pretrained: str | None = None
    seed: int = 0
    device: Device = "auto"
    #: Mixed precision (bf16 where supported, else fp16 with a grad scaler); CUDA only.
    amp: bool = True
    #: channels-last memory format; CUDA only (it slows small CPU convolutions).
    channels_last: bool = True
    num_workers: int = 2
    log_every: int = 10

    def __post_init__(self) -> None:
        self._check_literals()
        if self.size <= 0 or self.size % 32:
            raise ConfigError(f"size must be a positive multiple of 32 (the network's stride), got {self.size}")
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
        if self.num_workers < 0 or self.log_every < 1:
            raise ConfigError("num_workers must be >= 0 and log_every >= 1")

    def _check_literals(self) -> None:
        for name, kind in (
            ("pseudo_source", PseudoSource),
            ("class_balance", ClassBalance),
            ("scheduler", Scheduler),
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


def load_config(path: str | Path) -> TrainConfig:
    """Read a :class:`TrainConfig` from a ``.json`` or ``.yaml``/``.yml`` file (YAML needs PyYAML)."""
    path = require_file(path, "training config")
    text = path.read_text()
    if path.suffix.lower() in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(
                f"{path}: reading YAML needs PyYAML (pip install pyyaml), or write the config as JSON"
            ) from None
        data = yaml.safe_load(text) or {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return TrainConfig.from_dict(data)


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

