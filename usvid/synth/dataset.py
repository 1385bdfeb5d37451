"""``generate_dataset``: a folder of synthetic MBUD-style scans in usvid's dataset format.

OUT receives ``videos/<video_id>.mp4``, ``manifest.csv``, ``annotations.json`` (sparse COCO boxes, as
annotators would leave them), ``ground_truth.json`` (every frame's box, the scan region and the
patient-name field of every video; for evaluation only) and ``synth_config.json`` (the resolved config).

Re-running into a folder holding a *complete* earlier run with the same config reuses it untouched;
anything else in an earlier run's folder is regenerated. ``synth_config.json`` is written last and
removed first, so it marks a complete run. OUT must be empty, new, or an earlier ``usvid synth`` output.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usvid import __version__
from usvid.data.manifest import (
    ANNOTATIONS_NAME,
    MANIFEST_NAME,
    Box,
    VideoEntry,
    write_annotations,
    write_manifest,
)
from usvid.errors import InputError
from usvid.io import write_json_atomic
from usvid.synth.chrome import PHI_TEXT
from usvid.synth.config import SynthConfig
from usvid.synth.lesion import make_lesion
from usvid.synth.render import VideoSpec, VideoTruth, render_video

logger = logging.getLogger(__name__)

GROUND_TRUTH_NAME = "ground_truth.json"
CONFIG_NAME = "synth_config.json"
VIDEO_DIR = "videos"
GROUND_TRUTH_FORMAT = "usvid-ground-truth"
# Share of a lesion video's annotated frames that show the lesion; the rest are explicit "no lesion" frames.
ANNOTATED_LESION_SHARE = 0.85
# Chance of 1, 2, 3 videos per patient (MBUD averages 1.2); 0.02 each for more when the config allows more.
_VIDEOS_PER_PATIENT_WEIGHTS = (0.6, 0.3, 0.1)
_VIDEO_NAME = re.compile(r"^p\d{3,}_v\d+\.mp4$")
_OWN_NAMES = {MANIFEST_NAME, ANNOTATIONS_NAME, GROUND_TRUTH_NAME, CONFIG_NAME, VIDEO_DIR}
# Seed-sequence tags keep the streams for labels, patients, videos and annotations independent.
_LABELS, _PATIENT, _VIDEO, _ANNOTATE = 1, 2, 3, 4

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_dataset` wrote. ``labels`` counts videos per label; ``reused`` is True when a
    complete earlier run with the same config was kept as it was."""

    out: Path
    patients: int
    videos: int
    frames: int
    annotated_frames: int
    annotated_boxes: int
    lesion_frames: int
    labels: dict[str, int] = field(default_factory=dict)
    reused: bool = False

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST_NAME

    @property
    def annotations(self) -> Path:
        return self.out / ANNOTATIONS_NAME

    @property
    def ground_truth(self) -> Path:
        return self.out / GROUND_TRUTH_NAME


@dataclass(frozen=True)
class PlannedVideo:
    """A video to render and the manifest row it becomes."""

    patient_id: str
    spec: VideoSpec

    @property
    def relative_path(self) -> str:
        return f"{VIDEO_DIR}/{self.spec.video_id}.mp4"


def _patient_labels(config: SynthConfig) -> list[str]:
    """One label per patient: ``normal_fraction`` normal, the rest split evenly, in a seeded order."""
    n_normal = round(config.normal_fraction * config.patients)
    n_lesion = config.patients - n_normal
    labels = ["normal"] * n_normal + ["benign", "malignant"] * (n_lesion // 2)
    if n_lesion % 2:
        labels.append(["benign", "malignant"][config.seed % 2])
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _LABELS]))
    return [labels[i] for i in rng.permutation(len(labels))]


