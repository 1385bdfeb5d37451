"""``--config FILE`` on predict, stream, extract and synth: the file, typed flags over it, one-line errors.

Each command's library call is replaced by a recorder, so these check the config the CLI builds, not the work.
"""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from usvid.cli.app import app

runner = CliRunner()


class Called(Exception):
    pass


@pytest.fixture()
def seen(monkeypatch):
    import usvid.data.extract as extract_lib
    import usvid.inference.predict as predict_lib
    import usvid.streaming as streaming
    import usvid.synth as synth_lib

    calls = {}

    def recorder(name, index):
        def call(*args, **kwargs):
            calls[name] = args[index]
            raise Called  # stop before any work
        return call

    monkeypatch.setattr(predict_lib, "predict_videos", recorder("predict", 3))
    monkeypatch.setattr(streaming, "run_stream", recorder("stream", 0))
    monkeypatch.setattr(extract_lib, "extract", recorder("extract", 2))
    monkeypatch.setattr(synth_lib, "generate_dataset", recorder("synth", 1))
    return calls


# The command line of each command without its settings.
BASE = {
    "predict": ["predict", "scan.mp4", "--model", "m.onnx", "--out", "o"],
    "stream": ["stream", "scan.mp4", "--model", "m.onnx"],
    "extract": ["extract", "data", "store"],
    "synth": ["synth", "out"],
}


def _config(seen, tmp_path, command, settings, *flags, base=None):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    result = runner.invoke(app, [*(BASE[command] if base is None else base), "--config", str(path), *flags])
    assert isinstance(result.exception, Called), result.output
    return seen.pop(command)


@pytest.mark.parametrize("command", ["predict", "stream"])
def test_predict_and_stream_take_the_file_and_typed_flags_go_over_it(seen, tmp_path, command):
    settings = {"threshold": 0.7, "device": "cpu", "smoothing": True,
                "region": {"roi": [4, 6, 60, 40], "frames": 5}}
    config = _config(seen, tmp_path, command, settings)
    assert (config.threshold, config.device, config.smoothing) == (0.7, "cpu", True)
    assert (config.region.roi, config.region.frames, config.region.detect) == ((4, 6, 60, 40), 5, True)
    # Typed, even at the flag's default (0.5, --no-smoothing), the flag wins; the rest keep the file's.
    flags = ("--threshold", "0.5", "--no-smoothing", "--roi", "1,2,30,20")
    config = _config(seen, tmp_path, command, settings, *flags)
    assert (config.threshold, config.smoothing, config.device) == (0.5, False, "cpu")
    assert (config.region.roi, config.region.frames) == ((1, 2, 30, 20), 5)
    config = _config(seen, tmp_path, command, {"region": {"roi": None, "frames": 9}}, "--full-frame")
    assert (config.region.detect, config.region.frames) == (False, 9)


def test_predict_takes_every_predict_config_field(seen, tmp_path):
    config = _config(seen, tmp_path, "predict", {"batch_size": 3, "box_min_score": 0.4, "overlay": False})
    assert (config.batch_size, config.box_min_score, config.overlay) == (3, 0.4, False)
    assert _config(seen, tmp_path, "predict", {"batch_size": 3}, "--batch-size", "8").batch_size == 8


def test_stream_source_and_model_may_come_from_the_file(seen, tmp_path):
    settings = {"source": "feed.mp4", "model": "other.onnx", "max_frames": 10}
    config = _config(seen, tmp_path, "stream", settings, base=["stream"])
    assert (config.source, str(config.model), config.max_frames) == ("feed.mp4", "other.onnx", 10)
    config = _config(seen, tmp_path, "stream", settings, "--max-frames", "3")  # SOURCE and --model typed
    assert (config.source, config.model, config.max_frames) == ("scan.mp4", "m.onnx", 3)
    path = tmp_path / "no_source.json"
    path.write_text(json.dumps({"max_frames": 10}))
    result = runner.invoke(app, ["stream", "--model", "m.onnx", "--config", str(path)])
    assert result.exit_code == 2 and "missing SOURCE" in result.output and "'source'" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_extract_takes_the_file_and_typed_flags_go_over_it(seen, tmp_path):
    settings = {"size": 64, "seed": 3, "split": {"train": 80, "val": 10, "test": 10},
                "region": {"roi": [40, 60, 560, 400]}, "classes": ["benign", "malignant"]}
    config = _config(seen, tmp_path, "extract", settings)
    assert (config.size, config.seed, config.split.as_tuple()) == (64, 3, (0.8, 0.1, 0.1))
    assert (config.region.roi, config.classes) == ((40, 60, 560, 400), ("benign", "malignant"))
    flags = ("--size", "256", "--split", "60,20,20", "--roi", "1,2,50,40")
    config = _config(seen, tmp_path, "extract", settings, *flags)
    assert (config.size, config.seed, config.split.as_tuple()) == (256, 3, (0.6, 0.2, 0.2))
    assert config.region.roi == (1, 2, 50, 40)
    toml = tmp_path / "extract.toml"
    toml.write_text('size = 96\n[region]\nroi = [1, 2, 50, 40]\n')
    result = runner.invoke(app, [*BASE["extract"], "--config", str(toml)])
    assert isinstance(result.exception, Called), result.output
    assert (seen["extract"].size, seen["extract"].region.roi) == (96, (1, 2, 50, 40))


