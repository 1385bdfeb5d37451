"""Fault corpus for ``usvid synth``, ``usvid predict`` and ``usvid demo`` (issue 17, items 1, 2, 4 and 10).

Every faulty input is generated here. Each case checks the named error and exit code, that files written
before the run (the user's, or an earlier run's) are byte-identical afterwards, and that the other items of
the same run still complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner
from usvid.cli.app import app

from tests.helpers.checkpoints import make_checkpoint
from usvid.video.testvideos import write_test_video

runner = CliRunner()
CLASSES = ("benign", "malignant", "normal")
# Tiny synth runs: 98x66 at 10 fps keeps each well under a second.
SMALL_SYNTH = ["--seconds", "0.5", "--size", "98x66", "--fps", "10"]


# ---------------------------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``root`` (hidden ones too)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mtimes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()
    }


def lines_of(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def assert_one_line_error(result, code: int, *needles: str) -> None:
    lines = lines_of(result)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and len(lines) == 1, result.output
    for needle in needles:
        assert needle in lines[0], result.output


def user_dataset(root: Path) -> Path:
    """The issue's folder: a user's own dataset laid out exactly like synth's output (random bytes: the user's
    files need not be videos for the point to hold)."""
    rng = np.random.default_rng(17)
    (root / "videos").mkdir(parents=True)
    names = ["p000_v1", "p001_v1", "p001_v2", "p002_v1", "p002_v2", "my_real_scan"]
    for name in names:
        (root / "videos" / f"{name}.mp4").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    rows = [f"{n},{n[:4]},videos/{n}.mp4,benign" for n in names]
    (root / "manifest.csv").write_text("video_id,patient_id,path,label\n" + "\n".join(rows) + "\n")
    return root


@pytest.fixture()
def refuse_writes(monkeypatch):
    """Make every new file fail as on a read-only folder (the tests run as root, where chmod does not)."""
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)


def _no_root_reason() -> str:
    return "root writes into read-only folders; the monkeypatched test covers this case"


# ---------------------------------------------------------------------------------------------- synth


def test_synth_refuses_a_users_dataset_and_leaves_every_file(tmp_path):
    """Item 1, the issue's exact scenario: exit 2, and every user file is byte-identical."""
    u = user_dataset(tmp_path / "u")
    before = snapshot(u)
    result = runner.invoke(app, ["synth", str(u), "--patients", "1", "--seconds", "1"])
    assert_one_line_error(result, 2, "OUT", "did not write", "--overwrite")
    assert snapshot(u) == before, "nothing is written, replaced or deleted"


def test_synth_overwrite_replaces_only_same_named_files(tmp_path):
    u = user_dataset(tmp_path / "u")
    before = snapshot(u)
    result = runner.invoke(app, ["synth", str(u), "--patients", "1", *SMALL_SYNTH, "--overwrite"])
    assert result.exit_code == 0, result.output
    after = snapshot(u)
    replaced = {rel for rel in before if after.get(rel) != before[rel]}
    # patient p000 has one video in this plan: only its name and the manifest are synth's to write
    assert replaced == {"videos/p000_v1.mp4", "manifest.csv"}, replaced
    assert all(after[rel] == before[rel] for rel in before if rel not in replaced), "nothing else was touched"
    assert {"annotations.json", "ground_truth.json", "synth_config.json", ".usvid-synth.json"} <= set(after)


def test_synth_rerun_removes_only_its_own_unchanged_files(tmp_path):
    out = tmp_path / "out"
    first = runner.invoke(app, ["synth", str(out), "--patients", "3", *SMALL_SYNTH])
    assert first.exit_code == 0, first.output
    videos = sorted(p.name for p in (out / "videos").iterdir())
    edited = out / "videos" / videos[-1]  # a video of the last patient, which a 1-patient run drops
    edited.write_bytes(edited.read_bytes() + b"user edit")
    (out / "videos" / "my_real_scan.mp4").write_bytes(b"a real scan")
    (out / "notes.txt").write_text("keep")
    kept = {p: p.read_bytes() for p in (edited, out / "videos" / "my_real_scan.mp4", out / "notes.txt")}

    again = runner.invoke(app, ["synth", str(out), "--patients", "1", *SMALL_SYNTH])
    assert again.exit_code == 0, again.output
    for path, data in kept.items():
        assert path.read_bytes() == data, f"{path.name} is not synth's (any more) and must stay"
    left = {p.name for p in (out / "videos").iterdir()}
    dropped = set(videos) - {"p000_v1.mp4", edited.name}
    assert not (dropped & left), "synth's own unchanged videos of the larger run are removed"
    assert "p000_v1.mp4" in left


