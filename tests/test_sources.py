"""Tests for solvers.data.sources: image sources, LR generation, pairing, DIV2K."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from solvers.config import ConfigError
from solvers.data import sources
from solvers.data.sources import (DataError, eval_pairs, list_images, load_pairs, make_lr, read_image,
                             split)

RNG = np.random.default_rng(1234)


def noise(h, w):
    """Random uint8 RGB image: crops at different places are all different."""
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def assert_data_error(excinfo, *parts):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for part in parts:
        assert str(part) in msg, msg


def load_images(folder):
    """HR images of a folder as split for training/validation/test (no LR made)."""
    return tuple([read_image(p) for p in part] for part in split(list_images(folder)))


# ---------------------------------------------------------------- loading


def test_skimage_source_gives_6_train_8_val_6_test_disjoint_uint8_rgb():
    train, val, test = load_pairs("skimage", scale=3)
    assert (len(train), len(val), len(test)) == (6, 8, 6)
    for pair in train + val + test:
        assert pair.hr.dtype == np.uint8 and pair.lr.dtype == np.uint8
        assert pair.hr.ndim == 3 and pair.hr.shape[2] == 3 and min(pair.hr.shape[:2]) >= 100
        assert pair.hr.shape[:2] == (pair.lr.shape[0] * 3, pair.lr.shape[1] * 3)
    # Selection (validation) and reporting (test) never share an image, nor with training.
    names = [[p.name for p in part] for part in (train, val, test)]
    assert sum(map(len, names)) == len(set().union(*names))
    assert names[1][:2] == ["chelsea", "coffee"] and names[2][0] == "rocket"
    # stereo_motorcycle left and right views are both in train (near-duplicates, same size).
    assert train[-1].hr.shape == train[-2].hr.shape
    assert not np.array_equal(train[-1].hr, train[-2].hr)
    # Grayscale photos (camera) become RGB with equal channels.
    camera = test[1].hr
    assert np.array_equal(camera[..., 0], camera[..., 1]) and np.array_equal(camera[..., 0],
                                                                               camera[..., 2])
    # None is the same source; the first n of each split.
    train, val, test = load_pairs(None, scale=3, train_images=1, val_images=2, test_images=1)
    assert [[p.name for p in part] for part in (train, val, test)] == \
        [["astronaut"], ["chelsea", "coffee"], ["rocket"]]


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
    train, val, test = load_images(str(tmp_path))
    assert (len(train), len(val), len(test)) == (2, 1, 1)  # fewer than 10: last val, one before test
    assert all(img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
               for img in train + val + test)
    np.testing.assert_array_equal(train[0], rgb)
    assert train[1].shape == (8, 6, 3)
    assert np.array_equal(train[1][..., 0], train[1][..., 1])  # gray -> equal channels
    assert np.abs(train[1][..., 0].astype(int) - gray).mean() < 8  # JPEG is lossy
    np.testing.assert_array_equal(test[0], rgba[..., :3])  # alpha dropped, colours kept
    np.testing.assert_array_equal(val[0], np.asarray(pal.convert("RGB")))


def test_folder_split_every_tenth_by_sorted_name(tmp_path):
    for i in reversed(range(20)):  # written out of order: sorting must come from the name
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / f"img{i:02d}.png")
    train, val, test = load_images(str(tmp_path))
    assert [int(img[0, 0, 0]) for img in val] == [9, 19]
    assert [int(img[0, 0, 0]) for img in test] == [8, 18]
    assert [int(img[0, 0, 0]) for img in train] == [i for i in range(20)
                                                    if i not in (8, 9, 18, 19)]


def test_folder_split_is_disjoint_with_a_non_empty_test_split():
    for n in (3, 4, 9, 10, 11, 25):
        train, val, test = split(list(range(n)))
        assert train and val and test, n
        assert sorted(train + val + test) == list(range(n)), n  # disjoint, nothing lost
    assert split([0, 1, 2]) == ([0], [2], [1])


def test_bad_folders_raise_data_error_naming_them(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(DataError) as e:
        load_pairs(str(missing))
    assert_data_error(e, missing)

    a_file = tmp_path / "file.png"
    Image.fromarray(noise(4, 4)).save(a_file)
    with pytest.raises(DataError) as e:
        load_pairs(str(a_file))
    assert_data_error(e, a_file)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_pairs(str(empty))
    assert_data_error(e, empty, "no PNG/JPEG images found")

    text_only = tmp_path / "text_only"
    text_only.mkdir()
    (text_only / "readme.txt").write_text("hello")
    with pytest.raises(DataError) as e:
        load_pairs(str(text_only))
    assert_data_error(e, text_only, "no PNG/JPEG images found")

    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(noise(4, 4)).save(single / "only.png")
    with pytest.raises(DataError) as e:
        load_pairs(str(single))
    assert_data_error(e, single, "only 1 image found", "need at least 3")
    Image.fromarray(noise(4, 4)).save(single / "other.png")
    with pytest.raises(DataError) as e:
        load_pairs(str(single))
    assert_data_error(e, single, "only 2 images found, need at least 3",
                      "training, validation and test")
    assert issubclass(DataError, ConfigError)


def test_truncated_png_raises_data_error_naming_file(tmp_path):
    Image.fromarray(noise(8, 8)).save(tmp_path / "a_good.png")
    Image.fromarray(noise(8, 8)).save(tmp_path / "c_good.png")
    bad = tmp_path / "b_cut.png"
    Image.fromarray(noise(64, 64)).save(bad)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        load_pairs(str(tmp_path))
    assert_data_error(e, bad)


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


# ---------------------------------------------------------------- paired folders and DIV2K


def save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return array


def test_paired_folders_match_by_name_and_use_the_supplied_lr(tmp_path):
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    hrs = {name: save(hr_dir / f"{name}.png", noise(31, 36)) for name in ("a", "b", "c")}
    # One LR under the same name, the others in DIV2K's <stem>x<scale> form.
    lrs = {"a": save(lr_dir / "a.png", noise(10, 12)), "b": save(lr_dir / "bx3.png", noise(10, 12)),
           "c": save(lr_dir / "cx3.png", noise(10, 12))}
    train, val, test = load_pairs(str(hr_dir), 3, lr_data=str(lr_dir))
    assert [[p.name for p in part] for part in (train, val, test)] == [["a"], ["c"], ["b"]]
    for pair in train + val + test:
        np.testing.assert_array_equal(pair.lr, lrs[pair.name])  # read, not recomputed
        np.testing.assert_array_equal(pair.hr, hrs[pair.name][:30, :36])  # cropped to 3·LR
    assert [p.name for p in eval_pairs(hr_dir, 3, lr_dir)] == ["a", "b", "c"]


def test_paired_folder_errors_name_the_file(tmp_path):
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    for name in ("a", "b", "c"):
        save(hr_dir / f"{name}.png", noise(30, 36))
    save(lr_dir / "a.png", noise(10, 12))
    save(lr_dir / "c.png", noise(10, 12))
    with pytest.raises(DataError) as e:
        load_pairs(str(hr_dir), 3, lr_data=str(lr_dir))
    assert_data_error(e, "no LR image for b.png", "bx3")
    save(lr_dir / "b.png", noise(11, 12))
    with pytest.raises(DataError) as e:
        load_pairs(str(hr_dir), 3, lr_data=str(lr_dir))
    assert_data_error(e, lr_dir / "b.png", "LR is 11x12", "HR b.png is 30x36", "expected 10x12")
    with pytest.raises(DataError) as e:
        load_pairs(str(hr_dir), 3, lr_data=str(tmp_path / "nolr"))
    assert_data_error(e, "LR_DATA", "nolr", "does not exist")
    with pytest.raises(DataError) as e:
        load_pairs(str(hr_dir), 5)
    assert_data_error(e, "SCALE: 5", "2, 3, 4")
    with pytest.raises(DataError) as e:
        load_pairs(None, 3, lr_data=str(lr_dir))
    assert_data_error(e, "LR_DATA: only with DATA=folder")


def fake_div2k(root, scale=3, train=(1, 2, 3), valid=(801, 802, 851)):
    """A tiny tree with DIV2K's official names (valid: 0801-0850 validate, 0851-0900 test)."""
    for part, numbers in (("train", train), ("valid", valid)):
        for n in numbers:
            save(root / f"DIV2K_{part}_HR" / f"{n:04d}.png", noise(6 * scale, 5 * scale))
            save(root / f"DIV2K_{part}_LR_bicubic" / f"X{scale}" / f"{n:04d}x{scale}.png",
                 noise(6, 5))
    return root


