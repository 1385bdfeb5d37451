"""What training and evaluation read from a frame store: indexed frames of a split and uint8 batches.

Loading stays ``uint8`` on the CPU side (decoding and storage are uint8); scaling, augmentation and
resizing happen per batch on the training device (:mod:`usvid.training.augment`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from usvid.boxes import Box
from usvid.data.splits import SPLITS, SplitFractions, fractions_giving, percent_text
from usvid.data.store import box_slices
from usvid.errors import InputError, UsvidError
from usvid.outputs import check_path_text

log = logging.getLogger(__name__)


class FrameRecord(NamedTuple):
    """One stored frame as training sees it. ``box``: the union of its lesion boxes in stored pixels, or None."""

    video_id: str
    patient_id: str
    store_index: int
    label: int
    annotated: bool
    box: Box | None


class FrameBatch(NamedTuple):
    """A batch straight from the store.

    images: ``(B, 1, S, S)`` uint8; masks: ``(B, 1, S, S)`` uint8 in {0, 255} (zeros where not annotated);
    annotated: ``(B,)`` bool; labels: ``(B,)`` int64 class indices.
    """

    images: torch.Tensor
    masks: torch.Tensor
    annotated: torch.Tensor
    labels: torch.Tensor

    def __repr__(self) -> str:
        return f"FrameBatch(images={tuple(self.images.shape)}, annotated={int(self.annotated.sum())})"


@dataclass(frozen=True)
class SplitFrames:
    """The frames of one split, with class indices resolved against ``class_names``."""

    name: str
    records: tuple[FrameRecord, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int64 class indices."""
        return np.fromiter((r.label for r in self.records), dtype=np.int64, count=len(self.records))

    @property
    def annotated_indices(self) -> list[int]:
        return [i for i, r in enumerate(self.records) if r.annotated]

    def by_video(self) -> dict[str, list[int]]:
        """Record indices grouped per video, in store order."""
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            groups.setdefault(r.video_id, []).append(i)
        return groups


def open_store(store: Any) -> Any:
    """Return a FrameStore for a path, or ``store`` itself when it already is one (tests inject fakes)."""
    if not isinstance(store, (str, Path)):
        return store
    from usvid.data.store import FrameStore

    path = check_path_text(store, "frame store")
    if not path.exists():
        raise InputError(f"{path}: frame store does not exist; create it with `usvid extract SRC {path}`")
    try:
        return FrameStore(path)
    except UsvidError:
        raise
    except Exception as err:  # a foreign or half-written folder can fail in many ways inside the reader
        raise InputError(
            f"{path}: not a readable usvid frame store ({type(err).__name__}: {err}); "
            "re-create it with `usvid extract`"
        ) from None


def store_name(store: Any) -> str:
    return str(getattr(store, "path", getattr(store, "root", "<store>")))


def split_frames(store: Any, split: str, class_names: Sequence[str]) -> SplitFrames:
    """Index the frames of ``split``; every frame carries its video's class (labels come per video)."""
    index = {name: i for i, name in enumerate(class_names)}
    records = []
    for f in store.split(split):
        if f.label not in index:
            raise InputError(
                f"{store_name(store)}: split '{split}' has frames labelled '{f.label}', which is not one of the "
                f"classes {list(class_names)}; evaluate with a checkpoint trained on these classes"
            )
        records.append(
            FrameRecord(
                video_id=f.video_id,
                patient_id=f.patient_id,
                store_index=int(f.store_index),
                label=index[f.label],
                annotated=_is_annotated(f),
                box=f.box,
            )
        )
    return SplitFrames(name=split, records=tuple(records), class_names=tuple(class_names))


def _is_annotated(frame: Any) -> bool:
    # ``annotated`` also covers frames annotated as lesion-free (empty mask, no box).
    return bool(getattr(frame, "annotated", False) or frame.has_box)


def require_frames(frames: SplitFrames, store: Any, *, min_classes: int = 1) -> None:
    """Clear errors for an empty split or one holding fewer classes than the task needs."""
    if len(frames) == 0:
        if not any(v.split == frames.name for v in store.videos):
            raise InputError(empty_split_advice(store, frames.name))
        raise InputError(f"{store_name(store)}: split '{frames.name}' has videos but none of their frames is "
                         "stored; re-extract the store")
    present = sorted({frames.class_names[r.label] for r in frames.records})
    if len(present) < min_classes:
        raise InputError(
            f"{store_name(store)}: split '{frames.name}' holds only class {present}, but training a classifier "
            f"needs at least {min_classes} classes there; re-extract with more videos per class"
        )


