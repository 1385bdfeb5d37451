"""`usvid.configfile.load_config`: one reader for every typed config, refusing unknown keys and wrong types."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from usvid.configfile import config_from_mapping, load_config
from usvid.errors import ConfigError
from usvid.inference.export import ExportConfig
from usvid.inference.predict import PredictConfig
from usvid.synth.config import SynthConfig
from usvid.training.config import TrainConfig


@dataclass(frozen=True)
class Inner:
    size: int = 4
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size must be at least 1, got {self.size}")


@dataclass(frozen=True)
class Outer:
    name: str = "a"
    path: Path | None = None
    pair: tuple[float, float] = (0.0, 1.0)
    inner: Inner = field(default_factory=Inner)
    extra: Inner | None = None


def _write(tmp_path, data, name="c.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_values_are_converted_to_the_declared_types(tmp_path):
    cfg = load_config(Outer, _write(tmp_path, {"path": "x/y", "pair": [1, 2], "inner": {"scale": 3}}))
    assert cfg == Outer(path=Path("x/y"), pair=(1.0, 2.0), inner=Inner(scale=3.0))
    assert isinstance(cfg.pair, tuple) and isinstance(cfg.inner.scale, float)


def test_unknown_key_names_file_and_key_with_a_suggestion(tmp_path):
    path = _write(tmp_path, {"nmae": "b"})
    with pytest.raises(ConfigError, match=r"c\.json: unknown key 'nmae' .*Did you mean 'name'"):
        load_config(Outer, path)
    with pytest.raises(ConfigError, match=r"c\.json: unknown key 'inner\.sise'"):
        load_config(Outer, _write(tmp_path, {"inner": {"sise": 2}}))


@pytest.mark.parametrize(("data", "match"), [
    ({"name": 3}, "'name' must be a string, got 3"),
    ({"pair": [1]}, r"'pair' must be a list of 2 \(a number, a number\), got \[1\]"),
    ({"inner": {"size": "4"}}, "'inner.size' must be a whole number, got '4'"),
    ({"inner": {"size": True}}, "'inner.size' must be a whole number"),
    ({"inner": 5}, "'inner' must be a mapping of Inner options"),
])
def test_wrong_types_are_one_line_errors(tmp_path, data, match):
    with pytest.raises(ConfigError, match=match) as info:
        load_config(Outer, _write(tmp_path, data))
    assert str(info.value).startswith(str(tmp_path / "c.json")) and "\n" not in str(info.value)


def test_nested_parts_validate_themselves_and_lay_over_the_base(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.json: inner: size must be at least 1, got 0"):
        load_config(Outer, _write(tmp_path, {"inner": {"size": 0}}))
    base = Outer(inner=Inner(size=9, scale=2.0))
    assert load_config(Outer, _write(tmp_path, {"inner": {"scale": 5}}), base).inner == Inner(9, 5.0)
    assert load_config(Outer, _write(tmp_path, {"extra": {"size": 2}})).extra == Inner(size=2)
    assert load_config(Outer, _write(tmp_path, {"extra": None})).extra is None


def test_toml_and_bad_files(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('name = "t"\n[inner]\nsize = 2\n')
    assert load_config(Outer, toml) == Outer(name="t", inner=Inner(size=2))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON"):
        load_config(Outer, tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(Outer, _write(tmp_path, [1, 2]))


def test_the_project_configs_load(tmp_path):
    train = load_config(TrainConfig, _write(tmp_path, {"epochs": 3, "rrc_scale": [0.5, 1.0], "use_cam": None}))
    assert train.epochs == 3 and train.rrc_scale == (0.5, 1.0)
    with pytest.raises(ConfigError, match="'pseudo_source' must be one of 'self', 'stage1', 'ema', got 3"):
        load_config(TrainConfig, _write(tmp_path, {"pseudo_source": 3}))
    with pytest.raises(ConfigError, match=r"c\.json: unknown pseudo source 'teacher'"):
        load_config(TrainConfig, _write(tmp_path, {"pseudo_source": "teacher"}))
    export = load_config(ExportConfig, _write(tmp_path, {"format": "tensorrt", "tensorrt": {"max_batch": 4},
                                                         "onnx": {"opset": 19}}))
    assert (export.tensorrt.max_batch, export.tensorrt.fp16, export.onnx.opset) == (4, False, 19)
    int8 = load_config(ExportConfig, _write(tmp_path, {"int8": {"calibration": "store", "method": "entropy"}}))
    assert int8.int8.calibration == Path("store") and int8.precision == "int8"
    with pytest.raises(ConfigError, match=r"c\.json: tensorrt: --max-batch must be at least 1"):
        load_config(ExportConfig, _write(tmp_path, {"tensorrt": {"max_batch": 0}}))
    predict = load_config(PredictConfig, _write(tmp_path, {"region": {"roi": [1, 2, 30, 40], "frames": 8},
                                                           "batch_size": 2}))
    assert (predict.region.roi, predict.region.frames, predict.batch_size) == ((1, 2, 30, 40), 8, 2)
    with pytest.raises(ConfigError, match=r"c\.json: unknown key 'region\.roi_frames'"):
        load_config(PredictConfig, _write(tmp_path, {"region": {"roi_frames": 8}}))
    assert load_config(SynthConfig, _write(tmp_path, {"patients": 2, "fps": 25})).fps == 25.0
    assert config_from_mapping(SynthConfig, {"seed": 4}).seed == 4