def test_synth_refuses_a_planned_file_the_user_changed(tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["synth", str(out), "--patients", "1", *SMALL_SYNTH]).exit_code == 0
    manifest = out / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("benign", "malignant").replace("normal", "malignant"))
    before = snapshot(out)
    result = runner.invoke(app, ["synth", str(out), "--patients", "1", *SMALL_SYNTH])
    assert_one_line_error(result, 2, "manifest.csv", "changed since")
    assert snapshot(out) == before


def test_synth_after_a_kill_cleans_only_its_own_temporaries(tmp_path):
    from usvid.synth import SynthConfig, generate_dataset

    out = tmp_path / "out"
    config = SynthConfig(patients=2, seconds=0.5, width=98, height=66, fps=10)
    first = generate_dataset(out, config)
    # what kill -9 leaves: atomic_path temporaries of synth's own names; beside them, a user's hidden file
    ours = [out / ".manifest.csv.abc123_x.tmp", out / "videos" / ".p000_v1.mp4.zz9_k0q1.tmp"]
    for path in ours:
        path.write_bytes(b"half")
    foreign = out / "videos" / ".my_scan.mp4.abcdefgh.tmp"
    foreign.write_bytes(b"user")
    (out / "synth_config.json").unlink()  # the run did not finish
    videos_before = {k: v for k, v in snapshot(out / "videos").items() if not k.startswith(".")}
    again = generate_dataset(out, config)
    assert not again.reused and again.videos == first.videos
    assert not any(p.exists() for p in ours), "the killed run's temporaries are removed"
    assert foreign.read_bytes() == b"user", "a hidden file that only looks like a temporary is kept"
    after = snapshot(out / "videos")
    assert {k: after[k] for k in videos_before} == videos_before, "a deterministic re-render, same videos"


@pytest.mark.parametrize("case", ["file", "nul", "under_file"])
def test_synth_bad_out_is_one_line(tmp_path, case):
    blocker = tmp_path / "taken"
    blocker.write_text("user data")
    out = {"file": str(blocker), "nul": str(tmp_path / "a\x00b"), "under_file": str(blocker / "sub")}[case]
    result = runner.invoke(app, ["synth", out, *SMALL_SYNTH])
    assert_one_line_error(result, 2, "OUT")
    assert blocker.read_text() == "user data" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_synth_read_only_out_is_refused_before_work(tmp_path, refuse_writes):
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), *SMALL_SYNTH])
    assert_one_line_error(result, 2, "OUT", "cannot write")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason=_no_root_reason())
