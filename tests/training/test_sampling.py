"""Per-epoch sampling: caps, class balance, m + m' composition, distributed slices, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from usvid.boxes import Box
from usvid.training.frames import FrameRecord, SplitFrames
from usvid.training.sampling import (
    annotated_per_step,
    balance_classes,
    cap_per_video,
    plan_eval,
    plan_stage1,
    plan_stage2,
)


def _frames(videos: dict[str, tuple[int, int, int]]) -> SplitFrames:
    """videos: id -> (label, frames, annotated frames at the start)."""
    records = []
    for vid, (label, count, annotated) in videos.items():
        for i in range(count):
            records.append(FrameRecord(vid, f"p_{vid}", i, label, i < annotated, Box(0, 0, 4, 4) if i < annotated else None))
    return SplitFrames("train", tuple(records), ("benign", "malignant"))


# 3 benign videos of 50 frames, 1 malignant video of 30 frames; 2 annotated frames each.
FRAMES = _frames({"a": (0, 50, 2), "b": (0, 50, 2), "c": (0, 50, 2), "d": (1, 30, 2)})


def test_cap_per_video_limits_each_video():
    rng = np.random.default_rng(0)
    picked = cap_per_video(FRAMES, range(len(FRAMES)), 5, rng)
    per_video = Counter(FRAMES.records[i].video_id for i in picked)
    assert per_video == {"a": 5, "b": 5, "c": 5, "d": 5}
    assert len(set(picked)) == len(picked)


@pytest.mark.parametrize("mode", ["oversample", "undersample"])
def test_balance_classes_equalises(mode):
    rng = np.random.default_rng(0)
    indices = list(range(len(FRAMES)))
    out = balance_classes(FRAMES.labels, indices, mode, rng)
    counts = Counter(int(FRAMES.labels[i]) for i in out)
    assert counts[0] == counts[1] == (150 if mode == "oversample" else 30)


def test_stage2_steps_hold_m_annotated_then_unannotated():
    steps = plan_stage2(FRAMES, 8, seed=0, epoch=0, frames_per_video=10, class_balance="none", annotated_per_batch=2)
    assert all(len(s) == 8 for s in steps)
    for step in steps:
        flags = [FRAMES.records[i].annotated for i in step]
        assert flags == [True] * 2 + [False] * 6
    # 8 annotated + 40 capped unannotated frames -> ceil(48 / 8) steps.
    assert len(steps) == 6


def test_default_m_is_proportional_with_at_least_one():
    assert annotated_per_step(8, 800, 8, None) == 1
    assert annotated_per_step(400, 400, 8, None) == 4
    assert annotated_per_step(0, 10, 8, 3) == 0
    assert annotated_per_step(10, 0, 8, 3) == 8


def test_plans_are_deterministic_and_change_per_epoch():
    kw = dict(frames_per_video=10, class_balance="oversample")
    a = plan_stage2(FRAMES, 8, seed=1, epoch=0, **kw)
    assert a == plan_stage2(FRAMES, 8, seed=1, epoch=0, **kw)
    assert a != plan_stage2(FRAMES, 8, seed=1, epoch=1, **kw)
    assert a != plan_stage2(FRAMES, 8, seed=2, epoch=0, **kw)


def test_distributed_ranks_take_disjoint_slices_of_the_same_global_plan():
    kw = dict(seed=3, epoch=0, frames_per_video=10, class_balance="none", annotated_per_batch=2)
    rank0 = plan_stage2(FRAMES, 4, rank=0, world_size=2, **kw)
    rank1 = plan_stage2(FRAMES, 4, rank=1, world_size=2, **kw)
    assert len(rank0) == len(rank1) == 6  # 48 frames / (4 x 2)
    for s0, s1 in zip(rank0, rank1, strict=True):
        assert len(s0) == len(s1) == 4
        assert [FRAMES.records[i].annotated for i in s0] == [True, True, False, False]
        assert not set(s0) & set(s1)


def test_stage1_uses_annotated_frames_only_and_covers_them():
    steps = plan_stage1(FRAMES, 3, seed=0, epoch=0)
    seen = [i for s in steps for i in s]
    assert all(FRAMES.records[i].annotated for i in seen)
    assert set(seen) == set(FRAMES.annotated_indices)
    assert all(len(s) == 3 for s in steps)  # the last step is filled by cycling


def test_plan_eval_spaces_frames_and_keeps_annotated():
    picked = plan_eval(FRAMES, 3)
    per_video = Counter(FRAMES.records[i].video_id for i in picked)
    assert all(n <= 3 + 2 for n in per_video.values())
    assert set(FRAMES.annotated_indices) <= set(picked)
    assert plan_eval(FRAMES, None) == list(range(len(FRAMES)))
