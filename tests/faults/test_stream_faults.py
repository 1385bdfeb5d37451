"""Fault corpus for ``usvid stream``: outputs that are inputs or unwritable, signals during shutdown, and hostile
requests to the browser view.

Every faulty input is generated here. Each case checks the named error and exit code, and that files written
before (the source, the model, an earlier run's outputs) are byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner
from usvid.cli.app import app

from usvid.boxes import Box
from tests.helpers.streaming import UDP_SENDER, wait_for
from tests.helpers.videos import count_frames as decoded_frames
from tests.helpers.videos import noise_frames, write_video
from usvid.errors import ConfigError, InputError
from usvid.inference.metadata import ModelInfo
from usvid.inference.predictor import Prediction, Timing
from usvid.preprocess import PreprocessConfig
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.config import ServeAddress, check_paths
from usvid.streaming.results import OverlayFrame
from usvid.streaming.server import BrowserView, allowed_hosts, is_ip_literal
from usvid.streaming.sinks import JsonlWriter, Mp4Recorder, events_path
from usvid.streaming.sources import SourceLost, SourceState
from usvid.video.roi import RegionConfig

runner = CliRunner()
WIDTH, HEIGHT = 96, 64


# ---------------------------------------------------------------- generated inputs
def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_clip(path: Path, n: int = 12, fps: int = 15) -> Path:
    """A tiny H.264 mp4 of moving noise."""
    return write_video(path, noise_frames(n, WIDTH, HEIGHT), fps)


@pytest.fixture
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


@pytest.fixture
def clip(tmp_path) -> Path:
    return write_clip(tmp_path / "a.mp4")


def stream(*args: str):
    result = runner.invoke(app, ["stream", *map(str, args)], env={"COLUMNS": "300"})
    assert "Traceback" not in result.output, result.output
    return result


# ---------------------------------------------------------------- item 2: an output that is an input
@pytest.mark.parametrize("option", ["--record", "--stats", "--jsonl"])
def test_output_that_is_the_source_is_refused(clip, checkpoint, tmp_path, option):
    before = digest(clip)
    result = stream(clip, "--model", checkpoint, option, clip)
    assert result.exit_code == 2, result.output
    assert f"{option} {clip}: is also an input" in result.output
    assert digest(clip) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_source_reached_by_a_symlink_or_relative_path_is_refused(clip, checkpoint, tmp_path, monkeypatch):
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    before = digest(clip)
    assert stream(clip, "--model", checkpoint, "--record", link).exit_code == 2
    monkeypatch.chdir(tmp_path)
    result = stream(clip, "--model", checkpoint, "--record", "a.mp4")
    assert result.exit_code == 2 and "is also an input" in result.output
    assert digest(clip) == before


def test_output_that_is_the_model_is_refused(clip, checkpoint, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(checkpoint.read_bytes())  # a copy: the shared one must survive a regression here
    before = digest(model)
    result = stream(clip, "--model", model, "--stats", model)
    assert result.exit_code == 2 and f"--stats {model}: is also an input" in result.output
    assert digest(model) == before


def test_two_outputs_on_one_path_are_refused(clip, checkpoint, tmp_path):
    out = tmp_path / "out.mp4"
    result = stream(clip, "--model", checkpoint, "--record", out, "--stats", out)
    assert result.exit_code == 2 and "is also the --record file" in result.output
    assert not out.exists()


def test_refused_before_anything_opens(clip, tmp_path):
    """The check comes before the source and the model are opened: a missing model is not even looked at."""
    result = stream(clip, "--model", tmp_path / "missing.pt", "--record", clip)
    assert result.exit_code == 2 and "is also an input" in result.output


# ---------------------------------------------------------------- item 10: outputs that cannot be written
def test_stats_folder_fails_up_front_and_earlier_outputs_survive(clip, checkpoint, tmp_path):
    """Today the stats were lost at the end of the run (and --jsonl truncated at its start): check first."""
    earlier = tmp_path / "pred.jsonl"
    earlier.write_text('{"frame": 0}\n')
    folder = tmp_path / "stats"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = digest(earlier)
    result = stream(
        clip, "--model", checkpoint, "--jsonl", earlier, "--stats", folder, "--record", tmp_path / "r.mp4"
    )
    assert result.exit_code == 2, result.output
    assert f"--stats {folder}: is a folder" in result.output
    assert digest(earlier) == before
    assert not (tmp_path / "r.mp4").exists() and [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_record_folder_is_refused(clip, checkpoint, tmp_path):
    folder = tmp_path / "rec.mp4"
    folder.mkdir()
    result = stream(clip, "--model", checkpoint, "--record", folder)
    assert result.exit_code == 2 and f"--record {folder}: is a folder" in result.output


def test_record_in_a_read_only_place_is_refused(clip, checkpoint, tmp_path, monkeypatch):
    """Root writes into chmod 0555 folders, so a read-only mount is simulated where the probe file goes."""
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(13, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    stats = tmp_path / "stats.json"
    result = stream(clip, "--model", checkpoint, "--record", locked / "r.mp4", "--stats", stats)
    assert result.exit_code == 2, result.output
    assert f"--record {locked / 'r.mp4'}: cannot write in {locked} (Read-only file system)" in result.output
    assert not stats.exists() and list(locked.iterdir()) == []


@pytest.mark.parametrize("option", ["--record", "--stats", "--jsonl", "--model", "source"])
def test_nul_byte_in_a_path(clip, checkpoint, tmp_path, option):
    """Click refuses a NUL in the path options itself (exit 2); the source (plain text) and a program calling
    the library meet our check."""
    bad = f"{tmp_path}/x\x00y.mp4"
    args = {"source": str(clip), "--model": str(checkpoint), option: bad}
    extra = [] if option in ("source", "--model") else [option, bad]
    result = stream(args["source"], "--model", args["--model"], *extra)
    assert result.exit_code == 2, result.output
    assert re.search(r"(NUL|null) byte", result.output), result.output
    if option == "source":
        assert "source: " in result.output and "contains a NUL byte" in result.output
    fields = {
        "source": "source",
        "--model": "model",
        "--record": "record",
        "--stats": "stats",
        "--jsonl": "jsonl",
    }
    cfg = StreamConfig(**{"source": str(clip), "model": checkpoint, fields[option]: bad})
    with pytest.raises(InputError, match=rf"^{option}: .* contains a NUL byte"):
        check_paths(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_good_outputs_still_work_after_the_checks(clip, checkpoint, tmp_path):
    rec, stats = tmp_path / "new" / "r.mp4", tmp_path / "stats.json"
    result = stream(clip, "--model", checkpoint, "--record", rec, "--stats", stats, "--roi", "0,0,96,64")
    assert result.exit_code == 0, result.output
    assert json.loads(stats.read_text())["frames"] == 12 == decoded_frames(rec)


def test_library_checks_too(tmp_path):
    """A program driving the pipeline itself gets the same checks (``StreamPipeline.start`` runs them)."""
    video = write_clip(tmp_path / "v.mp4", n=2)
    cfg = StreamConfig(source=str(video), model=Path("m.pt"), jsonl=video)
    with pytest.raises(InputError, match="is also an input"):
        check_paths(cfg)
    with pytest.raises(InputError, match="is also an input"):
        StreamPipeline(cfg, FakePredictor()).start()
    assert decoded_frames(video) == 2


# ---------------------------------------------------------------- item 3: signals during shutdown
class FakePredictor:
    """The :class:`usvid.inference.Predictor` interface, answering at once."""

    def __init__(self) -> None:
        self.info = ModelInfo(("benign", "malignant"), PreprocessConfig(size=64), {}, "fake", True)
        self.device = torch.device("cpu")

    def predict(self, frames: torch.Tensor, roi=None) -> Prediction:
        h, w = frames.shape[-2:]
        box = Box(w // 4, h // 4, w // 2, h // 2, 0.9)
        return Prediction(torch.tensor([[0.3, 0.7]]), None, [box], self.info.class_names, Timing(0, 0.1, 0))


class LostFeed:
    """A live feed that sends ``frames`` frames, goes silent, and then hangs ``hang_s`` on every reconnection
    attempt, as FFmpeg does opening a UDP feed nobody sends to."""

    kind = "network"
    live = True
    spec = "udp://lost-feed"

    def __init__(self, frames: int = 20, hang_s: float = 2.5) -> None:
        self.fps = 50.0
        self.n = frames
        self.hang_s = hang_s
        self.opens = 0
        self.hanging = threading.Event()

    def open(self) -> None:
        self.opens += 1
        if self.opens > 1:
            self.hanging.set()
            time.sleep(self.hang_s)
            raise InputError("could not open network source")

    def frames(self):
        rng = np.random.default_rng(self.opens)
        for i in range(self.n):
            bgr = rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
            yield bgr, bgr[..., 0].copy(), i / self.fps
            time.sleep(1 / self.fps)
        raise SourceLost("no data for 0.2 s")

    def close(self) -> None:
        pass


def signal_during_shutdown(feed: LostFeed, sig: int, repeats: int, gap_s: float) -> threading.Thread:
    """Once the feed is lost and reconnecting hangs, send ``sig`` to this process ``1 + repeats`` times."""

    def send() -> None:
        feed.hanging.wait(20)
        for i in range(1 + repeats):
            if i:
                time.sleep(gap_s)
            os.kill(os.getpid(), sig)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_more_signals_during_shutdown_do_not_lose_outputs(tmp_path, caplog, sig):
    rec, jsonl, stats = tmp_path / "rec.mp4", tmp_path / "pred.jsonl", tmp_path / "stats.json"
    cfg = StreamConfig(
        source=LostFeed.spec,
        model=Path("m.pt"),
        region=RegionConfig(detect=False),
        stats=stats,
        read_timeout_s=0.2,
        reconnect_initial_s=0.01,
        reconnect_max_s=0.1,
    )
    feed = LostFeed()
    pipe = StreamPipeline(
        cfg, FakePredictor(), reader=feed, sinks=[Mp4Recorder(rec, fps=50), JsonlWriter(jsonl)]
    )
    late: list[int] = []
    # The pipeline restores the handlers it found: these catch any signal landing after run() returned,
    # so a slow machine cannot turn this test into a KeyboardInterrupt of the whole session.
    previous = {
        s: signal.signal(s, lambda signum, _f: late.append(signum)) for s in (signal.SIGINT, signal.SIGTERM)
    }
    sender = signal_during_shutdown(feed, sig, repeats=2, gap_s=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="usvid.streaming.pipeline"):
            summary = pipe.run()
    except KeyboardInterrupt:
        pytest.fail("a second signal during shutdown aborted finalising the outputs")
    finally:
        sender.join(10)
        for s, handler in previous.items():
            signal.signal(s, handler)
    name = signal.Signals(sig).name
    assert summary.stopped_by == f"signal {name}" and not late  # all three landed during the shutdown
    assert sum("again: still finishing" in r.getMessage() for r in caplog.records) == 2
    data = json.loads(stats.read_text())
    assert data["stopped_by"] == f"signal {name}" and data["frames"] == 20 == summary.stats.frames
    assert decoded_frames(rec) == 20  # the recording is whole, its last fragment included
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    events = [json.loads(line) for line in events_path(jsonl).read_text().splitlines()]
    assert sum("frame_index" in r for r in records) == len(records) == 20 and events[-1]["event"] == "stopped"


@pytest.mark.slow
def test_cli_double_ctrl_c_after_a_lost_udp_feed(checkpoint, tmp_path):
    """The reported case end to end: a loopback UDP feed dies, Ctrl-C, Ctrl-C again during the shutdown."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec, jsonl, stats = tmp_path / "rec.mp4", tmp_path / "pred.jsonl", tmp_path / "stats.json"
    sender = subprocess.Popen([sys.executable, str(UDP_SENDER), str(port), "--seconds", "60"])
    cmd = [
        sys.executable,
        "-m",
        "usvid",
        "stream",
        f"udp://127.0.0.1:{port}",
        "--model",
        str(checkpoint),
        "--record",
        str(rec),
        "--jsonl",
        str(jsonl),
        "--stats",
        str(stats),
        "--roi",
        "0,0,96,64",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "300"}
    )
    try:
        assert wait_for(lambda: jsonl_count(jsonl, '"frame_index"') >= 20, 60, proc), "no frames from the feed"
        sender.kill()
        assert wait_for(lambda: jsonl_count(events_path(jsonl), '"signal_lost"') >= 1, 10, proc), "loss not noticed"
        time.sleep(1.0)  # reconnecting now: FFmpeg blocks opening the silent feed, and shutdown waits for it
        for _ in range(3):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)
        _, err = proc.communicate(timeout=30)
    finally:
        sender.kill()
        proc.kill()
    err = err.decode()
    assert proc.returncode == 0, err
    assert err.count("SIGINT again: still finishing") == 2 and "Traceback" not in err
    data = json.loads(stats.read_text())
    assert data["stopped_by"] == "signal SIGINT" and data["frames"] >= 20
    assert decoded_frames(rec) == data["frames"]


