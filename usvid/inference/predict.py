"""Offline prediction over recorded scans: ``usvid predict SRC --model PATH --out DIR``.

For every video, frames are decoded as grey ``uint8`` (the same conversion extraction uses), run through
one :class:`~usvid.inference.predictor.Predictor` in batches, and written as

- ``DIR/<video>.jsonl``: one :class:`~usvid.inference.records.FrameRecord` per frame (the README's
  "Per-frame records", the same keys ``usvid stream --jsonl`` writes; ``pts_seconds`` from the first frame);
- ``DIR/<video>.overlay.mp4``: H.264 at the source's average frame rate: the decoded grey frame at its
  original size, blanked outside the scan region (all of it when no region was found; ``keep_ui`` shows
  the whole frame), under a label bar (:mod:`usvid.inference.overlay`; sides padded to even numbers, which
  4:2:0 H.264 requires);
- ``DIR/summary.csv``: one row per video: the video-level class (argmax of the mean frame probabilities),
  mean probabilities, frames with a lesion, the scan region used, and the error for videos that failed;
- ``DIR/predict_config.json``: the resolved settings and model;
- with ``coco``: COCO detection results over every video (:func:`~usvid.inference.records.coco_results`),
  built from the JSONL files, so videos an earlier run finished are included.

The network sees each frame as it saw training frames from the frame store: the scan region (detected per
video from its first frames with the video layer's detector, exactly as ``usvid extract`` does, or fixed
with ``roi``; the whole frame when nothing moves) cropped, blanked outside the scan and letterboxed
(:mod:`usvid.inference.geometry`). Boxes are always reported in full-frame pixels. Temporal smoothing (EMA
of probabilities and boxes in source time, as ``usvid stream`` does) is off by default in both, so per-frame
results stay the model's own.

A video that cannot be read is reported and skipped; the others still run. Every output file is written
atomically, so a failed or interrupted video leaves nothing half-written, and a re-run resumes: a video is
skipped when its outputs are still the ones a done-record (``DIR/.usvid-predict/<video>.json``) lists and
the record matches the source file (size, modification time, a hash of its first and last 64 KiB: the
signature extraction uses), the model file and the settings that change results; otherwise it is predicted
again. A re-run first removes the temporaries a killed run left (``.<output name>.*.tmp``, only for its own
output names). No output may be an input (the source, a source video, the model): that is refused before
any work.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, fields
from pathlib import Path

import av
import numpy as np

from usvid.boxes import Box
from usvid.data.manifest import MANIFEST_NAME
from usvid.data.sources import UNKNOWN_LABEL, file_signature, list_sources
from usvid.errors import ConfigError, InputError, ProcessingError, UsvidError
from usvid.inference.frames import FrameReader
from usvid.inference.overlay import (
    BOX_MIN_SCORE,
    UNCERTAIN_BELOW,
    OverlayStyle,
    lesion_contours,
    overlay_layout,
    render_prediction,
)
from usvid.inference.predictor import BasePredictor, NonFiniteOutputError, load_predictor
from usvid.inference.records import FrameRecord, coco_results
from usvid.inference.smoothing import DEFAULT_TAU_S, TemporalSmoother
from usvid.io import atomic_path, write_json_atomic, write_text_atomic
from usvid.outputs import check_output_dir, check_output_file, check_path_text, refuse_inputs
from usvid.shipped import predictor_role, resolve_model
from usvid.video.roi import RegionConfig, ScanRegion
from usvid.video.writer import VideoWriter

log = logging.getLogger(__name__)

SUMMARY_NAME = "summary.csv"
CONFIG_NAME = "predict_config.json"
RECORDS_DIR = ".usvid-predict"
RECORD_FORMAT = "usvid-predict-record"
# Settings that change speed but not results: changing them does not redo finished videos.
_SPEED_ONLY = ("batch_size", "threads", "compile")


@dataclass(frozen=True)
class PredictConfig:
    """Settings of :func:`predict_videos`.

    ``region.roi`` fixes the scan region for every video; otherwise ``region.detect`` finds it per video from
    the first ``region.frames`` frames (as ``usvid extract`` does), or the whole frame is used.
    ``smoothing`` turns on the temporal smoothing ``usvid stream`` uses (EMA of probabilities and boxes with
    time constant ``smoothing_tau_s`` seconds of video time; off by default, as in ``usvid stream``).
    ``smoothing_alpha`` is the older per-frame EMA (weight of the newest frame in (0, 1], ``--smooth``);
    ``smoothing=0.3`` as given by older code means ``smoothing_alpha=0.3``.
    ``precision``/``compile`` apply to checkpoints (torch), ``threads`` to onnxruntime.
    ``keep_ui``, ``uncertain_below`` and ``box_min_score`` set how overlays are drawn
    (:class:`usvid.inference.overlay.OverlayStyle`): by default only the scan region is shown.
    """

    backend: str = "auto"
    device: str = "auto"
    batch_size: int = 8
    region: RegionConfig = field(default_factory=RegionConfig)
    smoothing: bool = False
    smoothing_tau_s: float = DEFAULT_TAU_S
    smoothing_alpha: float | None = None
    #: None: the model's own (chosen on its validation split when it was trained), else 0.5.
    threshold: float | None = None
    overlay: bool = True
    precision: str = "auto"
    compile: bool = False
    threads: int | None = None
    keep_ui: bool = False
    uncertain_below: float = UNCERTAIN_BELOW
    box_min_score: float = BOX_MIN_SCORE

    def __post_init__(self) -> None:
        self.overlay_style  # noqa: B018 - checks the thresholds before any work
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.smoothing is None:  # older code's "off"
            object.__setattr__(self, "smoothing", False)
        elif not isinstance(self.smoothing, bool):  # older code's per-frame weight
            object.__setattr__(self, "smoothing_alpha", float(self.smoothing))
            object.__setattr__(self, "smoothing", True)
        if self.smoothing_alpha is not None:
            if not 0.0 < self.smoothing_alpha <= 1.0:
                raise ConfigError(f"--smooth must lie in (0, 1] (weight of the newest frame), got "
                                  f"{self.smoothing_alpha}")
            object.__setattr__(self, "smoothing", True)
        if not self.smoothing_tau_s > 0:
            raise ConfigError(f"--smoothing-tau must be positive (seconds), got {self.smoothing_tau_s}")


    @property
    def overlay_style(self) -> OverlayStyle:
        return OverlayStyle(self.keep_ui, self.uncertain_below, self.box_min_score)


@dataclass(frozen=True)
class VideoSource:
    """One video to predict: ``name`` is the output file stem; ``label`` comes from a manifest, if any."""

    name: str
    path: Path
    label: str | None = None


@dataclass(frozen=True)
class VideoResult:
    """What :func:`predict_video` wrote for one video, with its video-level class."""

    source: VideoSource
    frames: int
    fps: float
    width: int
    height: int
    class_name: str
    mean_probs: tuple[float, ...]
    lesion_frames: int
    roi: ScanRegion | None
    roi_method: str
    jsonl: Path
    overlay: Path | None
    seconds: float
    reused: bool = False  # finished by an earlier run and kept (see the module docstring)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class VideoFailure:
    source: VideoSource
    error: str


@dataclass(frozen=True)
class PredictProgress:
    """Reported after every batch: ``frames_total`` is ``None`` when the container does not say."""

    video: str
    video_index: int
    num_videos: int
    frames_done: int
    frames_total: int | None


@dataclass
class PredictReport:
    out: Path
    backend: str
    class_names: tuple[str, ...]
    results: list[VideoResult] = field(default_factory=list)
    failures: list[VideoFailure] = field(default_factory=list)
    #: What ``--backend auto`` measured and chose on the CPU, in words; None when the backend was named.
    selection: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def predicted(self) -> int:
        return sum(not r.reused for r in self.results)

    @property
    def already_done(self) -> int:
        return sum(r.reused for r in self.results)

    @property
    def summary_csv(self) -> Path:
        return self.out / SUMMARY_NAME


ProgressFn = Callable[[PredictProgress], None]


# ---------------------------------------------------------------------------------------------- sources


def collect_sources(src: str | Path) -> list[VideoSource]:
    """Videos named by ``src``, as :func:`usvid.data.sources.list_sources` reads it (the list ``usvid extract``
    sees): a video file or DICOM cine, a folder of frame images, a folder of videos (searched below), a glob
    pattern, a dataset manifest (``manifest.csv`` or its folder) or a BUSI / BUS-BRA folder.

    Raises:
        InputError: ``src`` holds no videos, or a manifest row or annotation is broken.
    """
    listing = list_sources(src)
    if listing.failures:
        problems = "; ".join(str(f) for f in listing.failures[:5])
        more = f" (and {len(listing.failures) - 5} more)" if len(listing.failures) > 5 else ""
        raise InputError(f"{src}: cannot be predicted as listed: {problems}{more}")
    return [VideoSource(item.video_id, item.path, None if item.label == UNKNOWN_LABEL else item.label)
            for item in listing.items]


# ------------------------------------------------------------------------------------------ outputs, resume


def _output_names(name: str, overlay: bool) -> list[str]:
    return [f"{name}.jsonl", *([f"{name}.overlay.mp4"] if overlay else [])]


def refuse_outputs_that_are_inputs(
    out: Path, sources: list[VideoSource], inputs: list[Path], overlay: bool
) -> None:
    """Refuse a run where an output file would replace an input (a source video, the model, the manifest)."""
    taken = {p.resolve(): p for p in [*inputs, *(s.path for s in sources)]}
    outputs = [out / SUMMARY_NAME, out / CONFIG_NAME]
    outputs += [out / n for s in sources for n in _output_names(s.name, overlay)]
    for path in outputs:
        if path.resolve() in taken:
            refuse_inputs(path, [taken[path.resolve()]], "--out")


def clean_temporaries(out: Path, sources: list[VideoSource]) -> int:
    """Remove the temporaries a killed run left for this run's own outputs; return how many."""
    names = [SUMMARY_NAME, CONFIG_NAME, *(n for s in sources for n in _output_names(s.name, True))]
    records = [f"{s.name}.json" for s in sources]
    removed = 0
    for folder, own in ((out, names), (out / RECORDS_DIR, records)):
        if not folder.is_dir():
            continue
        # atomic_path names them ".<name>.<random>.tmp"; nothing else is touched.
        pattern = re.compile(rf"^\.(?:{'|'.join(re.escape(n) for n in own)})\.[a-z0-9_]+\.tmp$")
        for path in folder.iterdir():
            if pattern.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d temporary files an interrupted run left in %s", removed, out)
    return removed


