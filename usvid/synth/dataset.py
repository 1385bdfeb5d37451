"""``generate_dataset``: a folder of synthetic MBUD-style scans in usvid's dataset format.

OUT receives ``videos/<video_id>.mp4``, ``manifest.csv``, ``annotations.json`` (sparse COCO boxes, as
annotators would leave them), ``ground_truth.json`` (every frame's box, the scan region and the
patient-name field of every video; for evaluation only), ``synth_config.json`` (the resolved config) and
the hidden marker ``.usvid-synth.json`` listing every file synth wrote, with its SHA-256
(:mod:`usvid.synth.ledger`).

OUT must be new, empty, or hold the marker. A re-run replaces or deletes only files the marker lists whose
bytes are unchanged: a user's own files (a real scan in ``videos/``, an edited manifest) are never
touched, and a planned file name held by one of them is refused before any work. ``overwrite`` lets synth
write into a folder without the marker and replace same-named files; it still deletes nothing it did not
write. Re-running with the same config into a complete, unchanged earlier run reuses it untouched;
``synth_config.json`` is written last and removed first, so it marks a complete run.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usvid import __version__
from usvid.boxes import Box
from usvid.data.manifest import (
    ANNOTATIONS_NAME,
    MANIFEST_NAME,
    VideoEntry,
    write_annotations,
    write_manifest,
)
from usvid.errors import InputError
from usvid.io import write_json_atomic
from usvid.outputs import check_output_dir
from usvid.synth.chrome import PHI_TEXT
from usvid.synth.config import SynthConfig
from usvid.synth.ledger import MARKER_NAME, Ledger, temporary_names
from usvid.synth.lesion import make_lesion
from usvid.synth.render import VideoSpec, VideoTruth, encode_video

logger = logging.getLogger(__name__)

GROUND_TRUTH_NAME = "ground_truth.json"
CONFIG_NAME = "synth_config.json"
VIDEO_DIR = "videos"
GROUND_TRUTH_FORMAT = "usvid-ground-truth"
# Share of a lesion video's annotated frames that show the lesion; the rest are explicit "no lesion" frames.
ANNOTATED_LESION_SHARE = 0.85
# Chance of 1, 2, 3 videos per patient (MBUD averages 1.2); 0.02 each for more when the config allows more.
_VIDEOS_PER_PATIENT_WEIGHTS = (0.6, 0.3, 0.1)
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


def _own_names(planned: list[PlannedVideo]) -> list[str]:
    """Every file a run of ``planned`` writes, relative to OUT; ``synth_config.json`` last."""
    return [
        *(p.relative_path for p in planned),
        GROUND_TRUTH_NAME,
        ANNOTATIONS_NAME,
        MANIFEST_NAME,
        CONFIG_NAME,
    ]


def _listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _has_content(out: Path) -> bool:
    """Anything in OUT but the marker and an empty ``videos`` folder (what a run killed at once leaves)."""
    if not out.is_dir():
        return False
    for entry in out.iterdir():
        if entry.name == MARKER_NAME:
            continue
        if entry.name == VIDEO_DIR and entry.is_dir() and not any(entry.iterdir()):
            continue
        return True
    return False


def _claim(out: Path, names: list[str], overwrite: bool) -> Ledger:
    """The ledger of OUT, after refusing a folder or file synth must not write over (nothing is written)."""
    ledger = Ledger.load(out)
    if ledger is None:
        if _has_content(out) and not overwrite:
            found = _listing(sorted(p.name for p in out.iterdir()))
            raise InputError(
                f"OUT {out}: folder holds files usvid synth did not write ({found}; no {MARKER_NAME}); "
                "choose a new or empty folder, or pass --overwrite to write into it "
                "(replaces files with the names synth writes, deletes nothing)"
            )
        ledger = Ledger(out)
    videos = out / VIDEO_DIR
    if videos.exists() and not videos.is_dir():
        raise InputError(
            f"OUT {out}: {videos} is a file, synth needs a folder there; move it or choose another OUT"
        )
    folders = [rel for rel in names if (out / rel).is_dir()]
    if folders:
        raise InputError(
            f"OUT {out}: {_listing(folders)} is a folder, synth writes a file there; choose another OUT"
        )
    foreign = [rel for rel in names if (out / rel).exists() and not ledger.owns(rel)]
    if foreign and not overwrite:
        raise InputError(
            f"OUT {out}: {_listing(foreign)} were not written by usvid synth or changed since; "
            "move them, choose another folder, or pass --overwrite to replace them"
        )
    return ledger


def _remove_leftovers(out: Path, ledger: Ledger, names: list[str]) -> None:
    """Delete what an earlier run wrote that this one will not (videos of a larger run), if still unchanged,
    and the temporaries of an interrupted run; a file the user changed since is kept and no longer listed."""
    keep = set(names)
    for rel in sorted(set(ledger.entries) - keep):
        if ledger.owns(rel):
            (out / rel).unlink()
        elif (out / rel).exists():
            logger.warning("%s: changed since usvid synth wrote it; leaving it in place", out / rel)
        ledger.forget(rel)
    temporary = temporary_names([Path(n).name for n in [*names, *ledger.entries, MARKER_NAME]])
    for folder in (out, out / VIDEO_DIR):
        for path in folder.iterdir():
            if temporary.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)


def _stamp(config: SynthConfig) -> dict:
    """The resolved config with the generator's version: a newer generator regenerates."""
    return {"usvid_version": __version__, **config.to_dict()}