def jsonl_count(path: Path, needle: str) -> int:
    return sum(needle in line for line in path.read_text().splitlines()) if path.exists() else 0


# ---------------------------------------------------------------- item 9: the browser view
@pytest.fixture
def view():
    """A browser view on loopback with one published frame, three client slots and a 0.5 s idle timeout."""
    v = BrowserView(ServeAddress("127.0.0.1", 0), max_clients=3, idle_timeout_s=0.5)
    v.open()
    v.write(OverlayFrame(np.full((HEIGHT, WIDTH, 3), 128, np.uint8), None, 0.0, SourceState.LIVE))
    yield v
    v.close()


def port_of(view: BrowserView) -> int:
    return int(view.url.rsplit(":", 1)[1].strip("/"))


def request(view: BrowserView, path: str, host: str | None, family=socket.AF_INET, extra: str = "") -> bytes:
    """Send one GET with the given ``Host`` (``None``: no Host header, as HTTP/1.0 allows) and read the reply."""
    addr = ("::1" if family == socket.AF_INET6 else "127.0.0.1", port_of(view))
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(addr)
        head = f"GET {path} HTTP/1.1\r\n" if host is not None else f"GET {path} HTTP/1.0\r\n"
        if host is not None:
            head += f"Host: {host}\r\n"
        s.sendall((head + extra + "\r\n").encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "host",
    [
        "evil.example.com",
        "evil.example.com:{port}",
        "",
        None,
        "127.0.0.1.evil.com",
        "127.0.0.1.evil.com:{port}",
        "localhost:1@evil",
        "localhost:{port}@evil.example.com",
        "localhost:{other}",
        "127.0.0.2:{port}",
    ],
)
def test_hostile_host_headers_are_refused(view, host):
    port = port_of(view)
    host = None if host is None else host.format(port=port, other=port + 1)
    for path in ("/frame.jpg", "/status.json", "/", "/stream.mjpg"):
        reply = request(view, path, host)
        assert status_of(reply) == 421, reply[:200]
        assert b"\xff\xd8" not in reply and b"malignant" not in reply and len(reply) < 400
        assert b"answers only to http://127.0.0.1:" in reply
    assert view.refused_hosts == 4