def _stat(path: Path) -> dict:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _record_path(out: Path, name: str) -> Path:
    return out / RECORDS_DIR / f"{name}.json"


def _selection_json(predictor) -> dict:
    """``{"auto_selection": ...}`` for the run's config when ``--backend auto`` chose the path, else {}."""
    return {} if predictor.selection is None else {"auto_selection": predictor.selection.to_json()}


def _run_key(model_path: Path, backend: str, config: PredictConfig) -> dict:
    """What decides a video's results besides its source: the model file and the settings."""
    settings = {k: v for k, v in _settings(config).items() if k not in _SPEED_ONLY}
    return {
        "model": str(model_path.resolve()),
        "model_file": file_signature(model_path),
        "backend": backend,
        **settings,
    }


def _save_record(out: Path, result: VideoResult, key: dict) -> None:
    outputs = [result.jsonl, *([result.overlay] if result.overlay else [])]
    roi = result.roi
    write_json_atomic(
        _record_path(out, result.source.name),
        {
            "format": RECORD_FORMAT,
            "version": 1,
            "source": str(result.source.path),
            "source_file": file_signature(result.source.path),
            "run": key,
            "outputs": [_stat(p) for p in outputs],
            "result": {
                "frames": result.frames,
                "fps": result.fps,
                "width": result.width,
                "height": result.height,
                "class": result.class_name,
                "mean_probs": list(result.mean_probs),
                "lesion_frames": result.lesion_frames,
                "roi": None if roi is None else [roi.x, roi.y, roi.w, roi.h],
                "roi_method": result.roi_method,
                "seconds": result.seconds,
            },
        },
    )