def _reusable(out: Path, config: SynthConfig, ledger: Ledger, names: list[str]) -> dict | None:
    """The earlier run's ground truth when OUT holds a complete, unchanged run of the same config, else None."""
    if not all(ledger.owns(rel) for rel in names):
        return None
    try:
        if json.loads((out / CONFIG_NAME).read_text()) != _stamp(config):
            return None
        return json.loads((out / GROUND_TRUTH_NAME).read_text())
    except (OSError, ValueError):
        return None


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


def generate_dataset(
    out: Path, config: SynthConfig, progress: Progress | None = None, *, overwrite: bool = False
) -> SynthSummary:
    """Generate the synthetic scan set ``config`` describes into ``out``; see the module docstring.

    ``progress(description, frames_done, frames_total)`` is called as frames are encoded. ``overwrite``
    allows a folder without synth's marker and replaces files with the names synth writes.

    Raises:
        InputError: OUT is a file, not writable, or holds files synth did not write (see ``overwrite``);
            raised before anything is written.
    """
    out = check_output_dir(out, option="OUT")
    planned = plan_dataset(config)
    names = _own_names(planned)
    ledger = _claim(out, names, overwrite)
    earlier = _reusable(out, config, ledger, names)
    if earlier is not None:
        logger.info("%s already holds this dataset; reusing it", out)
        return _summary_from_files(out, config, planned, earlier)
    (out / VIDEO_DIR).mkdir(parents=True, exist_ok=True)
    ledger.save()  # first, so a run killed at any later point is recognised as synth's own
    if ledger.owns(CONFIG_NAME):  # a user's file of that name (under overwrite) is replaced only at the end
        (out / CONFIG_NAME).unlink()
    ledger.forget(CONFIG_NAME)
    _remove_leftovers(out, ledger, names)
    ledger.save()
    total = sum(p.spec.num_frames for p in planned)
    truths: dict[str, VideoTruth] = {}
    done = 0
    for item in planned:
        spec = item.spec

        def on_frame(index: int, _spec=spec, _done=done) -> None:
            if progress is not None and (index % 10 == 9 or index == _spec.num_frames - 1):
                progress(f"{_spec.video_id} ({_spec.label})", _done + index + 1, total)

        with ledger.write(item.relative_path) as tmp:
            truths[spec.video_id] = encode_video(spec, tmp, on_frame)
        done += spec.num_frames
    annotated = _write_outputs(out, config, planned, truths, ledger)
    ledger.settle()
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
    out: Path, config: SynthConfig, planned: list[PlannedVideo], truths: dict[str, VideoTruth], ledger: Ledger
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
            i: [] if truth.boxes[i] is None else [truth.boxes[i]]
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
    sizes = {vid: (t.width, t.height) for vid, t in truths.items()}
    with ledger.write(GROUND_TRUTH_NAME) as tmp:
        write_json_atomic(tmp, ground_truth)
    with ledger.write(ANNOTATIONS_NAME) as tmp:
        write_annotations(tmp, annotated, sizes)
    with ledger.write(MANIFEST_NAME) as tmp:
        write_manifest(tmp, entries, out)
    with ledger.write(CONFIG_NAME) as tmp:
        write_json_atomic(tmp, _stamp(config))
    return annotated
