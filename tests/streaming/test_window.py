"""``usvid stream --window`` on a real display: the window shows the overlay and ``q`` stops the stream.

Needs a display and an OpenCV build with a GUI (``opencv-python``, not the ``-headless`` wheel usvid
installs), so it skips on servers and in CI. To run it on a machine without a screen::

    apt-get install xvfb xdotool x11-apps
    pip install --target /tmp/cvgui --no-deps opencv-python==<the installed opencv version>
    Xvfb :99 -screen 0 1280x800x24 &
    DISPLAY=:99 PYTHONPATH=/tmp/cvgui .venv/bin/python -m pytest tests/streaming/test_window.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from usvid.streaming.sinks import display_available

ok, why = display_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"--window needs a display: {why}")


def _window_ids(name: str) -> list[str]:
    found = subprocess.run(["xdotool", "search", "--name", name], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool drives the window")
def test_window_shows_the_overlay_and_q_stops(tiny_checkpoint, long_clip_path, tmp_path):
    stats = tmp_path / "stats.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "usvid", "stream", str(long_clip_path), "--model", str(tiny_checkpoint),
         "--window", "--realtime", "--stats", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        windows: list[str] = []
        while not windows and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            windows = _window_ids("usvid")
        assert windows, f"no usvid window appeared; output: {proc.stdout.read() if proc.poll() is not None else ''}"
        if shutil.which("xwd"):
            shot = tmp_path / "window.xwd"
            subprocess.run(["xwd", "-id", windows[0], "-out", str(shot)], check=True, timeout=10)
            assert shot.stat().st_size > 174 * 98 * 3  # a real picture of at least the clip's size
        # 'q' in the window stops the stream well before the 5-second clip ends.
        subprocess.run(["xdotool", "key", "--window", windows[0], "q"], check=True, timeout=10)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert stats.is_file() and "window closed by key" in out + stats.read_text()