def finished_result(out: Path, source: VideoSource, key: dict, overlay: bool) -> VideoResult | None:
    """The earlier run's result for ``source`` when it is finished and still valid, else None (redo it)."""
    try:
        record = json.loads(_record_path(out, source.name).read_text())
        if (
            record.get("format") != RECORD_FORMAT
            or record["source"] != str(source.path)
            or record["run"] != key
            or record["source_file"] != file_signature(source.path)
        ):
            return None
        wanted = _output_names(source.name, overlay)
        if [o["name"] for o in record["outputs"]] != wanted:
            return None
        if any(_stat(out / o["name"]) != o for o in record["outputs"]):
            return None  # an output was removed, replaced or edited since
        r = record["result"]
        return VideoResult(
            source,
            int(r["frames"]),
            float(r["fps"]),
            int(r["width"]),
            int(r["height"]),
            r["class"],
            tuple(float(p) for p in r["mean_probs"]),
            int(r["lesion_frames"]),
            None if r["roi"] is None else ScanRegion(*r["roi"], method=r["roi_method"]),
            r["roi_method"],
            out / wanted[0],
            out / wanted[1] if overlay else None,
            float(r["seconds"]),
            reused=True,
        )
    except (OSError, ValueError, KeyError, TypeError, UsvidError):
        return None