def test_a_second_host_header_is_refused(view):
    reply = request(view, "/frame.jpg", f"127.0.0.1:{port_of(view)}", extra="Host: evil.example.com\r\n")
    assert status_of(reply) == 421


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:{port}", "localhost", "LocalHost:{port}", "[::1]:{port}"]
)
def test_allowed_hosts_still_get_the_page_and_frames(view, host):
    host = host.format(port=port_of(view))
    frame = request(view, "/frame.jpg", host)
    assert status_of(frame) == 200 and b"Content-Type: image/jpeg" in frame
    assert frame.split(b"\r\n\r\n", 1)[1].startswith(b"\xff\xd8")
    page = request(view, "/", host)
    assert status_of(page) == 200 and b'src="/stream.mjpg"' in page


def test_idle_sockets_are_closed_within_the_timeout(view):
    t0 = time.perf_counter()
    with (
        socket.create_connection(("127.0.0.1", port_of(view)), timeout=5) as silent,
        socket.create_connection(("127.0.0.1", port_of(view)), timeout=5) as half,
    ):
        half.sendall(b"GET /frame.jpg HTTP/1.1\r\n")  # headers never finished (slowloris)
        assert silent.recv(1024) == b"" and half.recv(1024) == b""
    assert time.perf_counter() - t0 < 0.5 + 1.5