def test_div2k_reader_uses_the_official_layout(tmp_path):
    root = fake_div2k(tmp_path / "DIV2K")
    train, val, test = load_pairs("div2k", 3, div2k_root=str(root))
    assert [p.name for p in train] == ["0001", "0002", "0003"]
    assert [p.name for p in val] == ["0801", "0802"] and [p.name for p in test] == ["0851"]
    supplied = read_image(root / "DIV2K_valid_LR_bicubic" / "X3" / "0802x3.png")
    np.testing.assert_array_equal(val[1].lr, supplied)
    train, val, test = load_pairs("div2k", 3, div2k_root=str(root), train_images=2, val_images=1,
                                  test_images=1)
    assert (len(train), len(val), len(test)) == (2, 1, 1)


def test_div2k_errors(tmp_path):
    with pytest.raises(DataError) as e:
        load_pairs("div2k", 3)
    assert_data_error(e, "DIV2K_ROOT: not set")
    root = fake_div2k(tmp_path / "DIV2K")
    with pytest.raises(DataError) as e:
        load_pairs("div2k", 2, div2k_root=str(root))  # no X2 folder
    assert_data_error(e, "DIV2K_train_LR_bicubic/X2", "folder missing")
    (root / "DIV2K_train_LR_bicubic" / "X3" / "0002x3.png").unlink()
    with pytest.raises(DataError) as e:
        load_pairs("div2k", 3, div2k_root=str(root))
    assert_data_error(e, "0002x3.png: missing")
    no_test = fake_div2k(tmp_path / "no_test", valid=(801,))  # nothing in 0851-0900
    with pytest.raises(DataError) as e:
        load_pairs("div2k", 3, div2k_root=str(no_test))
    assert_data_error(e, "0851.png ... 0900.png", "test split")


