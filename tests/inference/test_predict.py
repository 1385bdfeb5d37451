"""``predict_videos`` and the ``usvid predict`` / ``usvid export`` commands on tiny real videos."""

from __future__ import annotations

import csv
import json
import shutil
from fractions import Fraction

import av
import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner
from usvid.cli.app import app

from tests.helpers.checkpoints import CLASSES
from usvid.errors import InputError
from usvid.inference import load_predictor
from usvid.inference.export_onnx import read_onnx_info
from usvid.inference.frames import FrameReader
from usvid.inference.overlay import overlay_layout
from usvid.inference.predict import PredictConfig, collect_sources, predict_videos
from usvid.video.testvideos import ultrasound_layout


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _decode(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="gray") for f in c.decode(s)]
        return frames, s.average_rate, s.codec_context.name, (s.codec_context.width, s.codec_context.height)


@pytest.fixture()
def video_dir(tiny_videos, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for p in tiny_videos.values():
        shutil.copy(p, src / p.name)
    (src / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x17" * 300)
    (src / "notes.txt").write_text("not a video")
    return src


def test_predict_writes_real_outputs(video_dir, tiny_onnx, tmp_path):
    out = tmp_path / "out"
    seen = []
    report = predict_videos(video_dir, tiny_onnx["lanet_tiny"], out, PredictConfig(batch_size=3),
                            progress=seen.append)
    assert [r.source.name for r in report.results] == ["ntsc", "odd"]
    # the odd clip is speckle moving inside static UI: its scan region is found and cropped, as extraction does
    scan = ultrasound_layout(99, 73).scan
    odd = report.results[1]
    assert odd.roi_method == "auto" and odd.roi is not None
    assert abs(odd.roi.x - scan[0]) <= 3 and abs(odd.roi.y - scan[1]) <= 3 and abs(odd.roi.w - scan[2]) <= 6
    assert [f.source.name for f in report.failures] == ["broken"]
    assert "broken.mp4" in report.failures[0].error
    assert seen[-1].frames_done == 7 and seen[-1].video == "odd"

    predictor = load_predictor(tiny_onnx["lanet_tiny"], device="cpu")
    for result, n, fps, size in ((report.results[0], 5, Fraction(30000, 1001), (96, 64)),
                                 (report.results[1], 7, Fraction(15), (99, 73))):
        lines = _jsonl(result.jsonl)
        assert [r["frame_index"] for r in lines] == list(range(n))
        stamps = [r["pts_seconds"] for r in lines]
        assert stamps[0] == 0.0 and np.allclose(np.diff(stamps), 1 / float(fps), atol=1e-3)
        # the JSONL holds what the predictor says about the decoded frames
        with FrameReader(result.source.path) as reader:
            frames = torch.cat([f for f, _ in reader.batches(16)])
        direct = predictor.predict(frames, result.roi)
        for row, probs, box, label in zip(lines, direct.probs, direct.boxes, direct.labels):
            assert row["label"] == label and row["video_id"] == result.source.name
            assert np.allclose([row["probs"][c] for c in CLASSES], probs.numpy(), atol=1e-5)
            assert row["box"] == (None if box is None else box.to_coco(2))
            assert (row["box_score"] is None) == (row["box"] is None)
        mean = direct.probs.double().mean(0)
        assert result.class_name == CLASSES[int(mean.argmax())]
        assert result.lesion_frames == sum(b is not None for b in direct.boxes)
        # overlay: decodable H.264, same frame count and rate, the frame under its label bar (even sides)
        decoded, rate, codec, (w, h) = _decode(result.overlay)
        assert codec == "h264" and len(decoded) == n and rate == fps
        assert (w, h) == overlay_layout(*size).size and w % 2 == 0 == h % 2
        assert overlay_layout(*size).frame_part(decoded[0]).std() > 5  # real picture content, not blank

    rows = list(csv.DictReader((out / "summary.csv").open()))
    by_video = {r["video"]: r for r in rows}
    assert by_video["odd"]["status"] == "ok" and by_video["odd"]["frames"] == "7"
    assert by_video["odd"]["roi_method"] == "auto" and int(by_video["odd"]["roi_w"]) == odd.roi.w
    assert abs(sum(float(by_video["odd"][f"p_{c}"]) for c in CLASSES) - 1) < 1e-4
    assert by_video["broken"]["status"] == "failed" and "broken.mp4" in by_video["broken"]["error"]
    assert json.loads((out / "predict_config.json").read_text())["batch_size"] == 3
    assert not list(out.glob(".*.tmp"))  # no half-written leftovers of the failed video
    assert not (out / "broken.jsonl").exists()


def test_manifest_source_and_smoothing(tiny_videos, tiny_checkpoints, tmp_path):
    root = tmp_path / "ds"
    (root / "v").mkdir(parents=True)
    shutil.copy(tiny_videos["odd"], root / "v" / "odd.mkv")
    (root / "manifest.csv").write_text("video_id,patient_id,path,label\nvid1,p1,v/odd.mkv,malignant\n")
    assert [s.name for s in collect_sources(root)] == ["vid1"]
    raw = predict_videos(root, tiny_checkpoints["lanet_tiny"], tmp_path / "raw", PredictConfig(overlay=False))
    smooth = predict_videos(root / "manifest.csv", tiny_checkpoints["lanet_tiny"], tmp_path / "smooth",
                            PredictConfig(overlay=False, smoothing=0.3))
    assert raw.results[0].overlay is None and not (tmp_path / "raw" / "vid1.overlay.mp4").exists()
    assert next(csv.DictReader((tmp_path / "raw" / "summary.csv").open()))["label"] == "malignant"
    a, b = _jsonl(raw.results[0].jsonl), _jsonl(smooth.results[0].jsonl)
    pa = np.array([[r["probs"][c] for c in CLASSES] for r in a])
    pb = np.array([[r["probs"][c] for c in CLASSES] for r in b])
    expected = [pa[0]]
    for p in pa[1:]:
        expected.append(0.3 * p + 0.7 * expected[-1])
    assert np.allclose(pb, np.array(expected), atol=1e-5)


def test_bad_sources_and_models(tiny_videos, tiny_onnx, tmp_path):
    with pytest.raises(InputError, match="missing_dir"):
        predict_videos(tmp_path / "missing_dir", tiny_onnx["lanet_tiny"], tmp_path / "o")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no videos"):
        predict_videos(empty, tiny_onnx["lanet_tiny"], tmp_path / "o")
    with pytest.raises(InputError, match="gone.onnx"):
        predict_videos(tiny_videos["odd"], tmp_path / "gone.onnx", tmp_path / "o")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"junk" * 40)
    with pytest.raises(InputError, match="corrupt.onnx"):
        predict_videos(tiny_videos["odd"], corrupt, tmp_path / "o")


def test_cli_predict_exit_codes(video_dir, tiny_onnx, tiny_videos, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["predict", str(video_dir), "--model", str(tiny_onnx["lanet_tiny"]),
                              "--out", str(tmp_path / "a")])
    assert bad.exit_code == 1, bad.output
    assert "broken.mp4" in bad.output and (tmp_path / "a" / "odd.overlay.mp4").is_file()
    good = runner.invoke(app, ["predict", str(tiny_videos["odd"]), "--model", str(tiny_onnx["resnet_tiny_cls"]),
                               "--out", str(tmp_path / "b"), "--roi", "5,5,80,60", "--no-overlay"])
    assert good.exit_code == 0, good.output
    assert all(r["box"] is None for r in _jsonl(tmp_path / "b" / "odd.jsonl"))  # classifier only: no boxes
    missing = runner.invoke(app, ["predict", str(tiny_videos["odd"]), "--model", str(tmp_path / "nope.pt"),
                                  "--out", str(tmp_path / "c")])
    assert missing.exit_code == 2 and "nope.pt" in missing.output and "Traceback" not in missing.output
    bad_roi = runner.invoke(app, ["predict", str(tiny_videos["odd"]), "--model", str(tiny_onnx["lanet_tiny"]),
                                  "--out", str(tmp_path / "d"), "--roi", "5,5"])
    assert bad_roi.exit_code == 2 and "--roi" in bad_roi.output


def test_cli_predict_coco_matches_the_records_and_survives_a_resume(video_dir, tiny_onnx, tmp_path):
    args = ["predict", str(video_dir), "--model", str(tiny_onnx["lanet_tiny"]), "--out", str(tmp_path / "a"),
            "--no-overlay", "--coco", str(tmp_path / "coco.json")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 1, first.output  # broken.mp4 fails; the other videos are in the results
    results = json.loads((tmp_path / "coco.json").read_text())
    records = [r for name in ("ntsc", "odd") for r in _jsonl(tmp_path / "a" / f"{name}.jsonl")]
    boxed = [r for r in records if r["box"] is not None]
    assert boxed, "the tiny model should find a lesion somewhere (frames without one: tests/streaming/test_records.py)"
    assert [(c["video_id"], c["frame_index"], c["bbox"], c["score"]) for c in results] == [
        (r["video_id"], r["frame_index"], r["box"], r["box_score"]) for r in boxed]
    assert all(c["category_id"] == 1 and c["image_id"] % 1_000_000 == c["frame_index"] for c in results)
    # sources broken, ntsc, odd: the failed first one keeps its number, so ntsc is video 2 and odd video 3
    assert {c["video_id"]: c["image_id"] // 1_000_000 for c in results} == {"ntsc": 2, "odd": 3}
    again = CliRunner().invoke(app, args)  # every video reused: the results are rebuilt from the JSONL files
    assert "already done 2" in again.output and json.loads((tmp_path / "coco.json").read_text()) == results


def test_cli_export_fp16_onnx(tiny_checkpoints, tmp_path):
    """One real export through the CLI, in fp16 (the graph TensorRT is built from)."""
    out = tmp_path / "half.onnx"
    result = CliRunner().invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--format", "onnx",
                                      "--out", str(out), "--fp16"])
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert onnx.TensorProto.FLOAT16 in {i.data_type for i in model.graph.initializer}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert read_onnx_info(out).class_names == CLASSES
    frames = torch.randint(0, 256, (4, 1, 75, 121), dtype=torch.uint8)
    ref = load_predictor(tiny_checkpoints["lanet_tiny"], device="cpu").predict(frames)
    got = load_predictor(out, device="cpu").predict(frames)
    torch.testing.assert_close(got.probs, ref.probs, atol=2e-2, rtol=0)
    torch.testing.assert_close(got.mask, ref.mask, atol=2e-2, rtol=0)


def test_cli_export_errors(tiny_checkpoints, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.onnx")])
    assert missing.exit_code == 2 and "nope.pt" in missing.output
    fmt = runner.invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--format", "tflite",
                              "--out", str(tmp_path / "x.onnx")])
    assert fmt.exit_code == 2 and "--format" in fmt.output
    if not torch.cuda.is_available():
        trt = runner.invoke(app, ["export", str(tiny_checkpoints["lanet_tiny"]), "--format", "tensorrt",
                                  "--out", str(tmp_path / "x.engine")])
        assert trt.exit_code == 2 and ("tensorrt" in trt.output or "GPU" in trt.output)
        assert "Traceback" not in trt.output


