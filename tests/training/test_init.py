"""``usvid train --init``: fine-tuning starts from a checkpoint's (or a shipped model's) whole network."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner
from usvid.cli.app import app

from tests.helpers.stores import make_store, tiny_config
from usvid.checkpoint import load_checkpoint
from usvid.errors import ConfigError
from usvid.training.loop import _build_model


def test_init_starts_from_every_weight_of_the_checkpoint(trained_run):
    _, result = trained_run
    start = load_checkpoint(result.best)
    model = _build_model(tiny_config(init=str(result.best)), ["benign", "malignant"])
    assert model.training
    got = model.state_dict()
    assert got.keys() == start.state_dict.keys()
    assert all(torch.equal(got[k], start.state_dict[k]) for k in got)
    # ... which a fresh model is not
    fresh = _build_model(tiny_config(), ["benign", "malignant"]).state_dict()
    assert not all(torch.equal(fresh[k], got[k]) for k in got if got[k].is_floating_point())


def test_init_refuses_other_classes_network_or_size(trained_run):
    _, result = trained_run
    with pytest.raises(ConfigError, match="trained on classes"):
        _build_model(tiny_config(init=str(result.best)), ["cyst", "fibroadenoma"])
    with pytest.raises(ConfigError, match="holds a lanet_tiny network"):
        _build_model(tiny_config(init=str(result.best), model="resnet18_cls"), ["benign", "malignant"])
    with pytest.raises(ConfigError, match="trained at 64 px"):
        _build_model(tiny_config(init=str(result.best), size=96), ["benign", "malignant"])


def test_cli_init_takes_the_checkpoints_network_and_trains(trained_run, tmp_path):
    _, result = trained_run
    make_store(tmp_path / "store", seed=1)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(tmp_path / "store"), "--init", str(result.best), "--out", str(out),
                                   "--size", "64", "--stage1-epochs", "0", "--epochs", "1", "--batch-size", "4",
                                   "--device", "cpu", "--frames-per-video", "4"])
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(out / "last.pt")
    assert ck.trained_model_name == "lanet_tiny"
    assert ck.train_state["config"]["init"] == str(result.best)

