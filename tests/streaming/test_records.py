"""One per-frame record: ``usvid predict`` and ``usvid stream`` write the same keys and values for the same
frames; ``--coco`` results match the JSONL records; boxes are ``[x, y, w, h]`` floats everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from usvid.boxes import Box
from usvid.inference.predict import PredictConfig, VideoSource, predict_video, write_coco
from usvid.inference.predictor import Prediction, Timing
from usvid.inference.records import CORE_KEYS, FrameRecord, coco_image_id, coco_results
from usvid.streaming import StreamConfig, StreamPipeline
from usvid.streaming.sinks import JsonlWriter, events_path
from usvid.video.roi import RegionConfig

from tests.helpers.streaming import FakePredictor


class ContentPredictor(FakePredictor):
    """Answers from the frame's own pixels, so a frame decoded differently would answer differently: P(malignant)
    is the mean grey level / 255, and about half the frames (by the parity of 100 x the mean) have no lesion."""

    threshold = 0.5

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    def predict(self, frames: torch.Tensor, roi=None) -> Prediction:
        means = frames.float().mean(dim=(1, 2, 3))
        p = (means / 255.0).clamp(0.05, 0.95)
        probs = torch.stack([1 - p, p], dim=1)
        h, w = frames.shape[-2:]
        boxes = [
            Box(w / 4 + 0.25, h / 4, w / 2, h / 3, float(p[i])) if int(means[i] * 100) % 2 == 0 else None
            for i in range(len(frames))
        ]
        return Prediction(probs, None, boxes, self.info.class_names, Timing(0.0, 0.1, 0.0))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _predict(clip: Path, out: Path) -> list[dict]:
    out.mkdir()
    config = PredictConfig(region=RegionConfig(detect=False), overlay=False, batch_size=4)
    result = predict_video(ContentPredictor(), VideoSource(clip.stem, clip), out, config)
    return _lines(result.jsonl)


def _stream(clip: Path, jsonl: Path) -> list[dict]:
    config = StreamConfig(source=str(clip), model=Path("unused.pt"), region=RegionConfig(detect=False), jsonl=jsonl)
    StreamPipeline(config, ContentPredictor()).run()  # the sinks the config names, as `usvid stream` builds them
    return _lines(jsonl)


def test_predict_and_stream_write_the_same_records(clip_path, tmp_path):
    offline = _predict(clip_path, tmp_path / "predict")
    live = _stream(clip_path, tmp_path / "stream.jsonl")
    assert len(offline) == len(live) == 30
    assert all(list(r) == list(CORE_KEYS) for r in offline)  # predict writes exactly the shared keys, in order
    assert all(list(r)[: len(CORE_KEYS)] == list(CORE_KEYS) for r in live)  # the stream adds keys after them
    assert [{k: r[k] for k in CORE_KEYS} for r in live] == offline
    with_box = [r for r in offline if r["box"] is not None]
    without = [r for r in offline if r["box"] is None]
    assert with_box and without, "the clip should give frames with and without a box"
    assert all(r["box_score"] is None for r in without)  # the same null rule in both (compared above)
    assert all(isinstance(v, float) for r in with_box for v in r["box"])
    x, y, w, h = with_box[0]["box"]
    assert (x, y, w, h) == (174 / 4 + 0.25, 98 / 4, 174 / 2, round(98 / 3, 2))  # [x, y, w, h], not corners


def test_stream_events_go_to_their_own_file(clip_path, tmp_path):
    jsonl = tmp_path / "s.jsonl"
    lines = _stream(clip_path, jsonl)
    assert all("event" not in r for r in lines)
    events = _lines(events_path(jsonl))
    assert events_path(jsonl).name == "s.events.jsonl"
    assert events[-1]["event"] == "stopped" and all("frame_index" not in e for e in events)


def test_smoothed_stream_keeps_the_models_own_values_as_extra_keys(clip_path, tmp_path):
    jsonl = tmp_path / "s.jsonl"
    config = StreamConfig(source=str(clip_path), model=Path("unused.pt"), region=RegionConfig(detect=False), smoothing=True)
    StreamPipeline(config, ContentPredictor(), sinks=[JsonlWriter(jsonl, "clip", raw=True)]).run()
    rows = _lines(jsonl)
    assert {"raw_probs", "raw_box", "raw_box_score"} <= set(rows[0])
    assert all((r["raw_box"] is None) == (r["raw_box_score"] is None) for r in rows)


def test_coco_results_match_the_jsonl_records(clip_path, tmp_path):
    records = _predict(clip_path, tmp_path / "predict")
    coco = tmp_path / "coco" / "results.json"
    write_coco(coco, [(1, tmp_path / "predict" / "clip.jsonl"), (2, tmp_path / "predict" / "clip.jsonl")])
    results = json.loads(coco.read_text())
    boxed = [r for r in records if r["box"] is not None]
    assert len(results) == 2 * len(boxed)
    for entry, record in zip(results, boxed + boxed, strict=True):
        assert set(entry) == {"image_id", "video_id", "frame_index", "category_id", "bbox", "score"}
        assert entry["bbox"] == record["box"] and entry["score"] == record["box_score"]
        assert entry["video_id"] == "clip" and entry["frame_index"] == record["frame_index"]
        assert entry["category_id"] == 1
    assert results[0]["image_id"] == 1_000_000 + boxed[0]["frame_index"]  # first video of the run
    assert results[len(boxed)]["image_id"] == 2_000_000 + boxed[0]["frame_index"]  # the second: no clash
    assert len({r["image_id"] for r in results}) == len(results)
    assert not list(coco.parent.glob(".*.tmp"))  # written atomically


def test_record_rules():
    names = ("benign", "malignant")
    rec = FrameRecord("v", 3, 0.2, names, [0.3, 0.7], Box(1, 2, 3, 4, 0.5), {"roi": None})
    assert rec.to_json() == {"video_id": "v", "frame_index": 3, "pts_seconds": 0.2, "label": "malignant",
                             "probs": {"benign": 0.3, "malignant": 0.7}, "box": [1.0, 2.0, 3.0, 4.0],
                             "box_score": 0.5, "roi": None}
    no_box = FrameRecord("v", 3, 0.2, names, [0.3, 0.7], None).to_json()
    assert no_box["box"] is None and no_box["box_score"] is None
    with pytest.raises(ValueError, match="replace record keys"):
        FrameRecord("v", 0, 0.0, names, [0.5, 0.5], None, {"box": 1})
    with pytest.raises(ValueError, match="million frames"):
        coco_image_id(1, 1_000_000)
    assert coco_results([(1, [no_box])]) == []
