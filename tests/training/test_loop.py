"""fit(): run folder, exact resume, determinism, NaN stop, clear errors, all model families, pseudo sources."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from usvid.checkpoint import load_checkpoint
from usvid.errors import ConfigError, InputError
from usvid.training import loop
from usvid.training.loop import TrainingDiverged, fit


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "frames_per_s")} for r in records]


def test_run_folder_contents(trained_run):
    _, result = trained_run
    run = result.run
    records = _records(run)
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 1), (2, 1), (2, 2)]
    assert all(math.isfinite(r["loss"]) for r in records)
    assert records[0]["cls"] == 0.0 and records[0]["train_accuracy"] is None  # stage 1: L_loc only
    resolved = json.loads((run / "config.json").read_text())
    assert resolved["class_names"] == ["benign", "malignant"]
    assert resolved["train"]["model"] == "lanet_tiny" and resolved["model"]["num_classes"] == 2
    assert resolved["data"]["train_annotated_frames"] == 12
    last = load_checkpoint(run / "last.pt")
    assert (last.train_state["stage"], last.train_state["epoch"]) == (2, 2)
    assert set(last.train_state) >= {"optimizer", "rng", "config", "best_val_acc"}
    best = load_checkpoint(result.best)
    assert best.preprocess.size == 64 and best.class_names == ["benign", "malignant"]
    assert "optimizer" not in best.train_state


def test_best_checkpoint_is_the_first_epoch_with_the_highest_val_accuracy(trained_run):
    _, result = trained_run
    stage2 = [r for r in _records(result.run) if r["stage"] == 2]
    top = max(r["val_accuracy"] for r in stage2)
    first = next(r["epoch"] for r in stage2 if r["val_accuracy"] == top)
    assert result.best_epoch == first and result.best_val_accuracy == pytest.approx(top)
    assert load_checkpoint(result.best).train_state["epoch"] == first


def test_resume_continues_exactly(trained_run, tmp_path, config_factory):
    store, straight = trained_run
    run = tmp_path / "run"
    fit(config_factory(epochs=0), store, run)  # stops at the stage boundary
    fit(config_factory(epochs=1), store, run, resume=True)  # resumes into stage 2
    fit(config_factory(epochs=2), store, run, resume=True)  # resumes mid stage 2
    assert _same_weights(run / "last.pt", straight.last)
    assert _same_weights(run / "best.pt", straight.best)
    assert _without_timing(_records(run)) == _without_timing(_records(straight.run))


def test_same_seed_same_result(trained_run, tmp_path, config_factory):
    store, straight = trained_run
    again = fit(config_factory(), store, tmp_path / "again")
    assert _same_weights(again.last, straight.last)


def test_resume_drops_metrics_of_an_unfinished_epoch(trained_run, tmp_path, config_factory):
    store, straight = trained_run
    run = tmp_path / "run"
    shutil.copytree(straight.run, run)
    # As if killed after writing epoch 3's metrics line but before its checkpoint.
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"stage": 2, "epoch": 3, "loss": 1.0}) + "\n")
    fit(config_factory(epochs=3), store, run, resume=True)
    assert [(r["stage"], r["epoch"]) for r in _records(run)] == [(1, 1), (2, 1), (2, 2), (2, 3)]
    assert _records(run)[-1]["loss"] != 1.0


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(tiny_store, tmp_path, config_factory, monkeypatch):
    calls = {"n": 0}
    real = loop.hybrid_loss

    def poisoned(*args, **kwargs):
        terms = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            return terms._replace(total=terms.total * float("nan"))
        return terms

    monkeypatch.setattr(loop, "hybrid_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"stage 2, epoch 1, step 3 \(loss=nan.*last good checkpoint"):
        fit(config_factory(), tiny_store, run)
    kept = load_checkpoint(run / "last.pt")
    assert (kept.train_state["stage"], kept.train_state["epoch"]) == (1, 1)
    assert all(torch.isfinite(v).all() for v in kept.state_dict.values() if v.is_floating_point())


def test_stage1_trains_fex_and_mask_branch_but_not_the_classifier(tiny_store, tmp_path, config_factory):
    from usvid.models import create_model

    fit(config_factory(epochs=0), tiny_store, tmp_path / "run")
    trained = load_checkpoint(tmp_path / "run" / "last.pt").build_model()
    torch.manual_seed(0)
    initial = create_model("lanet_tiny", num_classes=2, in_channels=1)
    after = dict(trained.named_parameters())
    moved = {name: not torch.equal(p, after[name]) for name, p in initial.named_parameters()}
    assert not any(v for k, v in moved.items() if k.startswith("classifier."))
    for part in ("backbone.", "lanet."):
        share = sum(v for k, v in moved.items() if k.startswith(part)) / sum(k.startswith(part) for k in moved)
        assert share > 0.8, part  # (a few CBAM MLP weights behind a dead ReLU may get no gradient in 3 steps)


@pytest.mark.parametrize("model", ["resnet_tiny_cls", "rmtl_tiny"])
def test_other_model_families_train(tiny_store, tmp_path, config_factory, model):
    result = fit(config_factory(model=model, epochs=1), tiny_store, tmp_path / "run")
    records = _records(result.run)
    stages = [r["stage"] for r in records]
    if model == "resnet_tiny_cls":
        assert stages == [2]  # no mask: stage 1 skipped, L_cls only
        assert records[0]["loss"] == pytest.approx(records[0]["cls"]) and records[0]["loc"] == 0.0
    else:
        assert stages == [1, 2] and records[1]["loc"] > 0
    assert result.best is not None


@pytest.mark.parametrize("source", ["stage1", "ema"])
def test_teacher_pseudo_label_sources(tiny_store, tmp_path, config_factory, source):
    run = tmp_path / "run"
    fit(config_factory(epochs=0, pseudo_source=source), tiny_store, run)
    after_stage1 = load_checkpoint(run / "last.pt").state_dict
    fit(config_factory(epochs=1, pseudo_source=source), tiny_store, run, resume=True)
    final = load_checkpoint(run / "last.pt")
    teacher = final.train_state["teacher"]
    frozen = all(torch.equal(teacher[k], after_stage1[k]) for k in after_stage1)
    assert frozen == (source == "stage1")
    if source == "ema":  # follows the student, lagging behind it
        key = "classifier.fc.weight" if "classifier.fc.weight" in teacher else next(
            k for k in teacher if k.startswith("classifier") and k.endswith("weight"))
        assert not torch.equal(teacher[key], final.state_dict[key])
        assert not torch.equal(teacher[key], after_stage1[key])


def test_progress_events(tiny_store, tmp_path, config_factory):
    events = []
    fit(config_factory(epochs=1, log_every=1), tiny_store, tmp_path / "run", progress=events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "stage" and kinds.count("epoch") == 2
    steps = [e for e in events if e.kind == "step" and e.stage == 2]
    assert [e.step for e in steps] == list(range(1, steps[0].steps + 1))
    assert steps[-1].eta_s == 0.0 and all(e.frames_per_s > 0 and e.eta_s >= 0 for e in steps)
    assert set(steps[-1].losses) == {"loss", "cls", "loc", "pseudo"} and steps[-1].accuracy is not None
    assert events[-1].val["accuracy"] is not None


# ------------------------------------------------------------------------------------------------ errors


def test_refuses_to_overwrite_a_run(trained_run, config_factory):
    store, result = trained_run
    with pytest.raises(InputError, match="already holds a training run; pass --resume"):
        fit(config_factory(), store, result.run)


def test_resume_without_a_run(tiny_store, tmp_path, config_factory):
    with pytest.raises(InputError, match="no last.pt to resume from"):
        fit(config_factory(), tiny_store, tmp_path / "nothing", resume=True)


def test_resume_with_other_options_or_architecture(trained_run, tmp_path, config_factory):
    store, result = trained_run
    with pytest.raises(ConfigError, match="lr: 0.001 -> 0.01"):
        fit(config_factory(lr=0.01), store, result.run, resume=True)
    with pytest.raises(ConfigError, match="model: 'lanet_tiny' -> 'rmtl_tiny'"):
        fit(config_factory(model="rmtl_tiny"), store, result.run, resume=True)


def test_resume_on_a_store_with_other_classes(trained_run, store_factory, tmp_path, config_factory):
    _, result = trained_run
    run = tmp_path / "run"
    shutil.copytree(result.run, run)
    other = store_factory(labels=("cyst", "tumour"))
    with pytest.raises(InputError, match=r"trained on classes \['benign', 'malignant'\].*\['cyst', 'tumour'\]"):
        fit(config_factory(epochs=3), other, run, resume=True)


def test_no_annotated_frames_for_stage1(store_factory, tmp_path, config_factory):
    store = store_factory(annotated_per_video=0)
    with pytest.raises(InputError, match="stage 1 trains on annotated frames.*--stage1-epochs 0"):
        fit(config_factory(), store, tmp_path / "run")
    with pytest.raises(InputError, match="after --box-fraction 0.0"):
        fit(config_factory(box_fraction=0.0), store_factory(), tmp_path / "run2")


def test_one_class_and_empty_splits(store_factory, tmp_path, config_factory):
    with pytest.raises(InputError, match="holds only the class"):
        fit(config_factory(), store_factory(labels=("benign",)), tmp_path / "a")
    with pytest.raises(InputError, match="split 'val' has no videos; splits with videos: train"):
        fit(config_factory(), store_factory(splits={"train": 1, "test": 1}), tmp_path / "b")


def test_worker_processes_do_not_change_the_result(trained_run, tmp_path, config_factory):
    store, straight = trained_run
    with_workers = fit(config_factory(num_workers=2), store, tmp_path / "workers")
    assert _same_weights(with_workers.last, straight.last)


@pytest.mark.gpu
def test_cuda_amp_channels_last_training(tiny_store, tmp_path, config_factory, cuda_device):
    result = fit(config_factory(device="cuda", amp=True, channels_last=True), tiny_store, tmp_path / "run")
    records = _records(result.run)
    assert all(math.isfinite(r["loss"]) for r in records)
    assert result.best is not None and load_checkpoint(result.best).preprocess.size == 64


def test_killed_run_resumes_without_losing_finished_epochs(tiny_store, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "usvid", "train", str(tiny_store.path), "--out", str(run), "--model", "lanet_tiny",
           "--size", "64", "--stage1-epochs", "1", "--batch-size", "4", "--device", "cpu", "--num-workers", "0"]
    proc = subprocess.Popen([*cmd, "--epochs", "500"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            metrics = run / "metrics.jsonl"
            # A 4th line means stage-2 epoch 2 was checkpointed (each epoch: metrics line, then last.pt).
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = load_checkpoint(run / "last.pt").train_state["epoch"]
    assert done >= 2  # stage-2 epochs that finished before the kill
    subprocess.run([*cmd, "--epochs", str(done + 1), "--resume"], check=True, capture_output=True,
                   env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    epochs = [(r["stage"], r["epoch"]) for r in _records(run)]
    assert epochs == [(1, 1)] + [(2, e) for e in range(1, done + 2)]
    assert load_checkpoint(run / "last.pt").train_state["epoch"] == done + 1


# ------------------------------------------------------------------------------------------------ schedule, recipe


def test_resuming_a_cosine_run_with_more_epochs_follows_the_new_total(tiny_store, tmp_path, config_factory):
    run = tmp_path / "run"
    fit(config_factory(epochs=2, scheduler="cosine"), tiny_store, run)
    fit(config_factory(epochs=4, scheduler="cosine"), tiny_store, run, resume=True)
    lrs = [r["lr"] for r in _records(run) if r["stage"] == 2]
    # The first two epochs ran under the 2-epoch cosine; the resumed ones follow the 4-epoch cosine from epoch 3
    # on (the lr never climbs back up to the start).
    assert lrs[:2] == pytest.approx([1e-3, 0.5e-3])
    assert lrs[2:] == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in (2, 3)])
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


FINETUNE_LIKE = dict(optimizer="adamw", weight_decay=0.05, scheduler="cosine", warmup_epochs=0.5, schedule_unit="step",
                     label_smoothing=0.1, rrc_scale=(0.75, 1.0), weight_ema_decay=0.9, fex_lr_scale=0.1)


class _Stop(Exception):
    pass


def _stop_after(stage: int, epoch: int):
    """A progress callback that interrupts fit() once that epoch's last.pt is written."""

    def progress(event) -> None:
        if event.kind == "epoch" and (event.stage, event.epoch) == (stage, epoch):
            raise _Stop

    return progress


