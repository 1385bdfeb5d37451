"""Per-epoch frame sampling: which frames each optimizer step sees, on each process.

Scan videos hold thousands of near-identical frames while only a few carry boxes, so an epoch is not
"every frame once". Each epoch:

- unannotated frames: at most ``frames_per_video`` drawn per video (without replacement, fresh each epoch);
- annotated frames: all of them (they are rare), never capped;
- each pool is class-balanced (``oversample`` repeats minority-class frames up to the largest class,
  ``undersample`` trims every class down to the smallest);
- a stage-2 step holds ``m`` annotated + ``m'`` unannotated frames; a pool that runs out is reshuffled and
  cycled, so every step is full. ``ceil(frames / (batch_size * world_size))`` steps make an epoch.

Plans come from a generator seeded by ``(seed, stage, epoch)`` only, so every process builds the same
global plan and takes its own slice (distributed sampling), and a resumed run replays the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from usvid.training.frames import SplitFrames


def epoch_rng(seed: int, stage: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, stage, epoch])


def cap_per_video(frames: SplitFrames, indices: Sequence[int], cap: int | None, rng: np.random.Generator) -> list[int]:
    """At most ``cap`` of ``indices`` per video, drawn without replacement, in store order."""
    if cap is None:
        return list(indices)
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(frames.records[i].video_id, []).append(i)
    out: list[int] = []
    for video_id in sorted(groups):
        group = groups[video_id]
        if len(group) > cap:
            group = sorted(rng.choice(group, size=cap, replace=False).tolist())
        out.extend(group)
    return out


def balance_classes(labels: np.ndarray, indices: Sequence[int], mode: str, rng: np.random.Generator) -> list[int]:
    """Resample ``indices`` so each class present contributes the same number of frames."""
    if mode == "none" or not indices:
        return list(indices)
    per_class: dict[int, list[int]] = {}
    for i in indices:
        per_class.setdefault(int(labels[i]), []).append(i)
    target = (max if mode == "oversample" else min)(len(v) for v in per_class.values())
    out: list[int] = []
    for cls in sorted(per_class):
        members = per_class[cls]
        if len(members) >= target:
            out.extend(rng.choice(members, size=target, replace=False).tolist())
        else:
            extra = rng.choice(members, size=target - len(members), replace=True).tolist()
            out.extend(members + extra)
    return out


def _cycle(pool: Sequence[int], rng: np.random.Generator) -> Iterator[int]:
    """Endless stream over ``pool``: a fresh permutation each pass."""
    while True:
        yield from rng.permutation(np.asarray(pool, dtype=np.int64)).tolist()


def _take(stream: Iterator[int], count: int) -> list[int]:
    return [next(stream) for _ in range(count)]


def annotated_per_step(num_annotated: int, num_unannotated: int, batch_size: int, requested: int | None) -> int:
    """m: annotated frames per step. A pool that is empty forces the whole step onto the other."""
    if num_annotated == 0:
        return 0
    if num_unannotated == 0:
        return batch_size
    if requested is not None:
        return requested
    share = batch_size * num_annotated / (num_annotated + num_unannotated)
    return min(max(1, round(share)), batch_size - 1)


def plan_stage1(
    frames: SplitFrames, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """Steps of stage 1: annotated frames only, shuffled, each frame at least once per epoch."""
    pool = frames.annotated_indices
    if not pool:
        return []
    rng = epoch_rng(seed, 1, epoch)
    global_batch = batch_size * world_size
    stream = _cycle(pool, rng)
    steps = []
    for _ in range(math.ceil(len(pool) / global_batch)):
        step = _take(stream, global_batch)
        steps.append(step[rank * batch_size : (rank + 1) * batch_size])
    return steps


def plan_stage2(
    frames: SplitFrames,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    frames_per_video: int | None,
    class_balance: str,
    annotated_per_batch: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> list[list[int]]:
    """Steps of stage 2: each holds m annotated frames followed by m' unannotated ones (this rank's share)."""
    rng = epoch_rng(seed, 2, epoch)
    labels = frames.labels
    annotated = frames.annotated_indices
    unannotated = [i for i, r in enumerate(frames.records) if not r.annotated]
    unannotated = cap_per_video(frames, unannotated, frames_per_video, rng)
    annotated = balance_classes(labels, annotated, class_balance, rng)
    unannotated = balance_classes(labels, unannotated, class_balance, rng)
    total = len(annotated) + len(unannotated)
    if total == 0:
        return []
    m = annotated_per_step(len(annotated), len(unannotated), batch_size, annotated_per_batch)
    m_u = batch_size - m
    streams = (_cycle(annotated, rng) if m else iter(()), _cycle(unannotated, rng) if m_u else iter(()))
    steps = []
    for _ in range(math.ceil(total / (batch_size * world_size))):
        a = _take(streams[0], m * world_size)
        u = _take(streams[1], m_u * world_size)
        steps.append(a[rank * m : (rank + 1) * m] + u[rank * m_u : (rank + 1) * m_u])
    return steps


def plan_eval(frames: SplitFrames, frames_per_video: int | None) -> list[int]:
    """Deterministic evaluation frames: all, or ``frames_per_video`` evenly spaced per video plus every
    annotated frame (they are what localisation is scored on)."""
    if frames_per_video is None:
        return list(range(len(frames)))
    keep: set[int] = set()
    for group in frames.by_video().values():
        picks = np.linspace(0, len(group) - 1, num=min(frames_per_video, len(group))).round().astype(int)
        keep.update(group[p] for p in picks)
        keep.update(i for i in group if frames.records[i].annotated)
    return sorted(keep)
