"""``usvid models`` lists variants with params and FLOPs; bad options give one clear line."""

from __future__ import annotations

from typer.testing import CliRunner

from usvid.cli.app import app
from usvid.models import model_config, summarize_config

runner = CliRunner()


def test_models_table_lists_matching_variants():
    result = runner.invoke(app, ["models", "--match", "tiny", "--sizes", "64,128"])
    assert result.exit_code == 0, result.output
    for name in ("lanet_tiny", "rmtl_tiny", "resnet_tiny"):
        assert name in result.output
    assert "lanet_r18" not in result.output
    summary = summarize_config("lanet_tiny", model_config("lanet_tiny"), (64, 128))
    assert f"{summary.gflops(128):.2f}" in result.output
    assert "GFLOPs @128" in result.output


def test_models_rejects_bad_sizes():
    result = runner.invoke(app, ["models", "--sizes", "250"])
    assert result.exit_code == 2
    assert "multiples of 32" in result.output


def test_models_rejects_unmatched_filter():
    result = runner.invoke(app, ["models", "--match", "vgg"])
    assert result.exit_code == 2
    assert "no model name contains 'vgg'" in result.output


def test_models_latency_column_times_every_listed_model():
    result = runner.invoke(app, ["models", "--match", "tiny", "--sizes", "64", "--latency", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "CPU ms @256" in result.output
    rows = [line for line in result.output.splitlines() if "_tiny" in line or "tiny_cls" in line]
    assert len(rows) == 3
    for row in rows:  # the last cell of each row is a positive number of milliseconds
        cells = [c.strip() for c in row.strip("│┃| ").split("│")]
        assert float(cells[-1]) > 0


def test_models_match_takes_a_glob():
    result = runner.invoke(app, ["models", "--match", "lanet_r*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "lanet_r18" in result.output and "lanet_r101" in result.output
    assert "lanet_tiny" not in result.output and "rmtl_r18" not in result.output
    assert "next: usvid train" in result.output