def test_recipe_options_train_and_resume_exactly(trained_run, tmp_path, config_factory):
    store, _ = trained_run
    straight = fit(config_factory(**FINETUNE_LIKE), store, tmp_path / "straight")
    records = _records(straight.run)
    assert all(math.isfinite(r["loss"]) for r in records)
    last = load_checkpoint(straight.last)
    ema = last.train_state["weight_ema"]
    assert int(ema["updates"]) == last.train_state["global_step"] > 0
    # best.pt and FitResult.model hold the weight EMA, last.pt the raw weights training resumes from.
    best = load_checkpoint(straight.best)
    key = next(k for k in best.state_dict if k.endswith("weight") and best.state_dict[k].ndim > 1)
    assert not torch.equal(last.state_dict[key], ema["weights"][key])
    if best.train_state["epoch"] == 2:
        assert torch.equal(best.state_dict[key], ema["weights"][key])
    assert torch.equal(straight.model.state_dict()[key].cpu(), ema["weights"][key])
    # Interrupted mid stage 2 (same epochs: the schedule follows the total, so a longer run is another schedule).
    run = tmp_path / "run"
    with pytest.raises(_Stop):
        fit(config_factory(**FINETUNE_LIKE), store, run, progress=_stop_after(2, 1))
    fit(config_factory(**FINETUNE_LIKE), store, run, resume=True)
    assert _same_weights(run / "last.pt", straight.last) and _same_weights(run / "best.pt", straight.best)
    resumed_ema = load_checkpoint(run / "last.pt").train_state["weight_ema"]["weights"]
    assert all(torch.equal(resumed_ema[k], ema["weights"][k]) for k in ema["weights"])
    assert _without_timing(_records(run)) == _without_timing(records)