# ---------------------------------------------------------------------------------------------- prediction


def scan_region(source: VideoSource, config: PredictConfig, width: int, height: int) -> tuple[ScanRegion | None, str]:
    """The region the network sees in ``width x height`` frames, and how it was found (``fixed``, ``auto``, ``full``).

    ``auto`` feeds extraction's own detector (:func:`usvid.video.roi.scan_region_of`: the same decoded
    limited-range luma, the same :class:`~usvid.video.roi.RegionDetector`) the first ``config.region.frames``
    frames: statistics on converted grey frames drew a different region (on one clinical clip it took in the
    ECG strip below the scan). When it finds no moving scan region (a still clip, a single image) the
    whole frame is used.
    """
    region = config.region
    if region.roi is not None:
        return region.fixed(width, height, where=f"--roi for {source.path.name}:"), "fixed"
    if not region.detect:
        return None, "full"
    from usvid.video.roi import scan_region_of

    try:
        found = scan_region_of(source.path, roi_frames=region.frames)
    except ProcessingError as err:
        log.warning("%s; using the whole frame", err)
        return None, "full"
    if found.method == "full":
        return None, "full"
    return found, "auto"


class _Outputs:
    """The JSONL and overlay files of one video, written to temporary names and renamed only on success."""

    def __init__(self, stack: ExitStack, out: Path, name: str, clip, overlay: bool) -> None:
        self.jsonl_path = out / f"{name}.jsonl"
        self.overlay_path = out / f"{name}.overlay.mp4" if overlay else None
        self.lines = stack.enter_context(open(stack.enter_context(atomic_path(self.jsonl_path)), "w"))
        self.writer = None
        if self.overlay_path is not None:
            # The overlay canvas: the frame under its label bar (even sides).
            width, height = overlay_layout(clip.width, clip.height).size
            self.writer = stack.enter_context(VideoWriter(self.overlay_path, clip.fps, width, height))


