"""The FLOP table behind ``usvid models``: the same numbers a live count gives, and no torch import to read it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from usvid.models import count_parameters, list_models, model_config, summarize_config
from usvid.models.flops import config_key, table_source
from usvid.models.flops_table import TABLE


@pytest.mark.parametrize("name", ["lanet_tiny", "rmtl_tiny", "resnet_tiny_cls", "lanet_effl0"])
def test_table_holds_what_a_live_count_gives(name):
    config = model_config(name)
    entry = TABLE[config_key(config)]
    live = summarize_config(name, config, (256, 512), cached=False)
    assert entry["name"] == name
    assert entry["params"] == live.params
    assert entry["flops"] == {str(s): f for s, f in live.flops.items()}
    assert summarize_config(name, config, (256, 512)) == live  # the cached path gives the same summary


def test_every_registered_variant_is_in_the_table():
    missing = [n for n in list_models() if config_key(model_config(n)) not in TABLE]
    assert missing == [], "stale usvid/models/flops_table.py: run `python -m usvid.models.flops`"


def test_a_config_or_size_not_in_the_table_is_counted_live():
    import torch

    from usvid.models import build_model, count_flops

    config = model_config("lanet_tiny", num_classes=3)
    assert config_key(config) not in TABLE
    summary = summarize_config("three", config, (64,))
    with torch.device("meta"):
        assert summary.params == count_parameters(build_model(config))
    assert summary.flops == {64: count_flops(config, 64)}
    # a size the table lacks for a tabled config is counted too, not dropped
    assert summarize_config("lanet_tiny", model_config("lanet_tiny"), (64,)).flops == {
        64: count_flops(model_config("lanet_tiny"), 64)}


def test_usvid_models_lists_from_the_table_without_importing_torch():
    code = ("import sys; from typer.testing import CliRunner; from usvid.cli.app import app; "
            "r = CliRunner().invoke(app, ['models']); assert r.exit_code == 0, r.output; "
            "assert 'lanet_r101' in r.output; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_the_whole_table_is_current():
    from pathlib import Path

    import usvid.models.flops_table as table

    assert Path(table.__file__).read_text() == table_source()
