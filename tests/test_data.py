"""Tests for solvers.data.pipeline: training and validation pipelines over (LR, HR) pairs."""

import numpy as np
import pytest
import tensorflow as tf

from solvers.data.pipeline import check_patch_fits, train_dataset, val_dataset
from solvers.data.sources import DataError, bicubic_pair, make_lr

RNG = np.random.default_rng(1234)


def noise(h, w):
    """Random uint8 RGB image: crops at different places are all different."""
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def dihedral(img, d, axes=(0, 1)):
    """The d-th (0..7) symmetry of the square on the (row, column) axes of img."""
    if d % 2:
        img = np.flip(img, axis=axes[1])
    return np.rot90(img, d // 2, axes=axes)


def assert_data_error(excinfo, *parts):
    msg = str(excinfo.value)
    assert msg.startswith("DATA: ") and "\n" not in msg, msg
    for part in parts:
        assert str(part) in msg, msg


def pairs_of(images, scale):
    return [bicubic_pair(str(i), img, scale) for i, img in enumerate(images)]


def test_check_patch_fits():
    pairs = pairs_of([np.zeros((200, 200, 3), np.uint8), np.zeros((80, 121, 3), np.uint8)], 2)
    check_patch_fits(pairs, 40, "mysource")  # 100x100 and 40x60 LR: both fit
    with pytest.raises(DataError) as e:
        check_patch_fits(pairs, 64, "mysource")
    assert str(e.value) == ("DATA: mysource: image 1 is 40x60 LR pixels, smaller than the "
                            "64x64 training patch (PATCH)")


# ---------------------------------------------------------------- train_dataset


def first_batches(ds, n):
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(n)]


def test_train_dataset_shapes_and_dtype():
    ds = train_dataset(pairs_of([noise(30, 26), noise(22, 34)], 2), scale=2, patch=5, batch=4,
                       seed=0)
    lr_spec, hr_spec = ds.element_spec
    assert tuple(lr_spec.shape) == (4, 5, 5, 3) and lr_spec.dtype == tf.float32
    assert tuple(hr_spec.shape) == (4, 10, 10, 3) and hr_spec.dtype == tf.float32
    (lr, hr), = first_batches(ds, 1)
    assert lr.shape == (4, 5, 5, 3) and hr.shape == (4, 10, 10, 3)
    assert lr.min() >= 0 and hr.max() <= 255


def test_train_patches_align_with_make_lr():
    scale, patch = 2, 5
    images = [noise(30, 26), noise(23, 35)]  # odd size: HR gets cropped to a multiple of 2
    pairs = [[t.numpy() for t in make_lr(img, scale)] for img in images]
    ds = train_dataset(pairs_of(images, scale), scale=scale, patch=patch, batch=16, seed=3)
    seen_images, seen_transforms = set(), set()
    for lr_batch, hr_batch in first_batches(ds, 3):
        for lr_p, hr_p in zip(lr_batch, hr_batch):
            found = False
            for k, (hr_full, lr_full) in enumerate(pairs):
                # Every patch x patch window of the LR image: (y, x, row, col, channel).
                wins = np.lib.stride_tricks.sliding_window_view(lr_full, (patch, patch), (0, 1))
                wins = wins.transpose(0, 1, 3, 4, 2)
                for d in range(8):
                    same = np.all(dihedral(wins, d, axes=(2, 3)) == lr_p, axis=(2, 3, 4))
                    for y, x in np.argwhere(same):
                        hr_crop = hr_full[y * scale:(y + patch) * scale,
                                          x * scale:(x + patch) * scale]
                        if np.array_equal(dihedral(hr_crop, d), hr_p):
                            found = True
                            seen_images.add(k)
                            seen_transforms.add(d)
            assert found, "LR/HR patch pair is not an aligned crop of make_lr output"
    assert seen_images == {0, 1}  # both images are drawn
    assert len(seen_transforms) >= 4  # the dihedral transform varies


def test_train_dataset_same_seed_same_batches():
    images = pairs_of([noise(30, 26), noise(22, 34)], 2)
    a = first_batches(train_dataset(images, 2, 5, 4, seed=7), 3)
    b = first_batches(train_dataset(images, 2, 5, 4, seed=7), 3)
    c = first_batches(train_dataset(images, 2, 5, 4, seed=8), 3)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(a, b):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_train_dataset_rejects_too_small_images():
    with pytest.raises(DataError):
        train_dataset(pairs_of([noise(30, 26), noise(8, 40)], 2), scale=2, patch=5, batch=2,
                      seed=0)


# ---------------------------------------------------------------- val_dataset


def test_val_dataset_names_the_split_it_serves():
    for split in ("validation", "test"):
        with pytest.raises(DataError) as e:
            val_dataset([], split)
        assert_data_error(e, f"{split} set: no {split} images")


def test_val_dataset_whole_images_batch_1():
    images = [noise(31, 45), noise(20, 16)]
    pairs = list(val_dataset(pairs_of(images, 2)))
    assert len(pairs) == 2
    for img, (lr, hr) in zip(images, pairs):
        assert lr.dtype == tf.float32 and hr.dtype == tf.float32
        want_hr, want_lr = make_lr(img, 2)
        assert lr.shape == (1, img.shape[0] // 2, img.shape[1] // 2, 3)
        assert hr.shape == (1, lr.shape[1] * 2, lr.shape[2] * 2, 3)
        np.testing.assert_array_equal(lr.numpy()[0], want_lr.numpy())
        np.testing.assert_array_equal(hr.numpy()[0], want_hr.numpy())