def test_a_data_set_too_big_for_memory_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "hr"
    for i in range(3):
        save(folder / f"{i}.png", noise(30, 30))
    monkeypatch.setattr(sources, "MEMORY_SHARE", 1e-12)
    with pytest.raises(DataError) as e:
        load_pairs(str(folder), 3)
    assert_data_error(e, "3 images need", "GiB available", "TRAIN_IMAGES")


def test_results_from_before_the_three_way_split_match_nothing_of_today():
    """run.yaml and baselines.yaml record data.split: an older file (none) validated on other
    images, so its run is not continued and its baselines judge no run of today; test_images
    absent reads as None, the default."""
    from solvers.data.sources import SPLIT_VERSION
    from solvers.run_folder import RESUME_KEYS, differences
    from solvers.search import baselines
    old = {"data": {"data": None, "lr_data": None, "div2k_root": None, "train_images": None,
                    "val_images": None}}
    today = {"data": {**old["data"], "test_images": None, "split": SPLIT_VERSION}}
    assert differences(old, today, RESUME_KEYS) == [("data.split", None, SPLIT_VERSION)]
    assert baselines.differences(old, today)[0][0] == "data.split"
    assert differences(today, {"data": {**today["data"], "test_images": 2}}, RESUME_KEYS) == \
        [("data.test_images", None, 2)]