def plan_dataset(config: SynthConfig) -> list[PlannedVideo]:
    """Every video of the dataset, deterministically from ``config`` (nothing is rendered)."""
    extra = max(0, config.max_videos_per_patient - len(_VIDEOS_PER_PATIENT_WEIGHTS))
    weights = np.array([*_VIDEOS_PER_PATIENT_WEIGHTS, *[0.02] * extra][: config.max_videos_per_patient])
    weights = weights / weights.sum()
    planned = []
    for p, label in enumerate(_patient_labels(config)):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, _PATIENT, p]))
        n_videos = 1 + int(rng.choice(len(weights), p=weights))
        lesion = None if label == "normal" else make_lesion(label, rng)
        for v in range(n_videos):
            video_rng = np.random.default_rng(np.random.SeedSequence([config.seed, _VIDEO, p, v]))
            shape = "sector" if video_rng.uniform() < config.sector_fraction else "linear"
            spec = VideoSpec(
                video_id=f"p{p:03d}_v{v + 1}",
                label=label,
                width=config.width,
                height=config.height,
                frame_rate=config.frame_rate,
                num_frames=config.num_frames,
                scan_shape=shape,
                seed=(config.seed, _VIDEO, p, v),
                lesion=lesion,
                crf=config.crf,
                preset=config.preset,
            )
            planned.append(PlannedVideo(f"p{p:03d}", spec))
    return planned


def annotation_quotas(frames_per_video: list[int], fraction: float, rng: np.random.Generator) -> list[int]:
    """Annotated frames per video summing to ``round(fraction * total)`` (largest remainder, seeded ties)."""
    exact = np.asarray(frames_per_video, dtype=float) * fraction
    quotas = np.floor(exact).astype(int)
    missing = round(fraction * sum(frames_per_video)) - int(quotas.sum())
    order = np.lexsort((rng.permutation(len(exact)), -(exact - quotas)))
    quotas[order[:missing]] += 1
    return quotas.tolist()


def choose_annotated(truth: VideoTruth, quota: int, rng: np.random.Generator) -> list[int]:
    """Frames an annotator would have labelled: mostly ones showing the lesion, some without it."""
    shown = np.array(truth.lesion_frames, dtype=int)
    empty = np.setdiff1d(np.arange(truth.num_frames), shown)
    n_empty = min(len(empty), int(rng.binomial(quota, 1.0 - ANNOTATED_LESION_SHARE)))
    n_shown = min(len(shown), quota - n_empty)
    n_empty = min(len(empty), quota - n_shown)
    picked = np.concatenate(
        [rng.choice(shown, n_shown, replace=False), rng.choice(empty, n_empty, replace=False)]
    )
    return sorted(int(i) for i in picked)


def _prepare_out(out: Path) -> Path:
    """Create OUT, check it is writable and holds nothing but an earlier run's files."""
    if out.exists() and not out.is_dir():
        raise InputError(f"OUT {out}: exists and is not a folder; choose a new or empty folder")
    foreign = (
        sorted(p.name for p in out.iterdir() if p.name not in _OWN_NAMES and not p.name.startswith("."))
        if out.is_dir()
        else []
    )
    if foreign:
        raise InputError(
            f"OUT {out}: folder holds files usvid synth did not write ({', '.join(foreign[:3])}"
            f"{', ...' if len(foreign) > 3 else ''}); choose a new or empty folder"
        )
    try:
        (out / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"OUT {out}: cannot create the output folder ({err.strerror}); choose a writable folder"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK) or not os.access(out / VIDEO_DIR, os.W_OK | os.X_OK):
        raise InputError(f"OUT {out}: the output folder is not writable; choose a writable folder")
    return out


def _stamp(config: SynthConfig) -> dict:
    """The resolved config with the generator's version: a newer generator regenerates."""
    return {"usvid_version": __version__, **config.to_dict()}


def _reusable(out: Path, config: SynthConfig, planned: list[PlannedVideo]) -> dict | None:
    """The earlier run's ground truth when OUT holds a complete run of the same config, else None."""
    try:
        if json.loads((out / CONFIG_NAME).read_text()) != _stamp(config):
            return None
        truth = json.loads((out / GROUND_TRUTH_NAME).read_text())
    except (OSError, ValueError):
        return None
    complete = all((out / p.relative_path).is_file() for p in planned) and (out / MANIFEST_NAME).is_file()
    ids_match = set(truth.get("videos", {})) == {p.spec.video_id for p in planned}
    return truth if complete and ids_match and (out / ANNOTATIONS_NAME).is_file() else None


def _summary_from_files(
    out: Path, config: SynthConfig, planned: list[PlannedVideo], truth: dict
) -> SynthSummary:
    coco = json.loads((out / ANNOTATIONS_NAME).read_text())
    boxes = [v["boxes"] for v in truth["videos"].values()]
    return SynthSummary(
        out=out,
        patients=config.patients,
        videos=len(planned),
        frames=sum(len(b) for b in boxes),
        annotated_frames=len(coco["images"]),
        annotated_boxes=len(coco["annotations"]),
        lesion_frames=sum(b is not None for video in boxes for b in video),
        labels=dict(Counter(p.spec.label for p in planned)),
        reused=True,
    )