def predict_video(
    predictor: BasePredictor,
    source: VideoSource,
    out: Path,
    config: PredictConfig = PredictConfig(),
    on_batch: Callable[[int, int | None], None] | None = None,
) -> VideoResult:
    """Predict every frame of one video and write its JSONL and overlay video into ``out``.

    ``on_batch(frames_done, frames_total)`` is called after each batch.
    """
    start = time.perf_counter()
    names = predictor.class_names
    smoother = _smoother(config)
    style = config.overlay_style
    sum_probs = np.zeros(len(names), dtype=np.float64)
    count = lesion = 0
    with ExitStack() as stack:
        reader = stack.enter_context(FrameReader(source.path))
        clip = reader.info
        roi, roi_method = scan_region(source, config, clip.width, clip.height)
        files = _Outputs(stack, out, source.name, clip, config.overlay)
        for frames, stamps in reader.batches(config.batch_size):
            pred = predictor.predict(frames, roi)
            for i in range(len(frames)):
                probs, box = pred.probs[i].float().numpy(), pred.boxes[i]
                if smoother is not None:
                    # the older per-frame EMA counts frames; the source-time one reads the frame's timestamp
                    t = count if config.smoothing_alpha is not None else stamps[i]
                    probs, box = smoother.update(t, probs, box)
                record = FrameRecord(source.name, count, stamps[i], names, probs, box)
                files.lines.write(json.dumps(record.to_json()) + "\n")
                if files.writer is not None:
                    image = _overlay(predictor, frames[i, 0].numpy(), pred, i, probs, box, roi, style)
                    files.writer.write(image)
                sum_probs += probs
                lesion += box is not None
                count += 1
            if on_batch is not None:
                on_batch(count, clip.num_frames)
        if count == 0:
            raise ProcessingError(f"{source.path}: no frames could be decoded")
    mean = (sum_probs / count).tolist()
    return VideoResult(source, count, float(clip.fps), clip.width, clip.height, names[int(np.argmax(mean))],
                       tuple(mean), lesion, roi, roi_method, files.jsonl_path, files.overlay_path,
                       time.perf_counter() - start)


def _smoother(config: PredictConfig) -> TemporalSmoother | None:
    if not config.smoothing:
        return None
    if config.smoothing_alpha is not None:
        return TemporalSmoother.per_frame(config.smoothing_alpha)
    return TemporalSmoother(config.smoothing_tau_s)  # the one usvid stream uses


def _overlay(predictor: BasePredictor, grey: np.ndarray, pred, i: int, probs: np.ndarray,
             box: Box | None, roi: ScanRegion | None, style: OverlayStyle) -> np.ndarray:
    """The overlay canvas of frame ``i`` of a batch; ``grey`` ``(H, W)`` uint8. The mask outline is the
    model's own for this frame (not smoothed), at the threshold the box used."""
    contours = ()
    if box is not None and pred.mask is not None:
        contours = lesion_contours(pred.mask[i], (grey.shape[1], grey.shape[0]), roi, predictor.threshold,
                                   input_size=predictor.info.preprocess.size)
    return render_prediction(grey, predictor.class_names, probs, box, roi=roi, style=style, contours=contours)


def _summary_csv(report: PredictReport) -> str:
    names = report.class_names
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["video", "source", "status", "frames", "fps", "class", *(f"p_{n}" for n in names),
                "lesion_frames", "lesion_fraction", "roi_method", "roi_x", "roi_y", "roi_w", "roi_h", "label", "error"])
    for r in report.results:
        w.writerow([r.source.name, str(r.source.path), "ok", r.frames, f"{r.fps:.6g}", r.class_name,
                    *(f"{p:.6f}" for p in r.mean_probs), r.lesion_frames, f"{r.lesion_frames / r.frames:.6f}",
                    r.roi_method, *((r.roi.x, r.roi.y, r.roi.w, r.roi.h) if r.roi else ("", "", "", "")),
                    r.source.label or "", ""])
    for f in report.failures:
        w.writerow([f.source.name, str(f.source.path), "failed", "", "", "", *("" for _ in names), "", "",
                    "", "", "", "", "", f.source.label or "", f.error])
    return buf.getvalue()


def _settings(config: PredictConfig) -> dict:
    """The resolved settings, flat: ``predict_config.json`` and the done-records have always had ``roi``,
    ``detect_roi`` and ``roi_frames`` at the top level (records of earlier runs still match)."""
    out = {}
    for f in fields(config):
        out.update(config.region.to_flat() if f.name == "region" else {f.name: getattr(config, f.name)})
    return out