def test_synth_takes_the_file_and_typed_flags_go_over_it(seen, tmp_path):
    settings = {"patients": 3, "width": 320, "height": 240, "sector_fraction": 0.5, "seed": 4}
    config = _config(seen, tmp_path, "synth", settings)
    assert (config.patients, config.width, config.height) == (3, 320, 240)
    assert (config.sector_fraction, config.seed) == (0.5, 4)
    config = _config(seen, tmp_path, "synth", settings, "--size", "854x500", "--patients", "8")
    assert (config.patients, config.width, config.height, config.seed) == (8, 854, 500, 4)


REGION_ERRORS = [
    ({"treshold": 0.7}, "unknown key 'treshold'"),
    ({"region": {"roii": [1, 2, 3, 4]}}, "unknown key 'region.roii'"),
    ({"threshold": "high"}, "'threshold' must be a number"),
    ({"region": {"roi": "1,2,3,4"}}, "'region.roi' must be"),
]
ERRORS = {
    "predict": REGION_ERRORS,
    "stream": REGION_ERRORS,
    "extract": [({"sizes": 64}, "unknown key 'sizes'"), ({"region": {"roii": [1, 2, 3, 4]}}, "'region.roii'"),
                ({"seed": "one"}, "'seed' must be a whole number"),
                ({"split": {"train": "most"}}, "'split.train'")],
    "synth": [({"patient": 3}, "unknown key 'patient'"),
              ({"width": 320.5}, "'width' must be a whole number")],
}


@pytest.mark.parametrize(("command", "settings", "message"),
                         [(c, s, m) for c, cases in ERRORS.items() for s, m in cases])
def test_bad_file_is_one_line_naming_the_file_and_key_exit_2(seen, tmp_path, command, settings, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(settings))
    result = runner.invoke(app, [*BASE[command], "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "bad.json" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    assert command not in seen


@pytest.mark.parametrize("command", ["predict", "stream", "extract", "synth"])
def test_missing_or_unreadable_file_is_one_line_exit_2(seen, tmp_path, command):
    for path, message in ((tmp_path / "nope.toml", "does not exist"), (tmp_path, "is not a file")):
        result = runner.invoke(app, [*BASE[command], "--config", str(path)])
        assert result.exit_code == 2 and message in result.output, result.output
        assert str(path) in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    result = runner.invoke(app, [*BASE[command], "--config", str(binary)])
    assert result.exit_code == 2 and "binary.json" in result.output and "Traceback" not in result.output
    assert command not in seen


def _declared(command):
    from usvid.cli import export, extract, predict, stream, synth
    from usvid.data.extract import ExtractConfig
    from usvid.inference.export import ExportConfig
    from usvid.inference.predict import PredictConfig
    from usvid.streaming import StreamConfig
    from usvid.synth import SynthConfig

    return {"predict": (predict.OPTIONS, PredictConfig()),
            "stream": (stream.OPTIONS, StreamConfig(source="x")),
            "extract": (extract.OPTIONS, ExtractConfig()), "synth": (synth.OPTIONS, SynthConfig()),
            "export": (export.OPTIONS, ExportConfig())}[command]


def _at(config, key):
    for part in key.split("."):
        config = getattr(config, part)
    return config


@pytest.mark.parametrize("command", ["predict", "stream", "extract", "synth", "export"])
def test_each_declared_flag_defaults_to_its_config_default(command):
    # A flag not typed takes the config's default, not its own: the two must agree, or a command without
    # --config would quietly change.
    options, default = _declared(command)
    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    assert set(options) <= set(params), set(options) - set(params)
    for name, option in options.items():
        if name == "source":
            continue  # stream's SOURCE: required unless the file gives it, no default on either side
        keys, parse = (option, None) if isinstance(option, str) else option
        flag_default = params[name].default
        keys = (keys,) if isinstance(keys, str) else keys
        if flag_default is None:
            expected = (None,) * len(keys)
        else:
            value = flag_default if parse is None else parse(flag_default)
            expected = (value,) if len(keys) == 1 else value
        assert tuple(_at(default, k) for k in keys) == tuple(expected), (command, name)
