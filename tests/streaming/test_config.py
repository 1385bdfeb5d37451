"""StreamConfig validation and the --serve address parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from usvid.errors import ConfigError
from usvid.streaming.config import StreamConfig, parse_serve_address
from usvid.video.roi import RegionConfig


def test_defaults_are_real_time_friendly():
    cfg = StreamConfig(source="udp://127.0.0.1:5000", model=Path("m.onnx"))
    # smoothing off, as in usvid predict: what is shown is the model's per-frame output unless asked
    assert cfg.smoothing is False and cfg.serve is None and cfg.open_timeout_s <= 5
    assert cfg.to_dict()["model"] == "m.onnx"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_frames": 0}, "--max-frames"),
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


@pytest.mark.parametrize(("kwargs", "match"), [({"roi": (0, 0, 0, 10)}, "--roi"), ({"roi": (1, 2, 3)}, "--roi"),
                                               ({"frames": 1}, "roi_frames")])
def test_bad_region(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RegionConfig(**kwargs)


def test_region_keeps_the_flat_keys_of_the_config_file():
    cfg = StreamConfig(source="clip.mp4", model=Path("m.pt"), region=RegionConfig((1, 2, 30, 40), frames=8))
    assert {k: cfg.to_dict()[k] for k in ("roi", "detect_roi", "roi_frames")} == {
        "roi": [1, 2, 30, 40], "detect_roi": True, "roi_frames": 8}


def test_serve_address():
    assert parse_serve_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_serve_address("8081") == ("127.0.0.1", 8081)
    assert parse_serve_address("[::1]:0") == ("::1", 0)
    assert parse_serve_address("127.0.0.1:0").is_loopback
    assert not parse_serve_address("0.0.0.0:8080").is_loopback


def test_threshold_reaches_the_predictor_and_is_checked(tiny_checkpoint, clip_path, monkeypatch):
    import usvid.inference.predictor as predictor_mod
    from usvid.streaming import run_stream

    seen = {}

    class Loaded(Exception):
        pass

    def fake_load(*args, **kwargs):
        seen.update(kwargs)
        raise Loaded

    monkeypatch.setattr(predictor_mod, "load_predictor", fake_load)
    with pytest.raises(Loaded):
        run_stream(StreamConfig(source=str(clip_path), model=tiny_checkpoint, threshold=0.7))
    assert seen["threshold"] == 0.7
    with pytest.raises(ConfigError, match="--threshold"):
        StreamConfig(source=str(clip_path), threshold=1.0)
    assert StreamConfig(source="x.mp4").device == "auto" and StreamConfig(source="x.mp4").smoothing is False