def keep_box_fraction(frames: SplitFrames, fraction: float, seed: int) -> SplitFrames:
    """Keep the annotations of a seeded ``fraction`` of the annotated patients, as in the paper's 25/50/75% study.

    Whole patients are kept or dropped so one patient's frames never end up half-annotated.
    """
    if fraction >= 1.0:
        return frames
    patients = sorted({r.patient_id for r in frames.records if r.annotated})
    rng = np.random.default_rng([seed, 0xB0C5])
    keep_count = round(fraction * len(patients))
    kept = set(rng.permutation(np.array(patients, dtype=object))[:keep_count].tolist()) if patients else set()
    records = tuple(r._replace(annotated=r.annotated and r.patient_id in kept) for r in frames.records)
    log.info("box fraction %.2f: kept annotations of %d of %d patients", fraction, len(kept), len(patients))
    return SplitFrames(name=frames.name, records=records, class_names=frames.class_names)


class BatchReader:
    """Reads uint8 batches for lists of record indices. Safe to use from DataLoader worker processes."""

    def __init__(self, store: Any, frames: SplitFrames) -> None:
        self.store = store
        self.frames = frames
        self._arrays: dict[str, np.ndarray] = {}

    def _video(self, video_id: str) -> np.ndarray:
        arr = self._arrays.get(video_id)
        if arr is None:
            arr = self._arrays[video_id] = self.store.frames_of(video_id)
        return arr

    def mask(self, record: FrameRecord, size: int) -> np.ndarray:
        """``(S, S)`` uint8 {0, 255}; a filled rectangle when only a box exists; zeros when not annotated."""
        if not record.annotated:
            return np.zeros((size, size), np.uint8)
        mask = self.store.mask_of(record.video_id, record.store_index)
        if mask is not None:
            return np.asarray(mask, dtype=np.uint8)
        out = np.zeros((size, size), np.uint8)
        if record.box is not None:  # a store without mask arrays: fill every pixel the box touches
            out[box_slices(record.box)] = 255
        return out

    def read(self, indices: Sequence[int]) -> FrameBatch:
        records = [self.frames.records[i] for i in indices]
        images = np.stack([self._video(r.video_id)[r.store_index] for r in records])
        size = images.shape[-1]
        masks = np.stack([self.mask(r, size) for r in records])
        return FrameBatch(
            images=torch.from_numpy(images).unsqueeze(1),
            masks=torch.from_numpy(masks).unsqueeze(1),
            annotated=torch.tensor([r.annotated for r in records], dtype=torch.bool),
            labels=torch.tensor([r.label for r in records], dtype=torch.int64),
        )


class StepDataset(torch.utils.data.Dataset):
    """One item per optimizer step: the batch of frames the sampling plan chose for it."""

    def __init__(self, reader: BatchReader, steps: Sequence[Sequence[int]]) -> None:
        self.reader = reader
        self.steps = steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int) -> FrameBatch:
        return self.reader.read(self.steps[i])


def step_loader(reader: BatchReader, steps: Sequence[Sequence[int]], num_workers: int, pin_memory: bool):
    """A DataLoader yielding one :class:`FrameBatch` per planned step, prefetched by worker processes."""
    return torch.utils.data.DataLoader(
        StepDataset(reader, steps),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )


def empty_split_advice(store: Any, split: str) -> str:
    """One line for an empty split: the splits that have videos, and a re-extraction that fills this one.

    The suggested ``--split`` is checked by splitting the store's own patients (per source, with its seed) as
    extraction would (:func:`usvid.data.splits.fractions_giving`).
    """
    name = store_name(store)
    videos = list(store.videos)
    held = {s: sum(v.split == s for v in videos) for s in SPLITS}
    having = ", ".join(f"{s} ({n} video{'s' if n != 1 else ''})" for s, n in held.items() if n)
    config = getattr(store, "meta", {}).get("config", {})
    seed = int(config.get("seed", 0))
    current = SplitFractions(*config["split"]) if "split" in config else None
    sources: dict[str, dict[str, str]] = {}
    for v in videos:
        sources.setdefault(v.dataset, {})[v.patient_id] = v.label
    patients = sum(len(p) for p in sources.values())
    line = f"{name}: split '{split}' has no videos; splits with videos: {having or 'none'}"
    others = [s for s, n in held.items() if n and s != split]
    evaluate = f"evaluate one of them (--split {others[0]}) or " if others else ""
    fractions = fractions_giving(list(sources.values()), split, seed, current)
    if fractions is None:
        return (f"{line}; the store holds {patients} patient{'s' if patients != 1 else ''}, too few to hold one "
                f"out: {evaluate.replace(' or ', ', or ')}extract more scans")
    return (f"{line}; {evaluate}re-extract the {patients} patients into a new folder with "
            f"`usvid extract {_sources_text(store)} NEW_STORE --size {store.size} --split {percent_text(fractions)} "
            f"--seed {seed}` (and the other options used before), which gives '{split}' patients")


def _sources_text(store: Any) -> str:
    """The sources the store was extracted from (its ``extract.json``), or SRC when it does not say."""
    path = Path(store_name(store)) / "extract.json"
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError):
        return "SRC"
    paths = [settings["source"]] if "source" in settings else [s["path"] for s in settings.get("sources", [])]
    return " ".join(paths) or "SRC"
