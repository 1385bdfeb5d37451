"""StreamConfig validation and the --serve address parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from usvid.errors import ConfigError
from usvid.streaming.config import StreamConfig, parse_serve_address


def test_defaults_are_real_time_friendly():
    cfg = StreamConfig(source="udp://127.0.0.1:5000", model=Path("m.onnx"))
    assert cfg.smoothing is True and cfg.serve is None and cfg.open_timeout_s <= 5
    assert cfg.to_dict()["model"] == "m.onnx"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_frames": 0}, "--max-frames"),
        ({"roi": (0, 0, 0, 10)}, "--roi"),
        ({"serve": "127.0.0.1:http"}, "--serve"),
        ({"serve": "127.0.0.1:70000"}, "--serve"),
        ({"fps": -1.0}, "fps"),
        ({"reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_max_s"),
        ({"source": " "}, "source is empty"),
    ],
)
def test_bad_values(kwargs, match):
    base = {"source": "clip.mp4", "model": Path("m.pt")}
    with pytest.raises(ConfigError, match=match):
        StreamConfig(**{**base, **kwargs})


def test_serve_address():
    assert parse_serve_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_serve_address("8081") == ("127.0.0.1", 8081)
    assert parse_serve_address("[::1]:0") == ("::1", 0)
    assert parse_serve_address("127.0.0.1:0").is_loopback
    assert not parse_serve_address("0.0.0.0:8080").is_loopback
