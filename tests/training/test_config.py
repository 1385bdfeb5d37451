"""TrainConfig: paper defaults, validation, loading from files, resume compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usvid.errors import ConfigError, MissingDependencyError
from usvid.training.config import RECIPES, TrainConfig, check_resume_compatible, load_config, recipe_config


def test_defaults_follow_the_paper():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.tau, cfg.alpha, cfg.lam) == (1e-3, 8, 100, 0.8, 0.1, 0.5)
    assert cfg.pseudo_source == "self"


def test_round_trip_and_merge():
    cfg = TrainConfig(model="lanet_tiny", size=64)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.merged(epochs=3).epochs == 3 and cfg.merged(epochs=3).size == 64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 100}, "multiple of 32"),
        ({"tau": 1.5}, "tau must be in"),
        ({"batch_size": 0}, "batch_size"),
        ({"annotated_per_batch": 9}, "annotated_per_batch"),
        ({"pseudo_source": "teacher"}, "unknown pseudo source 'teacher'"),
        ({"frames_per_video": 0}, "frames_per_video"),
        ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
        ({"schedule_unit": "steps"}, "unknown schedule unit 'steps'.*Did you mean 'step'"),
        ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
        ({"fex_lr_scale": 0.0}, "fex_lr_scale must be positive"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"weight_ema_decay": 1.0}, r"weight_ema_decay must be in \(0, 1\)"),
        ({"rrc_scale": (0.9, 0.5)}, "rrc_scale must be a .low, high. pair"),
        ({"rrc_scale": (0.5, 1.5)}, "rrc_scale"),
    ],
)
def test_bad_values_are_rejected(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="unknown training option 'stage1_epoch'.*stage1_epochs"):
        TrainConfig.from_dict({"stage1_epoch": 3})


def test_load_json(tmp_path: Path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"model": "lanet_tiny", "epochs": 7}))
    assert load_config(path) == TrainConfig(model="lanet_tiny", epochs=7)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_load_yaml_needs_pyyaml_or_works(tmp_path: Path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 4\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="pyyaml"):
            load_config(path)
    else:
        assert load_config(path).epochs == 4


def test_resume_may_extend_epochs_but_not_change_the_experiment(tmp_path: Path):
    saved = TrainConfig(model="lanet_tiny")
    check_resume_compatible(saved, saved.merged(epochs=200, device="cpu"), tmp_path)
    with pytest.raises(ConfigError, match="lr: 0.001 -> 0.01"):
        check_resume_compatible(saved, saved.merged(lr=0.01), tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_split": "test"}, "val_split 'test' is not allowed: best.pt is chosen on the validation split"),
        ({"train_split": "val"}, "train_split and val_split are both 'val'"),
        ({"train_split": "all", "val_split": "all"}, "both 'all'"),
    ],
)
def test_model_selection_on_test_or_on_training_frames_is_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)


def test_recipe_defaults_keep_the_paper():
    cfg = TrainConfig()
    assert recipe_config("paper") == cfg
    assert (cfg.optimizer, cfg.scheduler, cfg.warmup_epochs, cfg.label_smoothing, cfg.fex_lr_scale) == (
        "adam", "none", 0.0, 0.0, 1.0)
    assert cfg.rrc_scale is None and cfg.weight_ema_decay is None and cfg.pretrained is None


def test_finetune_recipe():
    cfg = recipe_config("finetune")
    assert (cfg.model, cfg.pretrained, cfg.optimizer, cfg.scheduler) == ("lanet_effl0", "imagenet", "adamw", "cosine")
    assert cfg.rrc_scale == (0.75, 1.0) and cfg.label_smoothing == 0.1 and cfg.warmup_epochs == 0.25
    with pytest.raises(ConfigError, match="unknown recipe 'fintune'.*Did you mean 'finetune'"):
        recipe_config("fintune")
    assert set(RECIPES) == {"paper", "finetune"}


def test_config_file_goes_over_the_recipe_and_lists_become_tuples(tmp_path: Path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"lr": 3e-4, "rrc_scale": [0.5, 1.0]}))
    cfg = load_config(path, recipe_config("finetune"))
    assert cfg.lr == 3e-4 and cfg.rrc_scale == (0.5, 1.0) and cfg.optimizer == "adamw"
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # round trip through JSON
    path.write_text(json.dumps({"val_split": "test"}))
    with pytest.raises(ConfigError, match="train.json: val_split 'test' is not allowed"):
        load_config(path)


def test_recipe_file_in_the_repository_loads():
    path = Path(__file__).parents[2] / "recipes" / "lanet-effl0-bus.json"
    cfg = load_config(path)
    assert cfg.model == "lanet_effl0" and cfg.size == 256 and cfg.pretrained == "imagenet"
    assert {k: getattr(cfg, k) for k in RECIPES["finetune"]} == {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in RECIPES["finetune"].items()}


def test_old_run_configs_without_the_new_options_still_resume(tmp_path: Path):
    old = {k: v for k, v in TrainConfig(model="lanet_tiny").to_dict().items()
           if k not in {"optimizer", "warmup_epochs", "schedule_unit", "fex_lr_scale", "label_smoothing",
                        "weight_ema_decay", "rrc_scale", "rrc_ratio"}}
    saved = TrainConfig.from_dict(old)
    check_resume_compatible(saved, TrainConfig(model="lanet_tiny", epochs=200), tmp_path)
    with pytest.raises(ConfigError, match="weight_ema_decay: None -> 0.999"):
        check_resume_compatible(saved, TrainConfig(model="lanet_tiny", weight_ema_decay=0.999), tmp_path)


def test_shipped_recipe_is_the_study_recipe_with_30_epochs_on_the_16_px_mask_grid():
    recipes = Path(__file__).parents[2] / "recipes"
    study, shipped = (load_config(recipes / name) for name in ("lanet-effl0-bus.json", "shipped-lanet-effl0-bus.json"))
    assert shipped == study.merged(epochs=30, mask_stride=16)
