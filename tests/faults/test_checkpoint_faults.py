"""Fault corpus: damaged and foreign checkpoints, NaN weights and outputs, bad train / eval / export options.

Every faulty file is generated here from a real tiny checkpoint (``lanet_tiny`` at 64 px): bytes flipped in the
tensor data, the pickle and the zip container, truncations, all-NaN weights re-saved with a correct hash (so the
finite check is what refuses them), foreign pickles, entries missing. Each case checks the named one-line error
and exit code 2 through ``usvid eval`` / ``usvid export`` / ``load_predictor``, that nothing was written, and that
the files already there are byte-for-byte unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner
from usvid.cli.app import app

from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.stores import make_store
from usvid.checkpoint import (
    INTEGRITY,
    Checkpoint,
    load_checkpoint,
    payload_hash,
    save_checkpoint,
)
from usvid.errors import ConfigError, InputError
from usvid.inference.predictor import NonFiniteOutputError, load_predictor
from usvid.preprocess import PreprocessConfig

CLASSES = ["benign", "malignant"]
SIZE = 64
TINY_TRAIN = ["--model", "lanet_tiny", "--size", "64", "--stage1-epochs", "0", "--epochs", "1", "--batch-size", "4",
              "--device", "cpu", "--num-workers", "0"]


# ---------------------------------------------------------------------------------------------- generators


def flip(data: bytes, positions, mask: int = 0xFF) -> bytes:
    out = bytearray(data)
    for pos in positions:
        out[pos] ^= mask
    return bytes(out)


def zip_layout(path: Path) -> dict[str, int]:
    """Byte offsets inside ``torch.save``'s zip: the pickle, a tensor's data, a local header, the central directory."""
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    pkl = next(i for i in infos if i.filename.endswith("data.pkl"))
    tensor = max((i for i in infos if "/data/" in i.filename), key=lambda i: i.file_size)
    local = tensor.header_offset
    # Data start: past the 30-byte local header, its name and its extra field (torch pads for alignment).
    name_len = int.from_bytes(data[local + 26 : local + 28], "little")
    extra_len = int.from_bytes(data[local + 28 : local + 30], "little")
    tensor_data = local + 30 + name_len + extra_len
    pkl_local = pkl.header_offset
    pkl_data = pkl_local + 30 + int.from_bytes(data[pkl_local + 26 : pkl_local + 28], "little") + \
        int.from_bytes(data[pkl_local + 28 : pkl_local + 30], "little")
    return {
        "tensor_data": tensor_data + tensor.file_size // 2,
        "pickle_start": pkl_data,
        "local_header": local,
        "central_directory": data.find(b"PK\x01\x02"),
        "end_of_directory": data.rfind(b"PK\x05\x06"),
    }


def nan_weights(src: Path, dst: Path, value: float = float("nan")) -> Path:
    """Every floating weight set to ``value`` and saved by usvid, so its hash is correct."""
    ckpt = load_checkpoint(src)
    ckpt.state_dict = {k: torch.full_like(v, value) if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    save_checkpoint(dst, ckpt)
    return dst


def nan_output_checkpoint(src: Path, dst: Path) -> Path:
    """Finite weights whose outputs are NaN: a negative BatchNorm variance makes sqrt(var + eps) NaN."""
    ckpt = load_checkpoint(src)
    state = dict(ckpt.state_dict)
    for k in state:
        if k.endswith("running_var"):
            state[k] = torch.full_like(state[k], -1.0)
    ckpt.state_dict = state
    save_checkpoint(dst, ckpt)
    return dst


def raw_payload(good: Path, path: Path, **changes) -> Path:
    """``good``'s dict with ``changes`` applied (None removes a key), saved by plain torch (so no fresh hash)."""
    payload = torch.load(good, weights_only=True)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    torch.save(payload, path)
    return path


