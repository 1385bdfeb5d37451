"""Split indexing, --box-fraction by patient, uint8 batch reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from usvid.errors import InputError
from usvid.training.frames import BatchReader, keep_box_fraction, require_frames, split_frames


def test_split_frames_carry_their_video_label(tiny_store):
    frames = split_frames(tiny_store, "train", tiny_store.labels)
    by_video = {v.video_id: v.label for v in tiny_store.videos}
    assert len(frames) == 4 * 12
    assert all(frames.class_names[r.label] == by_video[r.video_id] for r in frames.records)
    assert len(frames.annotated_indices) == 4 * 3


def test_unknown_label_is_a_clear_error(tiny_store):
    with pytest.raises(InputError, match="not one of the classes"):
        split_frames(tiny_store, "train", ["benign"])


def test_empty_and_one_class_splits_are_errors(store_factory):
    store = store_factory(splits={"train": 1, "val": 1})
    with pytest.raises(InputError, match="split 'test' has no videos; splits with videos: train .*--split"):
        require_frames(split_frames(store, "test", store.labels), store)
    one = store_factory(labels=("benign",))
    with pytest.raises(InputError, match="only class \\['benign'\\]"):
        require_frames(split_frames(one, "train", ["benign", "malignant"]), one, min_classes=2)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_box_fraction_keeps_whole_patients(store_factory, fraction):
    store = store_factory(splits={"train": 4})
    frames = split_frames(store, "train", store.labels)
    kept = keep_box_fraction(frames, fraction, seed=0)
    patients = {r.patient_id for r in kept.records if r.annotated}
    assert len(patients) == round(fraction * 8)
    for r_old, r_new in zip(frames.records, kept.records, strict=True):
        if r_new.patient_id in patients:
            assert r_new.annotated == r_old.annotated  # a kept patient keeps all its annotations
        else:
            assert not r_new.annotated
    assert keep_box_fraction(frames, fraction, seed=0) == kept
    if 0 < fraction < 1:
        assert keep_box_fraction(frames, fraction, seed=5) != kept


def test_batch_reader_types_and_box_masks(tiny_store):
    frames = split_frames(tiny_store, "train", tiny_store.labels)
    reader = BatchReader(tiny_store, frames)
    idx = [0, 1, 5]  # frames 0, 1 annotated, 5 not
    batch = reader.read(idx)
    assert batch.images.shape == (3, 1, 64, 64) and batch.images.dtype == torch.uint8
    assert batch.masks.shape == (3, 1, 64, 64) and batch.masks.dtype == torch.uint8
    assert batch.annotated.tolist() == [True, True, False]
    assert int(batch.masks[2].max()) == 0
    x0, y0, x1, y1 = (int(v) for v in frames.records[0].box.as_xyxy())
    assert int(batch.masks[0, 0, y0:y1, x0:x1].min()) == 255
    assert int(batch.masks[0].sum()) // 255 == (x1 - x0) * (y1 - y0)
    # the image really is the stored frame
    assert torch.equal(batch.images[0, 0], torch.from_numpy(np.array(tiny_store.frames_of(frames.records[0].video_id)[0])))
