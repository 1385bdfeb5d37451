"""``backend="auto"`` on the CPU: the fastest path that agrees with fp32 torch, measured once and cached.

Speeds are injected (``measure``) so each test decides which path is "fastest"; parity is real (each
candidate's predictions on the fixed check frames against fp32 torch).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.helpers.checkpoints import CLASSES, SIZE, make_checkpoint
from tests.helpers.videos import noise_frames, write_video
from usvid.inference import autoselect, load_predictor
from usvid.inference.torch_backend import TorchPredictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture
def auto_on(monkeypatch, tmp_path_factory):
    """Autoselection on, with one cache for the module's tests (the ONNX export is made once)."""
    monkeypatch.setenv("USVID_AUTOSELECT", "1")
    monkeypatch.setenv("USVID_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "autoselect-cache"))


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return make_checkpoint(tmp_path / "model.pt", "lanet_tiny", CLASSES, size=SIZE, bn_stats=True)


def path_name(predictor) -> str:
    precision = getattr(predictor, "precision", "fp32")
    return f"{predictor.backend}-{precision}"


def fixed_speeds(speeds: dict[str, float], calls: list[str] | None = None):
    def measure(predictor, frames) -> float:
        name = path_name(predictor)
        if calls is not None:
            calls.append(name)
        return speeds[name]
    return measure


def test_picks_the_fastest_path_that_passes(auto_on, checkpoint):
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    predictor = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds))
    assert predictor.backend == "onnxruntime"
    selection = predictor.selection
    assert selection.chosen == "onnxruntime-fp32" and not selection.cached
    ms = {t.path: t.ms_per_frame for t in selection.trials}
    assert ms["torch-fp32"] == 10.0 and ms["onnxruntime-fp32"] == 4.0

    speeds = {"torch-fp32": 3.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    other = make_checkpoint(checkpoint.with_name("other.pt"), "lanet_tiny", CLASSES, size=SIZE, seed=1)
    assert autoselect.auto_cpu_predictor(other, measure=fixed_speeds(speeds)).selection.chosen == "torch-fp32"


def test_chosen_path_agrees_with_fp32_on_the_check_frames(auto_on, checkpoint):
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    chosen = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds))
    reference = TorchPredictor.from_checkpoint(checkpoint, "cpu", precision="fp32")
    frames = torch.from_numpy(autoselect.check_frames()).unsqueeze(1)
    got, ref = chosen.predict(frames), reference.predict(frames)
    assert torch.equal(got.class_indices, ref.class_indices)
    assert torch.allclose(got.probs, ref.probs, atol=1e-4)


class FlippedClasses:
    """A candidate that is fast and wrong: every frame's class probabilities reversed."""

    backend = "broken"
    precision = "fp32"
    selection = None

    def __init__(self, inner) -> None:
        self.inner = inner
        self.info = inner.info

    def predict(self, frames, roi=None):
        pred = self.inner.predict(frames, roi)
        return replace(pred, probs=pred.probs.flip(1))


def test_a_path_that_fails_parity_is_never_chosen(auto_on, checkpoint, monkeypatch):
    real = autoselect.candidates

    def with_broken():
        torch_fp32 = real()[0].load
        return [*real(), autoselect.Candidate("broken-fp32", lambda *a: FlippedClasses(torch_fp32(*a)))]

    monkeypatch.setattr(autoselect, "candidates", with_broken)
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0, "onnxruntime-fp32": 8.0, "broken-fp32": 0.1}
    calls: list[str] = []
    predictor = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds, calls))
    trials = {t.path: t for t in predictor.selection.trials}
    assert predictor.selection.chosen == "onnxruntime-fp32"
    assert not trials["broken-fp32"].passed and trials["broken-fp32"].class_agreement < 1.0
    assert "broken-fp32" not in calls  # a failed path is not even timed
    assert "FAILED parity" in predictor.selection.describe()


def test_measured_once_then_cached_and_remeasured_when_inputs_change(auto_on, checkpoint):
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    calls: list[str] = []
    autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds, calls))
    first = len(calls)
    assert first > 0
    again = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds, calls))
    assert len(calls) == first and again.selection.cached and again.backend == "onnxruntime"

    autoselect.auto_cpu_predictor(checkpoint, threads=1, measure=fixed_speeds(speeds, calls))
    assert len(calls) > first  # another thread count is another measurement
    count = len(calls)

    make_checkpoint(checkpoint, "lanet_tiny", CLASSES, size=SIZE, seed=7)  # same file, new weights
    faster_torch = fixed_speeds({**speeds, "torch-fp32": 1.0}, calls)
    fresh = autoselect.auto_cpu_predictor(checkpoint, measure=faster_torch)
    assert len(calls) > count and not fresh.selection.cached and fresh.selection.chosen == "torch-fp32"


