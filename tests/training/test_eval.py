"""evaluate_checkpoint: report contents, consistency with the predictions, plots, bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from usvid.checkpoint import load_checkpoint
from usvid.errors import ConfigError, InputError
from usvid.models.base import ModelOutput
from usvid.preprocess import PreprocessConfig
from usvid.training.eval import evaluate_checkpoint
from usvid.training.frames import BatchReader, split_frames
from usvid.training.predictions import predict_frames, score_localisation

KEYS = {"accuracy", "accuracy_ci95", "sensitivity", "sensitivity_ci95", "specificity", "specificity_ci95", "ppv",
        "ppv_ci95", "npv", "npv_ci95", "auc", "auc_ci95", "auc_positive", "sensitivity_macro", "specificity_macro",
        "precision_macro", "f1_macro", "auc_macro", "positive_class", "confusion", "class_names", "ci_method"}


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
    assert report["positive_class"] == report["frame_level"]["positive_class"] == "malignant"
    assert report["tta"] == "none" and report["video_level"]["class_names"] == ["benign", "malignant"]
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
    fl = res.report["frame_level"]
    cm = np.array(fl["confusion"])
    assert cm.sum() == 24 and np.trace(cm) == round(24 * fl["accuracy"])
    # malignant (index 1) is the positive class: sensitivity from the confusion's second row
    assert fl["sensitivity"] == (cm[1, 1] / cm[1].sum() if cm[1].sum() else None)
    assert fl["specificity"] == (cm[0, 0] / cm[0].sum() if cm[0].sum() else None)
    # video level: argmax of the mean frame probability of each video
    ids, labels, probs = preds.video_level()
    expected = float((probs.argmax(1) == labels).mean())
    assert res.report["video_level"]["accuracy"] == pytest.approx(expected)
    assert np.array(res.report["video_level"]["confusion"]).sum() == len(ids) == 2


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


def test_unknown_positive_class_is_refused_naming_the_classes(trained_run, tmp_path):
    store, result = trained_run
    with pytest.raises(InputError, match=r"positive class 'cancer' is not one of .*\['benign', 'malignant'\]"):
        evaluate_checkpoint(result.best, store, "test", tmp_path, device="cpu", positive="cancer")


def test_positive_and_flip_tta_reach_the_report(trained_run, tmp_path):
    store, result = trained_run
    res = evaluate_checkpoint(result.best, store, "test", tmp_path, device="cpu", num_examples=0, positive="benign",
                              tta="flip")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["tta"] == "flip" and report["positive_class"] == "benign" == report["video_level"]["positive_class"]
    cm = np.array(report["frame_level"]["confusion"])
    assert report["frame_level"]["sensitivity"] == (cm[0, 0] / cm[0].sum() if cm[0].sum() else None)
    assert "test-time augmentation: flip" in (tmp_path / "report.md").read_text() and res.report == report


class _Sided(nn.Module):
    """Logits ``5 * (mean of the left half, mean of the right half)``, so they change with a mirror; the mask
    (mean over 32-px cells) flips with the image."""

    def forward(self, x: torch.Tensor) -> ModelOutput:
        w = x.shape[-1]
        logits = 5 * torch.stack([x[..., : w // 2].mean((1, 2, 3)), x[..., w // 2 :].mean((1, 2, 3))], dim=1)
        return ModelOutput(logits=logits, mask=F.avg_pool2d(x, 32))


def test_flip_tta_averages_probabilities_and_flips_masks_back(tiny_store):
    frames = split_frames(tiny_store, "test", ("benign", "malignant"))
    reader, idx = BatchReader(tiny_store, frames), list(range(len(frames)))
    run = dict(keep_masks=idx, batch_size=5)
    cpu, pre = torch.device("cpu"), PreprocessConfig(size=64)
    plain = predict_frames(_Sided(), reader, idx, pre, cpu, **run)
    flip = predict_frames(_Sided(), reader, idx, pre, cpu, tta="flip", **run)
    assert np.abs(plain.probs - 0.5).max() > 0.01  # orientation matters to this model ...
    # ... and the mean of softmax(a, b) and softmax(b, a) is exactly (1/2, 1/2)
    np.testing.assert_allclose(flip.probs, 0.5, atol=1e-6)
    # a flip-equivariant mask, flipped back, is the plain mask; not flipping back would average it with its mirror
    for i in idx:
        np.testing.assert_allclose(flip.masks[i], plain.masks[i], atol=1e-6)
    assert max(np.abs(plain.masks[i] - plain.masks[i][:, ::-1]).max() for i in idx) > 0.01
    with pytest.raises(ConfigError, match="unknown test-time augmentation 'rot90'.*flip, none"):
        predict_frames(_Sided(), reader, idx, pre, cpu, tta="rot90")


def test_two_lesion_frame_box_jsi_counts_both_lesions():
    truth = np.zeros((64, 64), np.uint8)
    truth[4:14, 4:14] = 255  # 10 x 10
    truth[36:56, 30:50] = 255  # 20 x 20
    prob = (truth / 255.0).astype(np.float32)  # predicts both lesions exactly
    # the old rule scored this 400 / (46 * 52) = 0.17: the largest region against a rectangle around both
    assert score_localisation(prob, truth, 64) == pytest.approx((1.0, 1.0))
    # finding only the big lesion: 400 of the 500 true box pixels (the old rule: 400 / 2392 = 0.17 again)
    big = np.where(np.arange(64)[:, None] >= 30, prob, 0.0).astype(np.float32)
    assert score_localisation(big, truth, 64) == pytest.approx((400 / 500, 400 / 500))


def test_mask_threshold_decides_which_upsampled_pixels_are_lesion():
    # A 2 x 2 P on a 64 px input: the lesion cell holds 0.4, the paper's 0.5 finds nothing there.
    prob = np.array([[0.4, 0.0], [0.0, 0.0]], np.float32)
    truth = np.zeros((64, 64), np.uint8)
    truth[:32, :32] = 255
    assert score_localisation(prob, truth, 64) == (0.0, 0.0)
    up = F.interpolate(torch.from_numpy(prob)[None, None], size=(64, 64), mode="bilinear",
                       align_corners=False)[0, 0].numpy()
    expected = {}
    for t in (0.3, 0.1):
        pred = up >= t  # bilinear falls off from the cell's centre: a lower threshold takes in more of it
        gt = truth > 127
        expected[t] = (pred & gt).sum() / (pred | gt).sum()
        assert score_localisation(prob, truth, 64, threshold=t)[0] == pytest.approx(expected[t])
    assert 0.0 < expected[0.3] < expected[0.1] < 1.0


def test_eval_records_and_applies_its_mask_threshold(trained_run, tmp_path):
    store, result = trained_run
    reports = {t: evaluate_checkpoint(result.best, store, "test", tmp_path / str(t), device="cpu", num_examples=0,
                                      mask_threshold=t).report for t in (0.5, 0.05)}
    assert reports[0.5]["mask_threshold"] == 0.5 and reports[0.05]["mask_threshold"] == 0.05
    assert "p >= 0.05" in (tmp_path / "0.05" / "report.md").read_text()
    # Same predictions, another rule: classes are untouched, the JSI is recomputed at the new threshold.
    assert reports[0.5]["frame_level"]["accuracy"] == reports[0.05]["frame_level"]["accuracy"]
    ckpt = load_checkpoint(result.best)
    frames = split_frames(store, "test", ckpt.class_names)
    preds = predict_frames(ckpt.build_model(), BatchReader(store, frames), range(len(frames)), ckpt.preprocess,
                           torch.device("cpu"), mask_threshold=0.05)
    assert reports[0.05]["frame_level"]["jsi_mask"] == pytest.approx(float(np.mean(preds.jsi_mask)))
    assert reports[0.05]["frame_level"]["jsi_mask"] != reports[0.5]["frame_level"]["jsi_mask"]
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ConfigError, match="mask threshold must lie strictly between 0 and 1"):
            evaluate_checkpoint(result.best, store, "test", tmp_path / "bad", device="cpu", mask_threshold=bad)


def test_report_md_and_cli_lead_with_the_positive_class_and_intervals(evaluated):
    _, _, res, out = evaluated
    md = (out / "report.md").read_text()
    fl = res.report["frame_level"]
    lo, hi = fl["sensitivity_ci95"]
    head = md.split("Macro averages")[0]
    assert "| level | n | sensitivity (malignant) |" in head and f"{fl['sensitivity']:.3f} [{lo:.3f}, {hi:.3f}]" in head
    assert "| frame | 24 frames |" in head and "| video | 2 videos |" in head and "Wilson score" in head
    assert "F1 (macro)" in md and "AUC (macro)" in md
    assert res.report["operating_point"] == "argmax, i.e. P(malignant) > 0.5"


def test_gradcam_of_letterboxed_frames_is_zero_on_the_padding(store_factory, tiny_checkpoint, tmp_path, monkeypatch):
    import csv

    from usvid.data.store import FrameStore
    from usvid.training import report

    store = store_factory()
    # the crops were 64 x 32: the store scaled them to 64 x 32 and padded 16 black rows above and below
    rows = list(csv.DictReader((store.path / "videos.csv").open()))
    for r in rows:
        r["roi_h"] = 32
        frames = np.load(store.path / "frames" / f"{r['file']}.npy")
        frames[:, :16], frames[:, 48:] = 0, 0
        np.save(store.path / "frames" / f"{r['file']}.npy", frames)
    with (store.path / "videos.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    seen = []
    original = report.example_figure
    monkeypatch.setattr(report, "example_figure", lambda ex, **kw: (seen.append(ex), original(ex, **kw))[1])
    evaluate_checkpoint(tiny_checkpoint, FrameStore(store.path), "test", tmp_path / "out", device="cpu",
                        num_examples=3)
    examples = seen[-1]
    assert len(examples) == 3
    for e in examples:
        assert e.content[16:48].all() and not e.content[:16].any() and not e.content[48:].any()
        assert (e.cam[~e.content] == 0).all() and e.cam[e.content].max() == pytest.approx(1.0)
        assert e.cam_class in ("benign", "malignant") and f"predicted {e.cam_class}" in e.caption


def _six_patient_source(root):
    from usvid.data.manifest import VideoEntry, write_manifest
    from usvid.video.testvideos import write_test_video

    entries = []
    for i in range(6):
        path = write_test_video(root / f"v{i}.mp4", kind="ultrasound", width=96, height=64, num_frames=4, seed=i)
        entries.append(VideoEntry(f"v{i}", f"p{i}", path, ("benign", "malignant")[i % 2]))
    write_manifest(root / "manifest.csv", entries, root)
    return root / "manifest.csv"


def test_empty_split_advice_works_when_followed(tiny_checkpoint, tmp_path):
    import re
    import shlex

    from typer.testing import CliRunner
    from usvid.cli.app import app

    from usvid.data.extract import ExtractConfig, extract
    from usvid.data.splits import SplitFractions

    manifest = _six_patient_source(tmp_path / "src")
    store = tmp_path / "store"
    extract(manifest, store, ExtractConfig(size=64, split=SplitFractions.from_percent([100, 0, 0])))
    runner = CliRunner()
    refused = runner.invoke(app, ["eval", str(tiny_checkpoint), str(store), "--split", "test", "--out",
                                  str(tmp_path / "e1"), "--device", "cpu"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    message = " ".join(refused.output.split())
    assert "split 'test' has no videos; splits with videos: train (6 videos)" in message
    assert "--split train" in message and "re-extract the 6 patients" in message
    # follow the advice literally: its extraction command into a new folder, then the same evaluation
    command = shlex.split(re.search(r"`usvid (extract [^`]+)`", message).group(1))
    assert str(manifest) in command and "--split" in command
    new_store = tmp_path / "resplit"
    done = runner.invoke(app, [str(new_store) if word == "NEW_STORE" else word for word in command])
    assert done.exit_code == 0, done.output
    ok = runner.invoke(app, ["eval", str(tiny_checkpoint), str(new_store), "--split", "test", "--out",
                             str(tmp_path / "e2"), "--device", "cpu", "--examples", "1"])
    assert ok.exit_code == 0, ok.output
    # the CLI table is the report's headline: positive-class figures with whole intervals, even at 80 columns
    rep = json.loads((tmp_path / "e2" / "report.json").read_text())
    lo, hi = rep["frame_level"]["accuracy_ci95"]
    assert "sensitivity (malignant)" in ok.output and "F1 (macro)" in ok.output and "Wilson score" in ok.output
    assert f"{rep['frame_level']['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]" in ok.output
    assert json.loads((tmp_path / "e2" / "report.json").read_text())["videos"] == 1


def test_empty_split_of_a_one_patient_store_says_so(tiny_checkpoint, store_factory, tmp_path):
    store = store_factory(splits={"train": 1}, labels=("benign",))
    with pytest.raises(InputError, match=r"split 'val' has no videos; .* 1 patient, too few to hold one out: "
                                         r"evaluate one of them \(--split train\), or extract more scans"):
        evaluate_checkpoint(tiny_checkpoint, store, "val", tmp_path / "out", device="cpu")


def test_a_classifier_without_a_mask_reports_no_threshold(tiny_store, tmp_path):
    """A vanilla classifier thresholds nothing: no mask threshold in report.json, report.md or the CLI."""
    from typer.testing import CliRunner

    from tests.helpers.checkpoints import make_checkpoint
    from usvid.cli.app import app
    from usvid.training.eval import NO_MASK

    path = make_checkpoint(tmp_path / "cls.pt", name="resnet_tiny_cls", store_size=64)
    rep = evaluate_checkpoint(path, tiny_store, "test", tmp_path / "out", device="cpu").report
    assert rep["mask_threshold"] is None and rep["mask_threshold_source"] == NO_MASK
    assert rep["frame_level"]["jsi_mask"] is None
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Localisation: none, the model has no lesion mask." in md and "lesion pixels p >=" not in md
    cli = CliRunner().invoke(app, ["eval", str(path), str(tiny_store.path), "--split", "test", "--out",
                                   str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    assert "no lesion mask: the model only classifies" in cli.output and "lesion pixels p >=" not in cli.output
    # A LA-Net's report still names the threshold it scored at.
    lanet = evaluate_checkpoint(make_checkpoint(tmp_path / "la.pt", store_size=64), tiny_store, "test", tmp_path / "la",
                                device="cpu").report
    assert lanet["mask_threshold"] == 0.5 and lanet["mask_threshold_source"] == "default (the paper's)"