def _remove_stale(out: Path, planned: list[PlannedVideo]) -> None:
    """Delete videos of an earlier, larger run and temporary files of an interrupted one."""
    keep = {Path(p.relative_path).name for p in planned}
    for path in (out / VIDEO_DIR).iterdir():
        stale = _VIDEO_NAME.match(path.name) and path.name not in keep
        if stale or (path.name.startswith(".") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)


def generate_dataset(out: Path, config: SynthConfig, progress: Progress | None = None) -> SynthSummary:
    """Generate the synthetic scan set ``config`` describes into ``out``; see the module docstring.

    ``progress(description, frames_done, frames_total)`` is called as frames are encoded.
    """
    out = _prepare_out(Path(out))
    planned = plan_dataset(config)
    earlier = _reusable(out, config, planned)
    if earlier is not None:
        logger.info("%s already holds this dataset; reusing it", out)
        return _summary_from_files(out, config, planned, earlier)
    (out / CONFIG_NAME).unlink(missing_ok=True)
    _remove_stale(out, planned)
    total = sum(p.spec.num_frames for p in planned)
    truths: dict[str, VideoTruth] = {}
    done = 0
    for item in planned:
        spec = item.spec

        def on_frame(index: int, _spec=spec, _done=done) -> None:
            if progress is not None and (index % 10 == 9 or index == _spec.num_frames - 1):
                progress(f"{_spec.video_id} ({_spec.label})", _done + index + 1, total)

        truths[spec.video_id] = render_video(spec, out / item.relative_path, on_frame)
        done += spec.num_frames
    annotated = _write_outputs(out, config, planned, truths)
    boxes = sum(len(b) for frames in annotated.values() for b in frames.values())
    summary = SynthSummary(
        out=out,
        patients=config.patients,
        videos=len(planned),
        frames=total,
        annotated_frames=sum(len(frames) for frames in annotated.values()),
        annotated_boxes=boxes,
        lesion_frames=sum(len(t.lesion_frames) for t in truths.values()),
        labels=dict(Counter(p.spec.label for p in planned)),
    )
    logger.info(
        "wrote %d videos (%d frames, %d annotated) to %s",
        summary.videos,
        total,
        summary.annotated_frames,
        out,
    )
    return summary


def _write_outputs(
    out: Path, config: SynthConfig, planned: list[PlannedVideo], truths: dict[str, VideoTruth]
) -> dict[str, dict[int, list[Box]]]:
    """Write ground truth, annotations, manifest and (last, marking completion) the config."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, _ANNOTATE]))
    quotas = annotation_quotas(
        [truths[p.spec.video_id].num_frames for p in planned], config.box_fraction, rng
    )
    annotated: dict[str, dict[int, list[Box]]] = {}
    entries = []
    for item, quota in zip(planned, quotas, strict=True):
        truth = truths[item.spec.video_id]
        annotated[item.spec.video_id] = {
            i: [] if truth.boxes[i] is None else [Box(*truth.boxes[i])]
            for i in choose_annotated(truth, quota, rng)
        }
        shown = truth.lesion_frames
        entries.append(
            VideoEntry(
                video_id=item.spec.video_id,
                patient_id=item.patient_id,
                path=(out / item.relative_path).resolve(),
                label=item.spec.label,
                lesion_start=shown[0] if shown else None,
                lesion_end=shown[-1] if shown else None,
            )
        )
    ground_truth = {
        "format": GROUND_TRUTH_FORMAT,
        "version": 1,
        "phi_text": PHI_TEXT,
        "videos": {
            p.spec.video_id: {
                "patient_id": p.patient_id,
                "label": p.spec.label,
                **truths[p.spec.video_id].to_json(),
            }
            for p in planned
        },
    }
    write_json_atomic(out / GROUND_TRUTH_NAME, ground_truth)
    sizes = {vid: (t.width, t.height) for vid, t in truths.items()}
    write_annotations(out / ANNOTATIONS_NAME, annotated, sizes)
    write_manifest(out / MANIFEST_NAME, entries, out)
    write_json_atomic(out / CONFIG_NAME, _stamp(config))
    return annotated