def test_input_normalization_of_the_model_reaches_the_checkpoint(tiny_store, tmp_path, config_factory, monkeypatch):
    import usvid.training.loop

    monkeypatch.setattr(usvid.training.loop, "input_normalization", lambda config: (0.5, 0.5))
    result = fit(config_factory(stage1_epochs=0, epochs=1), tiny_store, tmp_path / "run")
    pre = load_checkpoint(result.best).preprocess
    assert (pre.mean, pre.std) == (0.5, 0.5)


@pytest.mark.parametrize(("model", "grid"), [("lanet_tiny", 2), ("rmtl_tiny", 16)])
def test_mask_loss_supervises_the_logits_at_their_own_resolution(tiny_store, tmp_path, config_factory, monkeypatch,
                                                                 model, grid):
    seen = []
    real_loc, real_hybrid = loop.loc_loss, loop.hybrid_loss

    def loc_spy(pred, target, *args, **kwargs):
        seen.append((tuple(pred.shape[-2:]), tuple(target.shape[-2:]), kwargs.get("from_logits")))
        return real_loc(pred, target, *args, **kwargs)

    def hybrid_spy(logits, labels, pred, target, annotated, pseudo, **kwargs):
        seen.append((tuple(pred.shape[-2:]), tuple(target.shape[-2:]), kwargs.get("from_logits")))
        if pseudo is not None:
            assert pseudo.shape == pred.shape and set(pseudo.unique().tolist()) <= {0.0, 1.0}
        return real_hybrid(logits, labels, pred, target, annotated, pseudo, **kwargs)

    monkeypatch.setattr(loop, "loc_loss", loc_spy)
    monkeypatch.setattr(loop, "hybrid_loss", hybrid_spy)
    fit(config_factory(model=model, epochs=1), tiny_store, tmp_path / "run")  # 64 px: H/32 = 2, H/4 = 16
    assert seen and set(seen) == {((grid, grid), (grid, grid), True)}