def test_clients_beyond_the_cap_get_503_and_threads_stay_bounded(view):
    port = port_of(view)
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        time.sleep(0.3)  # the server has accepted them all
        crowd = [request(view, "/frame.jpg", f"127.0.0.1:{port}") for _ in range(5)]
        assert all(status_of(reply) == 503 for reply in crowd)
        assert b"too many viewers" in crowd[0]
        many = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        time.sleep(0.3)
        # 129 idle sockets once made 130 threads: now at most one per slot.
        assert threading.active_count() <= threads_before + 3
        for s in many:
            s.close()
    finally:
        for s in idle:
            s.close()
    assert wait_for(lambda: status_of(request(view, "/frame.jpg", "localhost")) == 200, 3)


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_is_served():
    v = BrowserView(ServeAddress("::1", 0), idle_timeout_s=0.5)
    v.open()
    try:
        v.write(OverlayFrame(np.zeros((HEIGHT, WIDTH, 3), np.uint8), None, 0.0, SourceState.LIVE))
        assert v.url.startswith("http://[::1]:")
        reply = request(v, "/frame.jpg", f"[::1]:{port_of(v)}", family=socket.AF_INET6)
        assert status_of(reply) == 200
        assert status_of(request(v, "/frame.jpg", "evil.example.com", family=socket.AF_INET6)) == 421
    finally:
        v.close()