def test_a_damaged_cache_entry_is_measured_again(auto_on, checkpoint):
    speeds = {"torch-fp32": 1.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds))
    for entry in autoselect.cache_dir().glob("*.json"):
        entry.write_text("{not json")
    calls: list[str] = []
    assert autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds, calls)).selection.chosen \
        == "torch-fp32"
    assert calls


def test_no_bf16_units_no_bf16_candidate(auto_on, checkpoint, monkeypatch):
    from usvid.cpu import CpuInfo

    plain = CpuInfo("Plain x86", frozenset({"avx2", "fma"}), 2)
    monkeypatch.setattr(autoselect, "cpu_info", lambda: plain)
    speeds = {"torch-fp32": 10.0, "onnxruntime-fp32": 4.0}
    selection = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds)).selection
    bf16 = {t.path: t for t in selection.trials}["torch-bf16"]
    assert bf16.ms_per_frame is None and "no native bf16" in bf16.note
    assert selection.key["cpu_model"] == "Plain x86"


def test_without_onnxruntime_the_torch_paths_compete(auto_on, checkpoint, monkeypatch):
    monkeypatch.setattr(autoselect, "_importable", lambda module: False)
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0}
    selection = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds)).selection
    ort = {t.path: t for t in selection.trials}["onnxruntime-fp32"]
    assert ort.ms_per_frame is None and "pip install" in ort.note
    assert selection.chosen in ("torch-fp32", "torch-bf16")


@pytest.mark.parametrize("kwargs", [{"backend": "torch"}, {"precision": "fp32"}])
def test_a_named_backend_or_precision_is_not_second_guessed(auto_on, checkpoint, kwargs):
    predictor = load_predictor(checkpoint, device="cpu", **kwargs)
    assert predictor.backend == "torch" and predictor.selection is None


def test_switched_off_by_environment(checkpoint, monkeypatch):
    monkeypatch.setenv("USVID_AUTOSELECT", "0")
    predictor = load_predictor(checkpoint, device="cpu")
    assert isinstance(predictor, TorchPredictor) and predictor.precision == "fp32"
    assert predictor.selection is None


def test_load_predictor_auto_uses_it(auto_on, checkpoint):
    predictor = load_predictor(checkpoint, device="cpu")
    assert predictor.selection is not None
    assert predictor.selection.chosen == f"{predictor.backend}-{getattr(predictor, 'precision', 'fp32')}"
    timed = [t for t in predictor.selection.trials if t.ms_per_frame is not None]
    assert len(timed) >= 2 and all(t.ms_per_frame > 0 for t in timed)


def test_cli_predict_says_what_it_chose(auto_on, checkpoint, tmp_path):
    from usvid.cli.app import app

    video = write_video(tmp_path / "scan.mp4", noise_frames(6, 96, 80))
    result = CliRunner().invoke(app, ["predict", str(video), "--model", str(checkpoint), "--out",
                                      str(tmp_path / "out"), "--no-overlay"])
    assert result.exit_code == 0, result.output
    assert "auto on the CPU chose" in result.output
    config = json.loads((tmp_path / "out" / "predict_config.json").read_text())
    chosen = config["auto_selection"]["chosen"]
    timed = {t["path"]: t["ms_per_frame"] for t in config["auto_selection"]["trials"] if t["passed"]}
    assert chosen == min(timed, key=timed.get)


def test_check_frames_are_fixed_and_scan_like():
    a, b = autoselect.check_frames(), autoselect.check_frames()
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == (autoselect.CHECK_FRAMES, 500, 854)
    assert a.std() > 20  # not flat: the mask and box take part in the check


def test_an_unwritable_cache_still_chooses(checkpoint, tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("USVID_AUTOSELECT", "1")
    monkeypatch.setenv("USVID_CACHE_DIR", str(blocked))
    speeds = {"torch-fp32": 10.0, "torch-bf16": 9.0, "onnxruntime-fp32": 4.0}
    selection = autoselect.auto_cpu_predictor(checkpoint, measure=fixed_speeds(speeds)).selection
    assert selection.chosen in ("torch-fp32", "torch-bf16")  # the export had nowhere to go
    assert {t.path: t for t in selection.trials}["onnxruntime-fp32"].ms_per_frame is None