class Marker:
    """Unpickling this would create a file: proof that a refused pickle ran nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """One good checkpoint and every damaged variant of it (generated, never committed)."""
    root = tmp_path_factory.mktemp("ckpt_corpus")
    good = make_checkpoint(root / "good.pt")
    data = good.read_bytes()
    files = {"good": good}
    for name, pos in zip_layout(good).items():
        files[f"flip_{name}"] = root / f"flip_{name}.pt"
        files[f"flip_{name}"].write_bytes(flip(data, range(pos, pos + 4)))
    files["flip_5000"] = root / "flip_5000.pt"
    files["flip_5000"].write_bytes(flip(data, random.Random(0).sample(range(len(data)), 5000)))
    for frac in (0.1, 0.5, 0.99):
        files[f"truncated_{frac}"] = root / f"truncated_{frac}.pt"
        files[f"truncated_{frac}"].write_bytes(data[: int(len(data) * frac)])
    files["empty"] = root / "empty.pt"
    files["empty"].write_bytes(b"")
    files["nan"] = nan_weights(good, root / "nan.pt")
    files["inf"] = nan_weights(good, root / "inf.pt", float("inf"))
    files["no_model"] = raw_payload(good, root / "no_model.pt", model=None, integrity=None)
    files["model_not_dict"] = raw_payload(good, root / "model_not_dict.pt", model=[1, 2], integrity=None)
    files["namespace"] = root / "namespace.pt"
    torch.save({"format": "usvid-checkpoint", "args": argparse.Namespace(lr=1)}, files["namespace"])
    files["malicious"] = root / "malicious.pt"
    torch.save({"format": "usvid-checkpoint", "x": Marker(root / "pwned")}, files["malicious"])
    files["plain_pickle"] = root / "plain_pickle.pt"
    files["plain_pickle"].write_bytes(json.dumps({"not": "torch"}).encode())
    return files


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("faults_store") / "store")


def one_line_error(result, code: int, *needles: str) -> str:
    text = result.output.rstrip("\n")  # not strip(): a stray blank line is a second line
    assert result.exit_code == code, result.output
    assert "Traceback" not in text and "weights_only=False" not in text, text
    assert len(text.splitlines()) == 1, text
    assert text.startswith("error:"), text
    for needle in needles:
        assert needle in text, text
    return text


# ---------------------------------------------------------------------------------------------- load_checkpoint


def test_good_checkpoint_carries_a_hash_that_load_checks(corpus):
    payload = torch.load(corpus["good"], weights_only=True)
    assert payload[INTEGRITY]["sha256"] == payload_hash(payload)
    assert len(payload[INTEGRITY]["sha256"]) == 64
    ckpt = load_checkpoint(corpus["good"])
    assert isinstance(ckpt, Checkpoint) and ckpt.class_names == CLASSES


def test_flipped_tensor_bytes_are_a_hash_mismatch(corpus):
    # torch.load itself reads this file without complaint: the hash is the only guard.
    torch.load(corpus["flip_tensor_data"], weights_only=True)
    with pytest.raises(InputError, match=r"flip_tensor_data.pt: corrupted: tensor hash mismatch"):
        load_checkpoint(corpus["flip_tensor_data"])


DAMAGED = ["flip_tensor_data", "flip_pickle_start", "flip_local_header", "flip_central_directory",
           "flip_end_of_directory", "flip_5000", "truncated_0.1", "truncated_0.5", "truncated_0.99", "empty"]
FOREIGN = ["no_model", "model_not_dict", "namespace", "malicious", "plain_pickle"]


@pytest.mark.parametrize("name", DAMAGED + ["nan", "inf"] + FOREIGN)
def test_every_damaged_or_foreign_file_is_one_named_error(corpus, name):
    with pytest.raises(InputError) as info:
        load_checkpoint(corpus[name])
    message = str(info.value)
    assert message.startswith(str(corpus[name])), message
    assert "\n" not in message and "weights_only=False" not in message, message
    assert not (corpus[name].parent / "pwned").exists(), "a refused pickle ran code"


def test_single_byte_flips_anywhere_are_refused_or_harmless(corpus, tmp_path):
    """No flipped byte may change what loads: it is refused in one line, or it hit padding and nothing changed."""
    logging.disable(logging.WARNING)
    data = corpus["good"].read_bytes()
    ref = load_checkpoint(corpus["good"])
    refused = 0
    try:
        for pos in range(0, len(data), len(data) // 60):
            target = tmp_path / "one_flip.pt"
            target.write_bytes(flip(data, [pos], 0x5A))
            try:
                got = load_checkpoint(target)
            except InputError as err:
                assert str(err).startswith(str(target)) and "\n" not in str(err)
                refused += 1
                continue
            assert got.model_config == ref.model_config and got.class_names == ref.class_names
            assert all(torch.equal(got.state_dict[k], ref.state_dict[k]) for k in ref.state_dict), pos
    finally:
        logging.disable(logging.NOTSET)
    assert refused >= 50  # almost every byte of a checkpoint is content


def test_nan_weights_with_a_correct_hash_are_caught_by_the_finite_check(corpus):
    payload = torch.load(corpus["nan"], weights_only=True)
    assert payload[INTEGRITY]["sha256"] == payload_hash(payload)  # the hash is right: not what catches it
    with pytest.raises(InputError, match=r"nan.pt: corrupted: weights hold NaN or infinite values"):
        load_checkpoint(corpus["nan"])
    with pytest.raises(InputError, match=r"inf.pt: corrupted: weights hold NaN or infinite values"):
        load_checkpoint(corpus["inf"])


def test_messages_name_the_problem(corpus, tmp_path):
    with pytest.raises(InputError, match=r"no 'model' entry"):
        load_checkpoint(corpus["no_model"])
    with pytest.raises(InputError, match=r"argparse.Namespace.*will not unpickle"):
        load_checkpoint(corpus["namespace"])
    with pytest.raises(InputError, match=r"not a PyTorch zip archive"):
        load_checkpoint(corpus["plain_pickle"])
    with pytest.raises(InputError, match=r"empty"):
        load_checkpoint(corpus["empty"])
    with pytest.raises(InputError, match="NUL byte"):
        load_checkpoint(f"{tmp_path}/a\x00b.pt")
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(InputError, match=r"model.onnx: is an ONNX model, not a usvid checkpoint.*\.pt checkpoint"):
        load_checkpoint(onnx)
    with pytest.raises(InputError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_checkpoint_without_a_hash_still_loads_with_a_note(corpus, tmp_path, caplog):
    old = raw_payload(corpus["good"], tmp_path / "old.pt", integrity=None)
    with caplog.at_level(logging.WARNING, logger="usvid.checkpoint"):
        ckpt = load_checkpoint(old)
    assert ckpt.class_names == CLASSES
    assert "cannot be detected" in caplog.text


def test_damage_to_the_hash_entry_itself_is_refused(corpus, tmp_path):
    payload = torch.load(corpus["good"], weights_only=True)
    renamed = raw_payload(corpus["good"], tmp_path / "renamed.pt", integrity=None, intfgrity=payload[INTEGRITY])
    with pytest.raises(InputError, match=r"renamed.pt: corrupted: no tensor hash, and entries usvid never writes"):
        load_checkpoint(renamed)
    wrong = raw_payload(corpus["good"], tmp_path / "wrong.pt", integrity={"sha256": "0" * 64})
    with pytest.raises(InputError, match="tensor hash mismatch"):
        load_checkpoint(wrong)
    unreadable = raw_payload(corpus["good"], tmp_path / "unreadable.pt", integrity={"sha265": 1})
    with pytest.raises(InputError, match="'integrity' entry is unreadable"):
        load_checkpoint(unreadable)


def test_oversized_input_in_a_checkpoint_is_refused(corpus, tmp_path):
    path = raw_payload(corpus["good"], tmp_path / "huge.pt", integrity=None,
                       preprocess={"size": 32768, "mean": 0.0, "std": 1.0, "in_channels": 1})
    with pytest.raises(InputError, match=r"huge.pt: input size 32768 is above the largest usvid accepts \(2048\)"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------- predictors


@pytest.mark.parametrize("name", ["flip_tensor_data", "flip_central_directory", "nan", "no_model", "namespace"])
def test_load_predictor_refuses(corpus, name):
    with pytest.raises(InputError, match=str(corpus[name].name)):
        load_predictor(corpus[name], device="cpu")


def test_nan_outputs_at_prediction_time_name_the_model_file(corpus, tmp_path):
    path = nan_output_checkpoint(corpus["good"], tmp_path / "nan_out.pt")
    predictor = load_predictor(path, device="cpu")  # finite weights: loads
    frames = torch.randint(0, 256, (2, 1, 70, 90), dtype=torch.uint8)
    with pytest.raises(NonFiniteOutputError, match=r"nan_out.pt: the network returned NaN or infinite values for 2 "
                                                   r"of 2 frame"):
        predictor.predict(frames)
    # A good model on the same frames predicts finite probabilities.
    assert torch.isfinite(load_predictor(corpus["good"], device="cpu").predict(frames).probs).all()


def _tiny_onnx(path: Path, weight: list[list[float]], nan_graph: bool = False) -> Path:
    """A hand-built usvid-shaped ONNX classifier: mean-pool, (1 x 2) MatMul, softmax; optionally 0/0 outputs."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from usvid.inference.metadata import ModelInfo

    import numpy as np

    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    if nan_graph:
        nodes += [helper.make_node("Sub", ["logits", "logits"], ["zero"]),
                  helper.make_node("Div", ["zero", "zero"], ["probs"])]
    else:
        nodes += [helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["B", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", 2])],
        [numpy_helper.from_array(np.array(weight, dtype=np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = ModelInfo(tuple(CLASSES), PreprocessConfig(size=SIZE), {"arch": "cls"}, "0" * 16, has_mask=False)
    for key, value in info.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_onnx_with_nan_initializers_is_refused_on_load(tmp_path):
    good = load_predictor(_tiny_onnx(tmp_path / "ok.onnx", [[1.0, -1.0]]), device="cpu")
    assert good.predict(torch.zeros(1, 1, 40, 50, dtype=torch.uint8)).probs.shape == (1, 2)
    bad = _tiny_onnx(tmp_path / "nan.onnx", [[float("nan"), 1.0]])
    with pytest.raises(InputError, match=r"nan.onnx: corrupted: weights hold NaN or infinite values \(w: 1 of 2\)"):
        load_predictor(bad, device="cpu")


def test_onnx_nan_outputs_name_the_model_file(tmp_path):
    predictor = load_predictor(_tiny_onnx(tmp_path / "zero_by_zero.onnx", [[1.0, -1.0]], nan_graph=True),
                               device="cpu")
    with pytest.raises(NonFiniteOutputError, match="zero_by_zero.onnx: the network returned NaN"):
        predictor.predict(torch.zeros(3, 1, 40, 50, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------- usvid eval / export


@pytest.mark.parametrize("name", ["flip_tensor_data", "flip_local_header", "flip_central_directory", "flip_5000",
                                  "truncated_0.5", "nan", "no_model", "namespace", "malicious"])
def test_eval_and_export_refuse_damaged_checkpoints(corpus, store, tmp_path, name):
    runner = CliRunner()
    before = sha(corpus[name])
    ev = runner.invoke(app, ["eval", str(corpus[name]), str(store.path), "--out", str(tmp_path / "eval"),
                             "--device", "cpu"])
    one_line_error(ev, 2, corpus[name].name)
    ex = runner.invoke(app, ["export", str(corpus[name]), "--out", str(tmp_path / "model.onnx")])
    one_line_error(ex, 2, corpus[name].name)
    assert not (tmp_path / "eval").exists() and not (tmp_path / "model.onnx").exists()
    assert list(tmp_path.iterdir()) == []  # not even a temporary file
    assert sha(corpus[name]) == before


def test_weights_only_refusal_says_not_a_usvid_checkpoint(corpus, store, tmp_path):
    result = CliRunner().invoke(app, ["eval", str(corpus["namespace"]), str(store.path), "--out",
                                      str(tmp_path / "e"), "--device", "cpu"])
    one_line_error(result, 2, "not a usvid checkpoint", "will not unpickle")


def test_eval_of_an_onnx_file_asks_for_the_checkpoint(store, tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch")
    result = CliRunner().invoke(app, ["eval", str(onnx), str(store.path), "--out", str(tmp_path / "e")])
    one_line_error(result, 2, "is an ONNX model", ".pt checkpoint")


def test_eval_with_nan_outputs_is_refused_and_writes_no_report(corpus, store, tmp_path):
    path = nan_output_checkpoint(corpus["good"], tmp_path / "nan_out.pt")
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", str(path), str(store.path), "--out", str(out), "--device", "cpu"])
    # The frames were run, so the progress bar came first; the error is still one line, the last.
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and "nan_out.pt: the network returned NaN" in last, result.output
    assert not (out / "report.json").exists()


@pytest.mark.parametrize(("option", "value", "needle"), [("--batch-size", "0", "--batch-size"),
                                                         ("--frames-per-video", "-1", "--frames-per-video"),
                                                         ("--examples", "-2", "--examples")])
def test_eval_bad_numbers_are_one_line(corpus, store, tmp_path, option, value, needle):
    result = CliRunner().invoke(app, ["eval", str(corpus["good"]), str(store.path), "--out", str(tmp_path / "e"),
                                      "--device", "cpu", option, value])
    one_line_error(result, 2, needle)
    assert not (tmp_path / "e").exists()


def test_eval_out_that_is_a_file_is_refused_and_kept(corpus, store, tmp_path):
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    result = CliRunner().invoke(app, ["eval", str(corpus["good"]), str(store.path), "--out", str(existing),
                                      "--device", "cpu"])
    one_line_error(result, 2, "is an existing file")
    assert existing.read_text() == "mine"


def test_export_out_that_is_a_folder_fails_before_any_work(corpus, tmp_path, monkeypatch):
    import usvid.inference.export_onnx as export_onnx

    def no_export(*args, **kwargs):
        raise AssertionError("the export started before --out was checked")

    monkeypatch.setattr(export_onnx, "_torch_export", no_export)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "keep.onnx").write_bytes(b"user file")
    before = tree_digest(folder)
    result = CliRunner().invoke(app, ["export", str(corpus["good"]), "--out", str(folder)])
    one_line_error(result, 2, "is a folder")
    assert tree_digest(folder) == before


def test_export_out_that_is_the_checkpoint_is_refused(corpus, tmp_path):
    copy = tmp_path / "model.pt"
    copy.write_bytes(corpus["good"].read_bytes())
    result = CliRunner().invoke(app, ["export", str(copy), "--out", str(copy)])
    one_line_error(result, 2, "also an input")
    assert sha(copy) == sha(corpus["good"])


@pytest.mark.parametrize("command", ["eval_checkpoint", "eval_store", "eval_out", "export_checkpoint", "export_out",
                                     "export_sample", "train_out", "train_store", "train_config"])
def test_nul_byte_in_a_path_is_one_line(corpus, store, tmp_path, command):
    nul = f"{tmp_path}/a\x00b"
    good, st, run = str(corpus["good"]), str(store.path), str(tmp_path / "run")
    args = {
        "eval_checkpoint": ["eval", nul + ".pt", st, "--out", str(tmp_path / "e")],
        "eval_store": ["eval", good, nul, "--out", str(tmp_path / "e")],
        "eval_out": ["eval", good, st, "--out", nul],
        "export_checkpoint": ["export", nul + ".pt", "--out", str(tmp_path / "m.onnx")],
        "export_out": ["export", good, "--out", nul + ".onnx"],
        "export_sample": ["export", good, "--out", str(tmp_path / "m.onnx"), "--sample", nul + ".mp4"],
        "train_out": ["train", st, "--out", nul, *TINY_TRAIN],
        "train_store": ["train", nul, "--out", run, *TINY_TRAIN],
        "train_config": ["train", st, "--out", run, "--config", nul + ".json", *TINY_TRAIN],
    }[command]
    one_line_error(CliRunner().invoke(app, args), 2, "NUL byte")
    assert list(tmp_path.iterdir()) == []


def test_nul_byte_in_a_path_is_one_error_in_the_library(corpus, store, tmp_path):
    from usvid.inference.export import export_model
    from usvid.training.eval import evaluate_checkpoint
    from usvid.training.loop import fit

    from usvid.training.config import TrainConfig

    nul = f"{tmp_path}/a\x00b"
    for call in (lambda: load_checkpoint(nul + ".pt"), lambda: load_predictor(nul + ".pt"),
                 lambda: evaluate_checkpoint(nul + ".pt", store, "test", tmp_path / "e"),
                 lambda: evaluate_checkpoint(corpus["good"], store, "test", nul),
                 lambda: export_model(corpus["good"], nul + ".onnx"),
                 lambda: fit(TrainConfig(model="lanet_tiny", size=64, device="cpu"), nul, tmp_path / "run"),
                 lambda: fit(TrainConfig(model="lanet_tiny", size=64, device="cpu"), store.path, nul)):
        with pytest.raises(InputError, match="NUL byte"):
            call()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "eval", "export"])
def test_size_has_an_upper_bound(corpus, store, tmp_path, command):
    if command == "train":
        args = ["train", str(store.path), "--out", str(tmp_path / "run"), *TINY_TRAIN, "--size", "4096"]
        one_line_error(CliRunner().invoke(app, args), 2, "from 32 to 2048", "4096")
        assert not (tmp_path / "run").exists()
        return
    # eval and export take the size from the checkpoint, which is bounded on load.
    huge = raw_payload(corpus["good"], tmp_path / "huge.pt", integrity=None,
                       preprocess={"size": 4096, "mean": 0.0, "std": 1.0, "in_channels": 1})
    args = (["eval", str(huge), str(store.path), "--out", str(tmp_path / "e"), "--device", "cpu"]
            if command == "eval" else ["export", str(huge), "--out", str(tmp_path / "m.onnx")])
    one_line_error(CliRunner().invoke(app, args), 2, "above the largest usvid accepts (2048)")


def test_models_sizes_have_an_upper_bound():
    one_line_error(CliRunner().invoke(app, ["models", "--sizes", "256,4096"]), 2, "from 32 to 2048")


# ---------------------------------------------------------------------------------------------- usvid train --out


def fake_run(folder: Path, good: Path) -> Path:
    """A run folder as `usvid train` leaves it (its last.pt a real checkpoint)."""
    folder.mkdir(parents=True)
    (folder / "last.pt").write_bytes(good.read_bytes())
    (folder / "best.pt").write_bytes(good.read_bytes())
    (folder / "config.json").write_text(json.dumps({"train": {"model": "lanet_tiny", "size": 64}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"stage": 2, "epoch": 1}) + "\n")
    return folder


def test_train_out_that_is_a_file_is_refused_and_kept(corpus, store, tmp_path):
    existing = tmp_path / "run.txt"
    existing.write_text("mine")
    for extra in ([], ["--resume"]):
        result = CliRunner().invoke(app, ["train", str(store.path), "--out", str(existing), *TINY_TRAIN, *extra])
        one_line_error(result, 2, "is an existing file")
    assert existing.read_text() == "mine"


def test_train_out_that_is_the_store_is_refused(store, tmp_path):
    before = tree_digest(store.path)
    result = CliRunner().invoke(app, ["train", str(store.path), "--out", str(store.path), *TINY_TRAIN])
    one_line_error(result, 2, "also an input")
    assert tree_digest(store.path) == before


def test_train_into_an_existing_run_leaves_it_untouched(corpus, store, tmp_path):
    run = fake_run(tmp_path / "run", corpus["good"])
    before = tree_digest(run)
    result = CliRunner().invoke(app, ["train", str(store.path), "--out", str(run), *TINY_TRAIN])
    one_line_error(result, 2, "already holds a training run")
    assert tree_digest(run) == before


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only; as root (who writes anyway) the write probe is refused there too."""
    made = []

    def apply(folder: Path) -> Path:
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        if os.geteuid() == 0:
            real = tempfile.mkstemp

            def refuse(*args, dir=None, **kwargs):
                if dir is not None and Path(dir).resolve() == folder.resolve():
                    raise PermissionError(13, "Permission denied", str(dir))
                return real(*args, dir=dir, **kwargs)

            monkeypatch.setattr(tempfile, "mkstemp", refuse)
        return folder

    yield apply
    for folder in made:
        folder.chmod(0o755)


def test_read_only_run_folder_is_refused_before_resuming(corpus, store, tmp_path, read_only):
    run = fake_run(tmp_path / "run", corpus["good"])
    before = tree_digest(run)
    read_only(run)
    result = CliRunner().invoke(app, ["train", str(store.path), "--out", str(run), "--resume"])
    one_line_error(result, 2, "cannot write in")
    assert tree_digest(run) == before


def test_read_only_folder_for_export_is_refused_before_any_work(corpus, tmp_path, read_only):
    folder = read_only(tmp_path / "ro")
    result = CliRunner().invoke(app, ["export", str(corpus["good"]), "--out", str(folder / "model.onnx")])
    one_line_error(result, 2, "cannot write in")
    assert list(folder.iterdir()) == []


def test_read_only_folder_for_eval_is_refused(corpus, store, tmp_path, read_only):
    folder = read_only(tmp_path / "ro")
    result = CliRunner().invoke(app, ["eval", str(corpus["good"]), str(store.path), "--out", str(folder / "e"),
                                      "--device", "cpu"])
    one_line_error(result, 2, "cannot write in")
    assert list(folder.iterdir()) == []


def test_train_and_eval_still_work_on_a_good_checkpoint(corpus, store, tmp_path):
    """The checks refuse only what is wrong: a real train -> eval round trip still succeeds."""
    runner = CliRunner()
    run = tmp_path / "run"
    first = runner.invoke(app, ["train", str(store.path), "--out", str(run), *TINY_TRAIN])
    assert first.exit_code == 0, first.output
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload[INTEGRITY]["sha256"] == payload_hash(payload)
    ev = runner.invoke(app, ["eval", str(run / "best.pt"), str(store.path), "--out", str(tmp_path / "e"),
                             "--device", "cpu", "--examples", "0"])
    assert ev.exit_code == 0, ev.output


def test_train_config_bounds():
    from usvid.training.config import TrainConfig

    with pytest.raises(ConfigError, match="from 32 to 2048"):
        TrainConfig(size=2080)
    assert TrainConfig(size=2048).size == 2048