def test_models_without_mask_logits_fall_back_to_the_probabilities():
    from typing import NamedTuple

    class Old(NamedTuple):
        logits: torch.Tensor
        mask: torch.Tensor

    out = Old(torch.zeros(1, 2), torch.full((1, 1, 2, 2), 0.9))
    pred, from_logits = loop._loss_mask(out)
    assert pred is out.mask and from_logits is False


def test_mask_prior_reaches_the_trained_network(trained_run, tmp_path, config_factory):
    store, _ = trained_run
    config = config_factory(epochs=0, stage1_epochs=1, mask_prior=0.05)
    # The network fit starts from: the fusion BN's bias is logit(0.05).
    start = loop._build_model(config, ["benign", "malignant"])
    assert start.lanet.fuse[1].bias.item() == pytest.approx(math.log(0.05 / 0.95), abs=1e-6)
    result = fit(config, store, tmp_path / "prior")
    ckpt = load_checkpoint(result.last)
    assert ckpt.model_config["mask_prior"] == 0.05
    assert ckpt.build_model().config.mask_prior == 0.05


def test_mask_stride_reaches_the_trained_network_and_its_loss(trained_run, tmp_path, config_factory, monkeypatch):
    store, _ = trained_run
    config = config_factory(epochs=0, stage1_epochs=1, mask_stride=16)
    grids = []
    real = loop.mask_target
    monkeypatch.setattr(loop, "mask_target", lambda mask, size: grids.append(tuple(size)) or real(mask, size))
    result = fit(config, store, tmp_path / "fine")
    # The localisation loss is taken on P's own 16 x 16-pixel cells, not on f4's grid.
    assert grids and set(grids) == {(config.size // 16, config.size // 16)}
    ckpt = load_checkpoint(result.last)
    assert ckpt.model_config["mask_stride"] == 16
    with torch.no_grad():
        mask = ckpt.build_model().eval()(torch.zeros(1, 1, config.size, config.size)).mask
    assert mask.shape == (1, 1, config.size // 16, config.size // 16)


def test_resume_accepts_a_run_saved_before_a_model_key_existed(trained_run, tmp_path, config_factory):
    from dataclasses import replace

    from usvid.checkpoint import save_checkpoint

    store, straight = trained_run
    run = tmp_path / "run"
    shutil.copytree(straight.run, run)
    old = load_checkpoint(run / "last.pt")
    older = {k: v for k, v in old.model_config.items() if k != "mask_prior"}  # written before the key existed
    save_checkpoint(run / "last.pt", replace(old, model_config=older))
    fit(config_factory(epochs=3), store, run, resume=True)
    assert [(r["stage"], r["epoch"]) for r in _records(run)][-1] == (2, 3)
    # A run of another network is still refused.
    save_checkpoint(run / "last.pt", replace(old, model_config=older | {"use_mam": False}))
    with pytest.raises(InputError, match="saved for a different architecture"):
        fit(config_factory(epochs=4), store, run, resume=True)
