"""``usvid stream`` end to end with a real (tiny) checkpoint, and clean shutdown on SIGINT / SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from usvid.cli.app import app

runner = CliRunner()


def test_help_lists_the_options():
    result = runner.invoke(app, ["stream", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--model",
        "--realtime",
        "--record",
        "--jsonl",
        "--serve",
        "--window",
        "--stats",
        "--max-frames",
        "--roi",
    ):
        assert option in result.output


def test_missing_source_is_one_clear_line(tiny_checkpoint, tmp_path):
    result = runner.invoke(app, ["stream", str(tmp_path / "nope.mp4"), "--model", str(tiny_checkpoint)])
    assert result.exit_code == 2
    assert "nope.mp4' does not exist" in result.output and "Traceback" not in result.output


def test_bad_roi_option(tiny_checkpoint, clip_path):
    result = runner.invoke(app, ["stream", str(clip_path), "--model", str(tiny_checkpoint), "--roi", "1,2,3"])
    assert result.exit_code == 2 and "--roi: expected 4" in result.output


def test_stream_a_file_with_a_real_model(tiny_checkpoint, clip_path, tmp_path):
    stats, jsonl, rec = tmp_path / "STATS.json", tmp_path / "pred.jsonl", tmp_path / "out.mp4"
    result = runner.invoke(
        app,
        [
            "stream",
            str(clip_path),
            "--model",
            str(tiny_checkpoint),
            "--stats",
            str(stats),
            "--jsonl",
            str(jsonl),
            "--record",
            str(rec),
            "--max-frames",
            "12",
            "--roi",
            "20,15,130,80",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "stopped by max frames" in result.output
    data = json.loads(stats.read_text())
    assert data["frames"] == 12 and data["captured"] == 12 and data["dropped"] == 0
    assert data["latency_ms"]["p50"] > 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    frames = [r for r in rows if "frame_index" in r]
    assert len(frames) == len(rows) == 12 and frames[0]["label"] in ("benign", "malignant")
    assert sum(frames[0]["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    assert frames[0]["roi"] == [20, 15, 130, 80]
    with av.open(str(rec)) as c:
        assert len(list(c.decode(video=0))) == 12


def start_stream(
    tiny_checkpoint: Path, source: Path, tmp_path: Path
) -> tuple[subprocess.Popen, dict[str, Path]]:
    paths = {
        k: tmp_path / n for k, n in (("rec", "out.mp4"), ("stats", "STATS.json"), ("jsonl", "pred.jsonl"))
    }
    cmd = [
        sys.executable,
        "-m",
        "usvid",
        "stream",
        str(source),
        "--model",
        str(tiny_checkpoint),
        "--realtime",
        "--record",
        str(paths["rec"]),
        "--stats",
        str(paths["stats"]),
        "--jsonl",
        str(paths["jsonl"]),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    return proc, paths


def wait_for_frames(proc: subprocess.Popen, jsonl: Path, n: int, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"stream exited early: {proc.stderr.read().decode()}")
        if jsonl.exists() and sum('"frame_index"' in line for line in jsonl.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("stream produced no frames")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_with_a_playable_mp4(tiny_checkpoint, long_clip_path, tmp_path, sig):
    proc, paths = start_stream(tiny_checkpoint, long_clip_path, tmp_path)
    wait_for_frames(proc, paths["jsonl"], 10)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    err = err.decode()
    assert proc.returncode == 0, err
    assert f"stopped by signal {sig.name}" in err
    stats = json.loads(paths["stats"].read_text())
    assert stats["stopped_by"] == f"signal {sig.name}" and 10 <= stats["frames"] < 150
    with av.open(str(paths["rec"])) as c:
        assert len(list(c.decode(video=0))) == stats["frames"]


@pytest.mark.slow
def test_hard_kill_still_leaves_a_playable_mp4(tiny_checkpoint, long_clip_path, tmp_path):
    """Fragmented mp4: every finished 2-second fragment survives even ``kill -9``."""
    proc, paths = start_stream(tiny_checkpoint, long_clip_path, tmp_path)
    wait_for_frames(proc, paths["jsonl"], 75)  # 2.5 s of the 30 fps clip: one fragment is complete
    proc.kill()
    proc.wait()
    with av.open(str(paths["rec"])) as c:
        assert len(list(c.decode(video=0))) >= 30
