"""TrainConfig: paper defaults, validation, loading from files, resume compatibility."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usvid.errors import ConfigError, MissingDependencyError
from usvid.training.config import TrainConfig, check_resume_compatible, load_config


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
