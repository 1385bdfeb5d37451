"""Repeated runs: per-seed metrics, mean and 95% CI, resumable studies."""

from __future__ import annotations

import json
import math

import pytest

from usvid.training import repeat
from usvid.training.metrics import mean_ci95


def test_study_summarises_seeds_and_reuses_finished_runs(tiny_store, tmp_path, config_factory, monkeypatch):
    base = config_factory(epochs=1)
    variants = {"lanet": {"model": "lanet_tiny"}, "vanilla": {"model": "resnet_tiny_cls"}}
    result = repeat.repeat_runs(tiny_store, base, variants, [0, 1], tmp_path)
    assert [r["seed"] for r in result.variants["lanet"]] == [0, 1]
    accs = [r["frame_accuracy"] for r in result.variants["lanet"]]
    assert result.summary["lanet"]["frame_accuracy"] == pytest.approx(mean_ci95(accs))
    assert math.isnan(result.summary["vanilla"]["frame_jsi_mask"][0])  # a vanilla classifier has no mask

    def strict(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    study = json.loads((tmp_path / "study.json").read_text(), parse_constant=strict)
    assert study["mean_ci95"]["vanilla"]["frame_jsi_mask"] == [None, None]
    assert set(study["mean_ci95"]) == {"lanet", "vanilla"} and study["seeds"] == [0, 1]
    assert "t-interval over seeds" in study["interval"]
    # the positive-class figures, by their new names, at both levels
    row = result.variants["lanet"][0]
    report = json.loads((tmp_path / "lanet" / "seed0" / "eval" / "report.json").read_text())
    for level, key in (("frame", "sensitivity"), ("frame", "ppv"), ("frame", "npv"), ("video", "specificity")):
        assert row[f"{level}_{key}"] == report[f"{level}_level"][key]
    assert "frame_precision" not in row
    table = (tmp_path / "study.md").read_text()
    assert "| lanet | 2 |" in table and "n/a" in table and "t-interval over seeds" in table

    def no_training(*args, **kwargs):
        raise AssertionError("finished runs must be reused")

    monkeypatch.setattr(repeat, "fit", no_training)
    again = repeat.repeat_runs(tiny_store, base, variants, [0, 1], tmp_path)
    assert again.variants == result.variants

    # A report from before the positive-class metrics (macro "sensitivity") is re-evaluated, not reused.
    old = tmp_path / "vanilla" / "seed1" / "eval" / "report.json"
    stale = json.loads(old.read_text())
    for level in ("frame_level", "video_level"):
        stale[level] = {k: v for k, v in stale[level].items() if k != "positive_class"} | {"sensitivity": 123.0}
    old.write_text(json.dumps(stale))
    third = repeat.repeat_runs(tiny_store, base, variants, [0, 1], tmp_path)
    assert third.variants == result.variants
    assert json.loads(old.read_text())["frame_level"]["positive_class"] == "malignant"


def test_paper_studies_are_valid_configs():
    from usvid.training.config import TrainConfig

    for study in repeat.STUDIES.values():
        for overrides in study.values():
            TrainConfig().merged(**overrides)
    assert math.isnan(mean_ci95([])[0])


def test_table_and_json_clip_the_interval_to_what_a_proportion_can_take():
    # Sensitivity 0.6 / 0.8 / 1.0 over three seeds: the raw t-interval is [0.303, 1.297].
    rows = [{"seed": s, "frame_sensitivity": v, "frame_jsi_mask": None} for s, v in enumerate((0.6, 0.8, 1.0))]
    result = repeat.StudyResult(variants={"lanet": rows},
                                summary={"lanet": {k: mean_ci95([r[k] for r in rows])
                                                   for k in ("frame_sensitivity", "frame_jsi_mask")}})
    low = 0.8 - 4.303 * 0.2 / math.sqrt(3)
    table = repeat.markdown_table(result, keys=("frame_sensitivity", "frame_jsi_mask"))
    assert f"| lanet | 3 | 0.800 [{low:.3f}, 1.000] | n/a |" in table and "clipped to [0, 1]" in table
    study = result.to_dict()
    assert study["ci95_t"]["lanet"]["frame_sensitivity"] == [pytest.approx(low), 1.0]
    assert study["ci95_t"]["lanet"]["frame_jsi_mask"] == [None, None]
    # The unclipped [mean, half-width] stays as it was for scripts that read it.
    assert study["mean_ci95"]["lanet"]["frame_sensitivity"] == [pytest.approx(0.8), pytest.approx(0.8 - low)]