def test_smoothing_is_streams_source_time_ema(tiny_videos, tiny_checkpoints, tmp_path):
    import math

    model = tiny_checkpoints["lanet_tiny"]
    raw = predict_videos(tiny_videos["odd"], model, tmp_path / "raw", PredictConfig(overlay=False))
    tau = 0.1
    smooth = predict_videos(tiny_videos["odd"], model, tmp_path / "smooth",
                            PredictConfig(overlay=False, smoothing=True, smoothing_tau_s=tau))
    a, b = _jsonl(raw.results[0].jsonl), _jsonl(smooth.results[0].jsonl)
    pa = np.array([[r["probs"][c] for c in CLASSES] for r in a])
    pb = np.array([[r["probs"][c] for c in CLASSES] for r in b])
    stamps = [r["pts_seconds"] for r in a]
    expected = [pa[0]]
    for i in range(1, len(pa)):  # weight of a frame: 1 - exp(-dt / tau), dt in seconds of video time
        w = 1 - math.exp(-(stamps[i] - stamps[i - 1]) / tau)
        expected.append(w * pa[i] + (1 - w) * expected[-1])
    assert np.allclose(pb, np.array(expected), atol=1e-5)
    assert not np.allclose(pa, pb, atol=1e-4)  # it did smooth
    with pytest.raises(Exception, match="smoothing-tau"):
        PredictConfig(smoothing=True, smoothing_tau_s=0)