def test_cli_accepts_a_bracketed_ipv6_address(tmp_path):
    cfg = StreamConfig(source="udp://127.0.0.1:1", model=Path("m.pt"), serve="[::1]:0")
    assert cfg.serve_address == ("::1", 0) and str(cfg.serve_address) == "[::1]:0"


@pytest.mark.parametrize("address", ["0.0.0.0:8080", "192.168.1.20:8080", "[::]:8080", "scanner.local:8080"])
def test_public_address_needs_serve_public(clip, checkpoint, address):
    result = stream(clip, "--model", checkpoint, "--serve", address)
    assert result.exit_code == 2, result.output
    assert "add --serve-public to allow it" in result.output and len(result.output.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="--serve-public"):
        StreamConfig(source=str(clip), model=checkpoint, serve=address)
    StreamConfig(source=str(clip), model=checkpoint, serve=address, serve_public=True)


def test_public_wildcard_bind_answers_ip_addresses_not_names():
    """Reachable at every address of the machine: any IP literal (a rebinding attack needs a name) and the
    machine's own names, nothing else."""
    allowed = allowed_hosts(ServeAddress("0.0.0.0", 8080), 8080)
    assert {"localhost:8080", "127.0.0.1", f"{socket.gethostname().lower()}:8080"} <= allowed
    assert is_ip_literal("192.168.1.20:8080", 8080) and is_ip_literal("[fe80::1]:8080", 8080)
    assert is_ip_literal("10.0.0.1", 8080)
    for hostile in (
        "10.0.0.1:9",
        "evil.example.com",
        "10.0.0.1.evil.com",
        "fe80::1",
        "[::1]x",
        "localhost:1@evil",
    ):
        assert not is_ip_literal(hostile, 8080)
    assert "evil.example.com:8080" not in allowed
