"""Tests for solvers.data: image loading, LR generation, training and validation pipelines."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from solvers.config import ConfigError
from solvers.data import (DataError, check_patch_fits, load_images, make_lr, train_dataset,
                          val_dataset)

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


# ---------------------------------------------------------------- load_images


def test_skimage_source_gives_7_train_2_val_uint8_rgb():
    for source in (None, "skimage"):
        train, val = load_images(source)
        assert (len(train), len(val)) == (7, 2)
        for img in train + val:
            assert isinstance(img, np.ndarray) and img.dtype == np.uint8
            assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 300
    # stereo_motorcycle left and right views are both in train (near-duplicates, same size).
    assert train[-1].shape == train[-2].shape and not np.array_equal(train[-1], train[-2])


def test_folder_source_converts_modes_and_holds_out_last(tmp_path):
    rgb, gray = noise(9, 7), noise(8, 6)[..., 0]
    rgba = np.dstack([noise(5, 4), np.full((5, 4), 10, np.uint8)])
    pal = Image.fromarray(noise(6, 6)).convert("P")
    Image.fromarray(rgb).save(tmp_path / "a_rgb.png")
    Image.fromarray(gray).save(tmp_path / "b_gray.jpg", quality=95)
    Image.fromarray(rgba).save(tmp_path / "c_rgba.PNG")  # upper-case suffix still counts
    pal.save(tmp_path / "d_pal.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()  # a folder, not an image file
    train, val = load_images(str(tmp_path))
    assert len(train) == 3 and len(val) == 1
    assert all(img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
               for img in train + val)
    np.testing.assert_array_equal(train[0], rgb)
    assert train[1].shape == (8, 6, 3)
    assert np.array_equal(train[1][..., 0], train[1][..., 1])  # gray -> equal channels
    assert np.abs(train[1][..., 0].astype(int) - gray).mean() < 8  # JPEG is lossy
    np.testing.assert_array_equal(train[2], rgba[..., :3])  # alpha dropped, colours kept
    np.testing.assert_array_equal(val[0], np.asarray(pal.convert("RGB")))


def test_folder_split_every_tenth_by_sorted_name(tmp_path):
    for i in reversed(range(20)):  # written out of order: sorting must come from the name
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / f"img{i:02d}.png")
    train, val = load_images(str(tmp_path))
    assert [int(img[0, 0, 0]) for img in val] == [9, 19]
    assert [int(img[0, 0, 0]) for img in train] == [i for i in range(20) if i not in (9, 19)]


def test_bad_folders_raise_data_error_naming_them(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as e:
        load_images(str(missing))
    assert_data_error(e, missing)

    a_file = tmp_path / "file.png"
    Image.fromarray(noise(4, 4)).save(a_file)
    with pytest.raises(DataError) as e:
        load_images(str(a_file))
    assert_data_error(e, a_file)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_images(str(empty))
    assert_data_error(e, empty, "no PNG/JPEG images found")

    text_only = tmp_path / "text_only"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("hello")
    with pytest.raises(DataError) as e:
        load_images(str(text_only))
    assert_data_error(e, text_only, "no PNG/JPEG images found")

    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(noise(4, 4)).save(single / "only.png")
    with pytest.raises(DataError) as e:
        load_images(str(single))
    assert_data_error(e, single)
    assert issubclass(DataError, ConfigError)


def test_truncated_png_raises_data_error_naming_file(tmp_path):
    Image.fromarray(noise(8, 8)).save(tmp_path / "a_good.png")
    bad = tmp_path / "b_cut.png"
    Image.fromarray(noise(64, 64)).save(bad)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        load_images(str(tmp_path))
    assert_data_error(e, bad)


def test_check_patch_fits():
    images = [np.zeros((200, 200, 3), np.uint8), np.zeros((80, 121, 3), np.uint8)]
    check_patch_fits(images, 2, 40, "mysource")  # 100x100 and 40x60 LR: both fit
    with pytest.raises(DataError) as e:
        check_patch_fits(images, 2, 64, "mysource")
    assert str(e.value) == ("DATA: mysource: image 1 is 40x60 LR pixels, smaller than the "
                            "64x64 training patch (PATCH)")


# ---------------------------------------------------------------- make_lr


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_make_lr_crops_and_shapes(scale):
    img = noise(37, 50)
    for inp in (img, tf.constant(img)):
        hr, lr = make_lr(inp, scale)
        h, w = 37 // scale, 50 // scale
        assert hr.dtype == tf.float32 and lr.dtype == tf.float32
        assert tuple(hr.shape) == (h * scale, w * scale, 3)
        assert tuple(lr.shape) == (h, w, 3)
        np.testing.assert_array_equal(hr.numpy(), img[: h * scale, : w * scale].astype(np.float32))
        lr = lr.numpy()
        np.testing.assert_array_equal(lr, np.round(lr))  # integral, like an 8-bit image
        assert lr.min() >= 0 and lr.max() <= 255


def test_make_lr_constant_image_stays_constant():
    _, lr = make_lr(np.full((30, 45, 3), 77, np.uint8), 3)
    np.testing.assert_array_equal(lr.numpy(), 77)


def test_make_lr_smooth_image_close_to_area_average():
    yy, xx = np.mgrid[0:64, 0:96]
    smooth = (127.5 + 100 * np.sin(yy / 10) * np.cos(xx / 13)).astype(np.float32)
    smooth = np.repeat(smooth[..., None], 3, axis=2)
    _, lr = make_lr(smooth, 4)
    box = smooth.reshape(16, 4, 24, 4, 3).mean(axis=(1, 3))
    assert np.abs(lr.numpy() - box).mean() < 1.5


def test_make_lr_antialiases_checkerboard():
    board = (np.indices((60, 60)).sum(axis=0) % 2 * 255).astype(np.float32)
    board = np.repeat(board[..., None], 3, axis=2)
    _, lr = make_lr(board, 3)
    assert np.abs(lr.numpy() - 127.5).max() <= 5  # antialiased: the local mean
    # Without antialiasing bicubic just samples the board: pure black and white survive.
    aliased = tf.image.resize(board, (20, 20), method="bicubic").numpy()
    assert aliased.min() < 5 and aliased.max() > 250


# ---------------------------------------------------------------- train_dataset


def first_batches(ds, n):
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(n)]


def test_train_dataset_shapes_and_dtype():
    ds = train_dataset([noise(30, 26), noise(22, 34)], scale=2, patch=5, batch=4, seed=0)
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
    ds = train_dataset(images, scale=scale, patch=patch, batch=16, seed=3)
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
    images = [noise(30, 26), noise(22, 34)]
    a = first_batches(train_dataset(images, 2, 5, 4, seed=7), 3)
    b = first_batches(train_dataset(images, 2, 5, 4, seed=7), 3)
    c = first_batches(train_dataset(images, 2, 5, 4, seed=8), 3)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(a, b):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_train_dataset_rejects_too_small_images():
    with pytest.raises(DataError):
        train_dataset([noise(30, 26), noise(8, 40)], scale=2, patch=5, batch=2, seed=0)


# ---------------------------------------------------------------- val_dataset


def test_val_dataset_whole_images_batch_1():
    images = [noise(31, 45), noise(20, 16)]
    pairs = list(val_dataset(images, 2))
    assert len(pairs) == 2
    for img, (lr, hr) in zip(images, pairs):
        assert lr.dtype == tf.float32 and hr.dtype == tf.float32
        want_hr, want_lr = make_lr(img, 2)
        assert lr.shape == (1, img.shape[0] // 2, img.shape[1] // 2, 3)
        assert hr.shape == (1, lr.shape[1] * 2, lr.shape[2] * 2, 3)
        np.testing.assert_array_equal(lr.numpy()[0], want_lr.numpy())
        np.testing.assert_array_equal(hr.numpy()[0], want_hr.numpy())
