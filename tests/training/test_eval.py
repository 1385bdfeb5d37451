"""evaluate_checkpoint: report contents, consistency with the predictions, plots, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from usvid.checkpoint import load_checkpoint
from usvid.errors import InputError
from usvid.training.eval import evaluate_checkpoint
from usvid.training.frames import BatchReader, split_frames
from usvid.training.predictions import predict_frames

KEYS = {"accuracy", "f1_macro", "sensitivity", "specificity", "precision", "auc"}


@pytest.fixture(scope="module")
def evaluated(trained_run, tmp_path_factory):
    store, result = trained_run
    out = tmp_path_factory.mktemp("eval")
    return store, result, evaluate_checkpoint(result.best, store, "test", out, device="cpu"), out


def test_report_json_has_both_levels_and_localisation(evaluated):
    _, _, res, out = evaluated
    report = json.loads((out / "report.json").read_text())
    assert KEYS <= set(report["frame_level"]) and KEYS <= set(report["video_level"])
    assert {"jsi_mask", "jsi_box"} <= set(report["frame_level"])
    assert report["frames"] == 24 and report["videos"] == 2 and report["split"] == "test"
    assert 0.0 <= report["frame_level"]["jsi_mask"] <= 1.0 and report["frame_level"]["jsi_frames"] == 6
    assert report == res.report
    md = (out / "report.md").read_text()
    assert "| frame |" in md and "| video |" in md and "JSI mask" in md


def test_frame_and_video_metrics_match_the_predictions(evaluated):
    store, result, res, _ = evaluated
    ckpt = load_checkpoint(result.best)
    frames = split_frames(store, "test", ckpt.class_names)
    preds = predict_frames(ckpt.build_model(), BatchReader(store, frames), range(len(frames)), ckpt.preprocess,
                           __import__("torch").device("cpu"))
    assert res.report["frame_level"]["accuracy"] == pytest.approx(float((preds.probs.argmax(1) == preds.labels).mean()))
    cm = np.array(res.report["frame_level"]["confusion_matrix"])
    assert cm.sum() == 24 and np.trace(cm) == round(24 * res.report["frame_level"]["accuracy"])
    # video level: argmax of the mean frame probability of each video
    ids, labels, probs = preds.video_level()
    expected = float((probs.argmax(1) == labels).mean())
    assert res.report["video_level"]["accuracy"] == pytest.approx(expected)
    assert np.array(res.report["video_level"]["confusion_matrix"]).sum() == len(ids) == 2


def test_plots_are_real_pngs(evaluated):
    _, _, _, out = evaluated
    for name in ("roc_frame", "roc_video", "confusion_frame", "confusion_video", "examples", "gradcam"):
        img = cv2.imread(str(out / f"{name}.png"))
        assert img is not None and img.ndim == 3 and img.shape[0] > 50, name
        assert img.std() > 5, name  # not a blank canvas
    # the overlay tiles draw ground truth in green
    examples = cv2.imread(str(out / "examples.png"))
    green = (examples[..., 1] > 150) & (examples[..., 0] < 80) & (examples[..., 2] < 80)
    assert green.sum() > 50


def test_frames_per_video_cap(trained_run, tmp_path):
    store, result = trained_run
    res = evaluate_checkpoint(result.best, store, "test", tmp_path, frames_per_video=2, device="cpu", num_examples=0)
    # 2 evenly spaced frames per video plus the annotated ones (every 4th frame of a test video)
    assert res.report["frames"] == 2 * len({0, 11} | {0, 4, 8})


def test_store_with_other_classes_is_refused(trained_run, store_factory, tmp_path):
    _, result = trained_run
    other = store_factory(labels=("benign", "malignant", "normal"))
    with pytest.raises(InputError, match=r"also has \['normal'\]"):
        evaluate_checkpoint(result.best, other, "test", tmp_path, device="cpu")


def test_checkpoint_for_another_architecture_is_refused(trained_run, tmp_path):
    from usvid.models import model_config

    from usvid.checkpoint import save_checkpoint

    store, result = trained_run
    ckpt = load_checkpoint(result.best)
    ckpt.model_config = model_config("rmtl_tiny").to_dict()
    save_checkpoint(tmp_path / "odd.pt", ckpt)
    with pytest.raises(InputError, match="do not fit"):
        evaluate_checkpoint(tmp_path / "odd.pt", store, "test", tmp_path / "out", device="cpu")


def test_missing_split_and_missing_checkpoint(trained_run, tmp_path):
    store, result = trained_run
    with pytest.raises(InputError, match="unknown split 'holdout'"):
        evaluate_checkpoint(result.best, store, "holdout", tmp_path, device="cpu")
    with pytest.raises(InputError, match="checkpoint not found"):
        evaluate_checkpoint(tmp_path / "none.pt", store, "test", tmp_path, device="cpu")