def predict_videos(
    src: str | Path,
    model_path: str | Path,
    out: str | Path,
    config: PredictConfig = PredictConfig(),
    progress: ProgressFn | None = None,
    coco: str | Path | None = None,
) -> PredictReport:
    """Predict every video of ``src`` with the model at ``model_path``; write results into ``out``.

    Args:
        src: a video file, a folder of videos, a glob pattern or a dataset manifest (as :func:`collect_sources`).
        model_path: a checkpoint (``.pt``), an ``.onnx`` file or a TensorRT engine.
        out: output folder (created).
        config: backend, batch size, ROI, smoothing, overlay settings.
        progress: called with a :class:`PredictProgress` after every batch.
        coco: also write COCO detection results of every finished video to this JSON file (the README's
            "Per-frame records" defines its ``image_id``).
    Returns:
        A :class:`PredictReport`; videos that failed are in ``report.failures`` (the others still ran).
    Raises:
        InputError: when ``src`` or the model cannot be used at all, or ``out`` cannot be written or would
            replace an input (checked before any work).
    """
    src = check_path_text(src, "SRC")
    # A shipped model's name becomes its verified file here, so the done-records fingerprint that file.
    model_path = resolve_model(check_path_text(model_path, "--model"), predictor_role(config.backend))
    out = check_output_dir(out, inputs=[src, model_path], option="--out")
    sources = collect_sources(src)
    inputs = [src, model_path, *([src / MANIFEST_NAME] if src.is_dir() else [])]
    refuse_outputs_that_are_inputs(out, sources, inputs, config.overlay)
    if coco is not None:
        coco = check_output_file(coco, inputs=[*inputs, *(s.path for s in sources)], option="--coco")
    predictor = load_predictor(model_path, config.backend, config.device, precision=config.precision,
                               compile=config.compile, threads=config.threads, threshold=config.threshold)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{out}: cannot create the output folder ({err.strerror})") from None
    clean_temporaries(out, sources)
    write_json_atomic(out / CONFIG_NAME, {"src": str(src), "model": str(model_path), "backend": predictor.backend,
                                          "class_names": list(predictor.class_names), **_settings(config),
                                          "model_info": predictor.info.to_metadata(),
                                          # what boxes were drawn at: --threshold, else the model's own
                                          "mask_threshold": predictor.threshold,
                                          **_selection_json(predictor)})
    key = _run_key(model_path, predictor.backend, config)
    report = PredictReport(out, predictor.backend, predictor.class_names,
                           selection=None if predictor.selection is None else predictor.selection.describe())
    for index, source in enumerate(sources):
        def on_batch(done: int, total: int | None, _name=source.name, _i=index) -> None:
            if progress is not None:
                progress(PredictProgress(_name, _i, len(sources), done, total))

        earlier = finished_result(out, source, key, config.overlay)
        if earlier is not None:
            report.results.append(earlier)
            on_batch(earlier.frames, earlier.frames)
            continue
        # A stale record must not vouch for outputs this run is about to replace.
        _record_path(out, source.name).unlink(missing_ok=True)
        try:
            result = predict_video(predictor, source, out, config, on_batch)
        except NonFiniteOutputError:
            raise  # the model, not this video, is broken: every other video would fail the same way
        except (UsvidError, av.FFmpegError, OSError, ValueError, RuntimeError) as err:
            message = str(err) if str(source.path) in str(err) else f"{source.path}: {err}"
            log.warning("skipping %s", message)
            log.debug("failure details", exc_info=True)
            report.failures.append(VideoFailure(source, message))
            continue
        _save_record(out, result, key)
        report.results.append(result)
    write_text_atomic(out / SUMMARY_NAME, _summary_csv(report))
    if coco is not None:
        done = {r.source.name: r.jsonl for r in report.results}
        write_coco(coco, [(n, done[s.name]) for n, s in enumerate(sources, start=1) if s.name in done])
    return report


def write_coco(path: Path, jsonl_files: list[tuple[int, Path]]) -> None:
    """Write COCO detection results (:func:`~usvid.inference.records.coco_results`) of ``(video number,
    JSONL records file)`` pairs atomically to ``path``; a video's number is its 1-based place in the run's
    list of sources (failed ones included), so a failure does not renumber the videos after it."""
    def records(file: Path):
        with open(file, encoding="utf-8") as fh:
            yield from (json.loads(line) for line in fh if line.strip())

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, coco_results((n, records(f)) for n, f in jsonl_files))
