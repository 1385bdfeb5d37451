"""The shipped trained model ``lanet-effl0-bus``: files intact, loadable safely, used by default, and as accurate
on the real test split as its model card says (that last test reads ``../shared/data`` and skips without it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from usvid.checkpoint import load_checkpoint
from usvid.cli.app import app
from usvid.errors import InputError
from usvid.inference import load_predictor
from usvid.shipped import DEFAULT_MODEL, WEIGHTS_DIR, get_shipped, resolve_model, shipped_models
from usvid.video.testvideos import write_test_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped():
    return get_shipped(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("clip") / "scan.mp4", width=192, height=128, num_frames=6,
                            kind="ultrasound")


def test_shipped_files_load_weights_only_and_match_their_card(shipped):
    assert [m.name for m in shipped_models()] == [DEFAULT_MODEL]
    ckpt = shipped.file("checkpoint")
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert payload["class_names"] == shipped.card["class_names"] == ["benign", "malignant"]
    ck = load_checkpoint(DEFAULT_MODEL)  # by name, hash-checked twice: the file's and the tensors'
    assert ck.trained_model_name == shipped.card["model"] == "lanet_effl0"
    assert ck.preprocess.to_dict() == shipped.card["preprocess"]
    total = sum(e["size"] for e in shipped.card["files"].values()) + (shipped.folder / "model.json").stat().st_size
    assert total <= 30e6, f"shipped files take {total / 1e6:.1f} MB, more than the 30 MB budget"
    # The ONNX file is the export of this very checkpoint: its metadata carries the checkpoint's model hash.
    pytest.importorskip("onnxruntime")
    onnx_predictor = load_predictor(DEFAULT_MODEL, "onnxruntime", "cpu")
    torch_predictor = load_predictor(DEFAULT_MODEL, "torch", "cpu", precision="fp32")
    assert onnx_predictor.info.model_hash == torch_predictor.info.model_hash
    frames = torch.randint(0, 256, (2, 1, 200, 300), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a, b = onnx_predictor.predict(frames), torch_predictor.predict(frames)
    assert torch.allclose(a.probs, b.probs, atol=1e-4)


def test_a_damaged_or_replaced_shipped_file_is_refused(shipped, tmp_path):
    root = tmp_path / "weights"
    shutil.copytree(shipped.folder, root / shipped.name)
    target = root / shipped.name / "model.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit
    target.write_bytes(bytes(data))
    with pytest.raises(InputError, match="does not match the size and sha256"):
        resolve_model(shipped.name, "onnx", root=root)
    assert resolve_model(shipped.name, "checkpoint", root=root).is_file()  # the intact one still resolves
    (root / shipped.name / "model.pt").unlink()
    with pytest.raises(InputError, match="is missing"):
        resolve_model(shipped.name, "checkpoint", root=root)


def test_names_resolve_only_to_shipped_models_and_files_on_disk_win(shipped, tmp_path, monkeypatch):
    assert resolve_model(DEFAULT_MODEL, "checkpoint") == WEIGHTS_DIR / DEFAULT_MODEL / "model.pt"
    assert resolve_model("no-such-model", "checkpoint") == Path("no-such-model")
    with pytest.raises(InputError, match="not a shipped model; shipped models: lanet-effl0-bus"):
        get_shipped("../weights")
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_MODEL).write_bytes(b"mine")
    assert resolve_model(DEFAULT_MODEL, "checkpoint") == Path(DEFAULT_MODEL)


def test_predict_and_stream_use_the_shipped_model_when_model_is_omitted(clip, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(clip), "--out", str(tmp_path / "pred"), "--no-overlay"])
    assert res.exit_code == 0, res.output
    assert "no --model given: using the shipped model lanet-effl0-bus" in " ".join(res.output.split())
    lines = [json.loads(x) for x in (tmp_path / "pred" / "scan.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {x["label"] for x in lines} <= {"benign", "malignant"}
    assert abs(sum(lines[0]["probs"].values()) - 1) < 1e-4
    config = json.loads((tmp_path / "pred" / "predict_config.json").read_text())
    assert Path(config["model"]).parent == WEIGHTS_DIR / DEFAULT_MODEL
    # boxes drawn at the threshold the model card records (chosen on its val split), not the paper's 0.5
    card = get_shipped(DEFAULT_MODEL).card
    assert config["mask_threshold"] == card["mask_threshold"] and card["mask_threshold"] != 0.5

    res = runner.invoke(app, ["stream", str(clip), "--jsonl", str(tmp_path / "s.jsonl"), "--max-frames", "4"])
    assert res.exit_code == 0, res.output
    assert "using the shipped model lanet-effl0-bus" in " ".join(res.output.split())
    frames = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert sum(1 for f in frames if f.get("probs")) >= 1


def test_models_lists_the_shipped_model_with_its_test_metrics(shipped):
    res = CliRunner().invoke(app, ["models", "--match", "effl0"])
    assert res.exit_code == 0, res.output
    busi = shipped.card["test"]["busi"]
    row = next(line for line in res.output.splitlines() if DEFAULT_MODEL in line and "busi" in line)
    assert f"{busi['f1_macro']:.2f}" in row and f"{busi['auc']:.2f}" in row


@pytest.mark.realdata
def test_accuracy_on_the_real_busi_test_split_matches_the_model_card(shipped, shared_data, tmp_path):
    """Re-extract BUSI exactly as the card records, check the test split is the card's, and score it."""
    from usvid.training.eval import evaluate_checkpoint

    store = tmp_path / "busi256"
    res = CliRunner().invoke(app, [
        "extract", str(shared_data / "busi"), str(store), "--size", "256", "--split", "70,15,15", "--seed", "0",
        "--classes", "benign,malignant", "--groups", str(shared_data / "busi" / "near_duplicates.csv")])
    assert res.exit_code == 0, res.output
    rows = (store / "videos.csv").read_text().splitlines()[1:]
    test_ids = {r.split(",")[0] for r in rows if ",test," in r}
    card_ids = {i.split(":", 1)[1] for i in shipped.card["data"]["video_ids"]["test"] if i.startswith("busi:")}
    assert test_ids == card_ids
    report = evaluate_checkpoint(DEFAULT_MODEL, store, "test", tmp_path / "eval", device="cpu",
                                 num_examples=0).report["frame_level"]
    card = shipped.card["test"]["busi"]
    n = card["images"]
    assert report["count"] == n == 84
    # Same data and code: equal up to a borderline image or two flipped by another CPU's float rounding.
    assert abs(report["accuracy"] - card["accuracy"]) <= 2 / n + 1e-9
    assert abs(report["sensitivity"] - card["sensitivity"]) <= 2 / 25 + 1e-9
    assert abs(report["auc"] - card["auc"]) <= 0.02
    assert abs(report["jsi_mask"] - card["jsi_mask"]) <= 0.02
    assert report["accuracy"] >= 0.8  # and the card is not describing a coin toss
