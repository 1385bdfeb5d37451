"""Kornia training augmentation: same pixels as preprocess when off, image and mask kept in step when on."""

from __future__ import annotations

import torch

from usvid.preprocess import PreprocessConfig, preprocess
from usvid.training.augment import TrainAugment
from usvid.training.config import TrainConfig

OFF = dict(rotation_degrees=0.0, hflip_p=0.0, vflip_p=0.0, brightness=0.0, contrast=0.0)


def _batch():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 1, 40, 40), dtype=torch.uint8, generator=g)
    masks = torch.zeros(3, 1, 40, 40, dtype=torch.uint8)
    masks[:, :, 5:15, 8:30] = 255
    return images, masks


def test_without_random_ops_it_is_exactly_preprocess():
    images, masks = _batch()
    pre = PreprocessConfig(size=64, mean=0.2, std=0.5)
    x, m = TrainAugment(TrainConfig(size=64, **OFF), pre)(images, masks)
    assert torch.equal(x, preprocess(images, pre))
    assert x.shape == (3, 1, 64, 64) and m.shape == (3, 1, 64, 64)
    assert set(m.unique().tolist()) == {0.0, 1.0}


def test_geometry_moves_image_and_mask_together():
    # The image is bright exactly where the mask is, so after any rotation/flip the mask must still cover
    # the bright pixels.
    masks = torch.zeros(8, 1, 64, 64, dtype=torch.uint8)
    masks[:, :, 6:26, 10:40] = 255
    images = masks.clone()
    torch.manual_seed(1)
    aug = TrainAugment(TrainConfig(size=64, rotation_degrees=30.0, brightness=0.0, contrast=0.0),
                       PreprocessConfig(size=64))
    x, m = aug(images, masks)
    inside = x[m > 0.5]
    outside = x[m < 0.5]
    assert inside.mean() > 0.9 and outside.mean() < 0.1
    assert not torch.equal(m, (masks > 0).float())  # something really moved


def test_photometric_jitter_leaves_the_mask_and_range():
    images, masks = _batch()
    torch.manual_seed(0)
    aug = TrainAugment(TrainConfig(size=64, rotation_degrees=0.0, hflip_p=0.0, vflip_p=0.0, brightness=0.3,
                                   contrast=0.3), PreprocessConfig(size=64))
    x, m = aug(images, masks)
    base, m0 = TrainAugment(TrainConfig(size=64, **OFF), PreprocessConfig(size=64))(images, masks)
    assert torch.equal(m, m0)
    assert not torch.allclose(x, base)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_same_seed_same_augmentation():
    images, masks = _batch()
    aug = TrainAugment(TrainConfig(size=64), PreprocessConfig(size=64))
    torch.manual_seed(3)
    a = aug(images, masks)
    torch.manual_seed(3)
    b = aug(images, masks)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_random_resized_crop_moves_image_and_mask_together():
    masks = torch.zeros(8, 1, 64, 64, dtype=torch.uint8)
    masks[:, :, 20:44, 12:36] = 255
    images = masks.clone()
    torch.manual_seed(2)
    aug = TrainAugment(TrainConfig(size=64, **OFF, rrc_scale=(0.5, 0.75)), PreprocessConfig(size=64))
    x, m = aug(images, masks)
    assert x.shape == m.shape == (8, 1, 64, 64)
    assert set(m.unique().tolist()) <= {0.0, 1.0}  # nearest: still a binary mask
    assert x[m > 0.5].mean() > 0.9 and x[m < 0.5].mean() < 0.1
    # Cropping half to three quarters of the frame and resizing back enlarges the lesion.
    assert (m.sum((1, 2, 3)) > (masks > 0).sum((1, 2, 3))).all()