def test_synth_chmod_read_only_out(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        result = runner.invoke(app, ["synth", str(ro / "out"), *SMALL_SYNTH])
        assert_one_line_error(result, 2, "OUT", "cannot write")
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", classes=CLASSES)


def scans(folder: Path, names=("a", "b", "c")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_test_video(
            folder / f"{name}.mp4", width=66, height=50, num_frames=4, fps=10, kind="ultrasound", seed=i
        )
    return folder


def predict_args(src, model, out, *extra) -> list[str]:
    return ["predict", str(src), "--model", str(model), "--out", str(out), "--full-frame", *extra]


def test_predict_resumes_after_a_kill(tmp_path, tiny_model):
    """Item 4: temporaries of a killed run go, finished videos are kept, missing or changed ones are redone."""
    src, out = scans(tmp_path / "src"), tmp_path / "out"
    first = runner.invoke(app, predict_args(src, tiny_model, out))
    assert first.exit_code == 0 and "predicted 3, already done 0" in first.output, first.output
    # kill -9 while "c" was written: its jsonl never got renamed into place, temporaries are left
    (out / "c.jsonl").unlink()
    ours = [
        out / ".c.jsonl.k1ll3d_a.tmp",
        out / ".c.overlay.mp4.k1ll3d_b.tmp",
        out / ".summary.csv.k1ll3d_c.tmp",
    ]
    for path in ours:
        path.write_bytes(b"half-written")
    foreign = [out / ".notes.txt.abcdefgh.tmp", out / "c.jsonl.bak"]
    for path in foreign:
        path.write_bytes(b"user")
    # and the user replaced source "b" meanwhile
    write_test_video(src / "b.mp4", width=66, height=50, num_frames=6, fps=10, kind="ultrasound", seed=9)
    kept = {name: (out / name).stat().st_mtime_ns for name in ("a.jsonl", "a.overlay.mp4")}
    sources = snapshot(src)

    again = runner.invoke(app, predict_args(src, tiny_model, out))
    assert again.exit_code == 0 and "predicted 2, already done 1" in again.output, again.output
    assert not any(p.exists() for p in ours), "the killed run's temporaries are removed"
    assert all(p.read_bytes() == b"user" for p in foreign), "files that only look similar are kept"
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept, "finished video not redone"
    assert len((out / "b.jsonl").read_text().splitlines()) == 6, "the changed source is predicted again"
    assert len((out / "c.jsonl").read_text().splitlines()) == 4
    assert snapshot(src) == sources
    summary = (out / "summary.csv").read_text()
    assert all(f"\n{n}," in summary for n in "abc"), "the summary lists resumed videos too"

    third = runner.invoke(app, predict_args(src, tiny_model, out, "--batch-size", "3"))
    assert third.exit_code == 0 and "predicted 0, already done 3" in third.output, (
        "batch size changes no result"
    )
    stamps = mtimes(out)
    changed = runner.invoke(app, predict_args(src, tiny_model, out, "--threshold", "0.7"))
    assert changed.exit_code == 0 and "predicted 3, already done 0" in changed.output, (
        "settings changed: redo"
    )
    assert mtimes(out)["a.jsonl"] != stamps["a.jsonl"]


def test_predict_redoes_all_when_the_model_changes(tmp_path, tiny_model):
    src, out = scans(tmp_path / "src", names=("a", "b")), tmp_path / "out"
    assert runner.invoke(app, predict_args(src, tiny_model, out, "--no-overlay")).exit_code == 0
    other = tmp_path / "other.pt"
    make_checkpoint(other, classes=CLASSES, seed=1)
    result = runner.invoke(app, predict_args(src, other, out, "--no-overlay"))
    assert result.exit_code == 0 and "predicted 2, already done 0" in result.output, result.output


def test_predict_refuses_out_that_is_the_source_folder(tmp_path, tiny_model):
    src = scans(tmp_path / "src", names=("a",))
    before = snapshot(src)
    result = runner.invoke(app, predict_args(src, tiny_model, src))
    assert_one_line_error(result, 2, "--out", "is also an input")
    assert snapshot(src) == before


@pytest.mark.parametrize("which", ["source", "model"])
def test_predict_refuses_out_that_is_an_input_file(tmp_path, tiny_model, which):
    src = scans(tmp_path / "src", names=("a",))
    model = tmp_path / "m.pt"
    shutil.copy(tiny_model, model)
    target = src / "a.mp4" if which == "source" else model
    before = snapshot(tmp_path)
    result = runner.invoke(app, predict_args(src / "a.mp4", model, target))
    assert_one_line_error(result, 2, "--out", str(target))
    assert snapshot(tmp_path) == before


def test_predict_refuses_an_output_name_that_is_a_source(tmp_path, tiny_model):
    """A manifest lists an earlier overlay as video ``v``: predicting it into that folder would write
    ``v.overlay.mp4`` over the very file being read."""
    root = tmp_path / "ds"
    scans(root / "preds", names=("v.overlay",))
    scans(root / "raw", names=("w",))
    (root / "manifest.csv").write_text(
        "video_id,patient_id,path,label\nw,p1,raw/w.mp4,benign\nv,p2,preds/v.overlay.mp4,benign\n"
    )
    before = snapshot(root)
    result = runner.invoke(app, predict_args(root, tiny_model, root / "preds"))
    assert_one_line_error(result, 2, "--out", "v.overlay.mp4", "is also an input")
    assert snapshot(root) == before
    # with overlays off the same run is fine, and both videos complete
    ok = runner.invoke(app, predict_args(root, tiny_model, root / "preds", "--no-overlay"))
    assert ok.exit_code == 0 and "predicted 2" in ok.output, ok.output
    assert snapshot(root)["preds/v.overlay.mp4"] == before["preds/v.overlay.mp4"]


@pytest.mark.parametrize("case", ["out_file", "out_nul", "src_nul", "model_nul"])
def test_predict_bad_paths_are_one_line(tmp_path, tiny_model, case):
    src = scans(tmp_path / "src", names=("a",))
    taken = tmp_path / "taken.txt"
    taken.write_text("user data")
    src_arg, model_arg, out_arg = str(src), str(tiny_model), str(tmp_path / "out")
    if case == "out_file":
        out_arg = str(taken)
    elif case == "out_nul":
        out_arg = str(tmp_path / "o\x00ut")
    elif case == "src_nul":
        src_arg = str(src) + "\x00x"
    else:
        model_arg = str(tiny_model) + "\x00x"
    result = runner.invoke(app, ["predict", src_arg, "--model", model_arg, "--out", out_arg])
    needle = {"out_file": "--out", "out_nul": "NUL", "src_nul": "NUL", "model_nul": "NUL"}[case]
    assert_one_line_error(result, 2, needle)
    assert taken.read_text() == "user data" and not (tmp_path / "out").exists()


def test_predict_read_only_out_is_refused_before_the_model_loads(
    tmp_path, tiny_model, refuse_writes, monkeypatch
):
    import usvid.inference.predict as predict_module

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(predict_module, "load_predictor", must_not_load)
    src = tmp_path / "a.mp4"
    src.write_bytes(b"not read")  # the check comes first, so the source is never opened
    result = runner.invoke(app, predict_args(src, tiny_model, tmp_path / "out"))
    assert_one_line_error(result, 2, "--out", "cannot write")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason=_no_root_reason())
def test_predict_chmod_read_only_out(tmp_path, tiny_model):
    src = scans(tmp_path / "src", names=("a",))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_one_line_error(runner.invoke(app, predict_args(src, tiny_model, ro)), 2, "cannot write")
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------------------------------------- demo


def test_demo_refuses_a_folder_of_the_users(tmp_path):
    out = tmp_path / "mine"
    (out / "predict").mkdir(parents=True)
    (out / "model.onnx").write_bytes(b"the user's own model")
    (out / "predict" / "summary.csv").write_text("user,results\n")
    before = snapshot(out)
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert_one_line_error(result, 2, "--out", "did not write")
    assert snapshot(out) == before


@pytest.mark.parametrize("case", ["file", "nul"])
def test_demo_bad_out_is_one_line(tmp_path, case):
    taken = tmp_path / "taken"
    taken.write_text("user data")
    out = str(taken) if case == "file" else str(tmp_path / "d\x00emo")
    result = runner.invoke(app, ["demo", "--out", out])
    assert_one_line_error(result, 2, "--out")
    assert taken.read_text() == "user data" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_demo_read_only_out_is_refused(tmp_path, refuse_writes):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert_one_line_error(result, 2, "--out", "cannot write")
    assert not (tmp_path / "demo").exists()


def test_demo_folder_is_claimed_once_and_reused(tmp_path):
    from usvid.demo import claim_demo_folder

    out = claim_demo_folder(tmp_path / "demo")
    (out / "synth").mkdir()  # as after a first, interrupted demo run
    assert claim_demo_folder(out) == out, "the demo's own folder is accepted again"
    (tmp_path / "plain").mkdir()
    assert claim_demo_folder(tmp_path / "plain").is_dir(), "an empty folder is fine"
