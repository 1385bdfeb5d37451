"""The mask threshold chosen on the validation split: the choice, where it is stored, and who uses it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.stores import FRAMES, SIZE, make_store, one_thread, tiny_config, write_store
from usvid.checkpoint import load_checkpoint, save_checkpoint
from usvid.errors import ConfigError, InputError
from usvid.models.base import ModelOutput
from usvid.training import calibrate
from usvid.training.calibrate import calibrate_checkpoint, choose_mask_threshold

HALF = 8  # the lesions are 16 x 16 squares
RING = 2  # the stub's P spreads this many pixels past them at 0.62


class RingModel(nn.Module):
    """A stand-in LA-Net whose P is 0.9 on the lesion's pixels (bright on a flat background), 0.62 on a ring
    ``RING`` pixels wide around it and 0.1 elsewhere, at input resolution (so upsampling is the identity).

    Thresholds up to 0.6 then take lesion + ring, mask JSI ``16^2 / 20^2 = 0.64``; 0.65 to 0.9 take the lesion
    alone (JSI 1); the rule picks the one of those nearest 0.5: 0.65.
    """

    mask_branch = True

    def forward(self, x: torch.Tensor) -> ModelOutput:
        lesion = (x > x.mean(dim=(2, 3), keepdim=True)).float()
        ring = F.max_pool2d(lesion, 2 * RING + 1, stride=1, padding=RING) - lesion
        mask = 0.1 + 0.8 * lesion + 0.52 * ring
        return ModelOutput(logits=torch.zeros(x.shape[0], 2), mask=mask, mask_logits=None)


def _square_store(path, videos_per_class: int = 1):
    """Flat grey frames with one bright 16 x 16 lesion each, every frame annotated, all in the val split."""
    rng = np.random.default_rng(0)
    videos, arrays, boxes = [], {}, {}
    for n in range(2 * videos_per_class):
        vid = f"v{n:02d}"
        frames = np.full((FRAMES, SIZE, SIZE), 60, np.uint8)
        for i in range(FRAMES):
            cx, cy = (int(c) for c in rng.integers(HALF + RING + 1, SIZE - HALF - RING - 1, size=2))
            frames[i, cy - HALF:cy + HALF, cx - HALF:cx + HALF] = 220
            boxes[(vid, i)] = (float(cx - HALF), float(cy - HALF), float(cx + HALF), float(cy + HALF))
        arrays[vid] = frames
        videos.append({"video_id": vid, "patient_id": f"p{n:02d}", "label": ("benign", "malignant")[n % 2],
                       "split": "val"})
    return write_store(path, videos, arrays, boxes)


def test_the_threshold_with_the_best_validation_mask_jsi_is_chosen(tmp_path):
    store = _square_store(tmp_path / "store")
    ckpt = load_checkpoint(make_checkpoint(tmp_path / "c.pt", size=SIZE, store_size=SIZE))
    choice = choose_mask_threshold(RingModel(), ckpt, store, "val")
    assert choice.frames == 2 * FRAMES
    np.testing.assert_allclose(choice.jsi_mask["0.5"], (2 * HALF) ** 2 / (2 * HALF + 2 * RING) ** 2, atol=1e-6)
    np.testing.assert_allclose(choice.jsi_mask["0.7"], 1.0, atol=1e-6)
    assert choice.threshold == 0.65 and not choice.reason
    # too few frames to choose on: 0.5 stays, and the reason says why
    few = choose_mask_threshold(RingModel(), ckpt, store, "val", min_frames=2 * FRAMES + 1)
    assert few.threshold is None and f"only {2 * FRAMES} annotated" in few.reason


def test_calibrated_checkpoint_carries_it_to_onnx_and_every_predictor(tmp_path, monkeypatch):
    from usvid.inference.export_onnx import export_onnx, read_onnx_info
    from usvid.inference.predictor import load_predictor

    store = _square_store(tmp_path / "store")
    path = make_checkpoint(tmp_path / "c.pt", size=SIZE, store_size=SIZE)
    assert load_predictor(path, backend="torch", device="cpu").threshold == 0.5  # never calibrated
    monkeypatch.setattr(calibrate.Checkpoint, "build_model", lambda self: RingModel())
    out = tmp_path / "calibrated.pt"
    choice = calibrate_checkpoint(path, store, "val", out=out)
    monkeypatch.undo()
    assert choice.threshold == 0.65
    assert load_checkpoint(out).mask_threshold == 0.65
    assert load_checkpoint(path).mask_threshold is None  # --out leaves the original alone
    assert load_predictor(out, backend="torch", device="cpu").threshold == 0.65
    assert load_predictor(out, backend="torch", device="cpu", threshold=0.4).threshold == 0.4  # --threshold wins
    onnx_path = export_onnx(out, tmp_path / "c.onnx").path
    assert read_onnx_info(onnx_path).mask_threshold == 0.65
    assert load_predictor(onnx_path, backend="onnxruntime", device="cpu").threshold == 0.65


def test_calibration_refuses_the_test_split_a_shipped_name_in_place_and_a_foreign_out(tmp_path):
    store = _square_store(tmp_path / "store")
    path = make_checkpoint(tmp_path / "c.pt", size=SIZE, store_size=SIZE)
    with pytest.raises(ConfigError, match="never on 'test'"):
        calibrate_checkpoint(path, store, "test")
    with pytest.raises(ConfigError, match="give --out"):
        calibrate_checkpoint("lanet-effl0-bus", store, "val")
    foreign = tmp_path / "notes.pt"
    foreign.write_text("mine")
    with pytest.raises(InputError, match="not a usvid checkpoint"):
        calibrate_checkpoint(path, store, "val", out=foreign)
    assert foreign.read_text() == "mine"


def test_a_corrupt_stored_threshold_is_refused_by_name(tmp_path):
    path = make_checkpoint(tmp_path / "c.pt", size=SIZE, store_size=SIZE)
    ckpt = load_checkpoint(path)
    save_checkpoint(path, dataclasses.replace(ckpt, mask_threshold=1.5))
    with pytest.raises(InputError, match=r"c\.pt: corrupted: mask threshold 1\.5"):
        load_checkpoint(path)


def test_training_stores_the_validation_choice_and_eval_uses_it(tmp_path, monkeypatch):
    from usvid.training.eval import evaluate_checkpoint
    from usvid.training.loop import fit

    store = make_store(tmp_path / "store")
    monkeypatch.setattr(calibrate, "MIN_FRAMES", 1)  # the tiny store's val split has 6 lesion frames
    with one_thread():
        result = fit(tiny_config(epochs=1), store, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "threshold.json").read_text())
    assert record["split"] == "val" and record["frames"] == 6
    assert result.threshold is not None and result.threshold.threshold == record["threshold"]
    best = max(record["jsi_mask"].values())
    assert record["jsi_mask"][f"{record['threshold']:g}"] == best
    assert load_checkpoint(result.best).mask_threshold == record["threshold"]
    with one_thread():
        rep = evaluate_checkpoint(result.best, store, "test", tmp_path / "eval", num_examples=0).report
    assert rep["mask_threshold"] == record["threshold"]
    assert rep["mask_threshold_source"].startswith("model")
    with one_thread():
        given = evaluate_checkpoint(result.best, store, "test", tmp_path / "eval2", num_examples=0,
                                    mask_threshold=0.5).report
    assert given["mask_threshold"] == 0.5 and given["mask_threshold_source"] == "given"
    # the choice scores exactly as `usvid eval` does: at 0.5 on val, eval's own mask JSI
    with one_thread():
        on_val = evaluate_checkpoint(result.best, store, "val", tmp_path / "eval3", num_examples=0,
                                     mask_threshold=0.5).report
    assert on_val["frame_level"]["jsi_frames"] == 6
    np.testing.assert_allclose(on_val["frame_level"]["jsi_mask"], record["jsi_mask"]["0.5"], atol=1e-9)


def test_training_without_enough_lesion_frames_keeps_half_and_says_why(tmp_path):
    from usvid.training.loop import fit

    store = make_store(tmp_path / "store")
    with one_thread():
        result = fit(tiny_config(epochs=1), store, tmp_path / "run")
    assert load_checkpoint(result.best).mask_threshold is None
    assert "only 6 annotated lesion frames" in result.threshold.reason


def test_calibrate_command_writes_the_copy_and_refuses_test_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from usvid.cli.app import app

    store = _square_store(tmp_path / "store")
    path = make_checkpoint(tmp_path / "c.pt", size=SIZE, store_size=SIZE)
    monkeypatch.setattr(calibrate.Checkpoint, "build_model", lambda self: RingModel())
    runner = CliRunner()
    ok = runner.invoke(app, ["calibrate", str(path), str(store.path), "--out", str(tmp_path / "cal.pt")])
    assert ok.exit_code == 0, ok.output
    assert "mask threshold: 0.65, chosen on 'val' (24 lesion frames: mask JSI 1.000 vs 0.640 at 0.5)" in " ".join(
        ok.output.split())
    assert load_checkpoint(tmp_path / "cal.pt").mask_threshold == 0.65
    bad = runner.invoke(app, ["calibrate", str(path), str(store.path), "--split", "test"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output and "never on 'test'" in bad.output
