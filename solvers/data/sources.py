"""Image sources → lists of aligned (LR, HR) pairs, decoded once and kept in memory.

Sources: the photos scikit-image ships (the default), a folder of HR images (LR made by bicubic
downscaling), a folder of HR images with a folder of matching LR images, and DIV2K's official
layout (its supplied LR images). Every bad input raises DataError naming the folder or file.

Each source gives three disjoint splits: training; validation, which every selection step sees
(trial scores, the tuner's winner, the retrain's best epoch); and test, which none sees, so the
figures a report claims are not inflated by having been chosen on the same images.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

from solvers.config import ConfigError

# The bundled photos (no download; grayscale ones become RGB by stacking). Validation has 8 images
# of varied content, since the winner is picked on it: two photos made the pick depend on two
# images' quirks. Test holds the rest back for the final figures only.
SKIMAGE_TRAIN = ("astronaut", "hubble_deep_field", "retina", "immunohistochemistry",
                 "stereo_motorcycle")
SKIMAGE_VAL = ("chelsea", "coffee", "coins", "brick", "grass", "page", "cell", "microaneurysms")
SKIMAGE_TEST = ("rocket", "camera", "moon", "clock", "gravel", "text")
# Which split rule made the images a run validated on, recorded in run.yaml and baselines.yaml
# (data.split): results from before the three-way split (none recorded) used other validation
# images, so their baselines must not match a run of today, nor a run resume under today's rule.
SPLIT_VERSION = 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SCALES = (2, 3, 4)
# DIV2K's test HR images are not public: its validation set is split in two halves instead.
DIV2K_TRAIN, DIV2K_VAL, DIV2K_TEST = range(1, 801), range(801, 851), range(851, 901)
MIN_FOLDER_IMAGES = 3  # one each for training, validation and test
MEMORY_SHARE = 0.4  # decoded images may use this share of available memory (copies while packing)


class DataError(ConfigError):
    """A bad data source: the one-line message names the folder or file and what is wrong."""


@dataclass(frozen=True)
class Pair:
    """One image: `lr` uint8 (h, w, 3) and `hr` uint8 (h·scale, w·scale, 3), aligned."""
    name: str
    lr: np.ndarray
    hr: np.ndarray


def make_lr(hr, scale):
    """(hr_cropped, lr), float32 in [0, 255].

    HR is cropped (top-left) to a multiple of scale; LR is its antialiased bicubic downscale,
    rounded and clipped like an 8-bit image (as MATLAB imresize made DIV2K's LR images).
    """
    hr = tf.cast(tf.convert_to_tensor(hr), tf.float32)
    lr_h, lr_w = tf.shape(hr)[0] // scale, tf.shape(hr)[1] // scale
    hr = hr[: lr_h * scale, : lr_w * scale, :]
    # antialias=True widens the bicubic kernel with the scale factor, as imresize does; without
    # it, downscaling merely samples the HR image and aliases high frequencies.
    lr = tf.image.resize(hr, tf.stack([lr_h, lr_w]), method="bicubic", antialias=True)
    # Round half up (MATLAB's uint8 conversion), not tf.round's half-to-even.
    lr = tf.floor(tf.clip_by_value(lr, 0.0, 255.0) + 0.5)
    return hr, lr


def bicubic_pair(name, hr, scale):
    """Pair with LR made from `hr` by make_lr."""
    hr, lr = make_lr(hr, scale)
    return Pair(name, tf.cast(lr, tf.uint8).numpy(), tf.cast(hr, tf.uint8).numpy())


def read_image(path, what="DATA"):
    """One image file as uint8 HxWx3 RGB (grayscale, palette and RGBA converted)."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: Image.open is lazy and would not notice a truncated file
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{what}: {path}: cannot read image ({reason})") from None


def list_images(folder, what="DATA"):
    """The PNG/JPEG files directly in `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{what}: {folder}: folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{what}: {folder}: not a directory (need a folder of PNG/JPEG images)")
    paths = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not paths:
        raise DataError(f"{what}: {folder}: no PNG/JPEG images found")
    return paths


def check_memory(paths, scale, what="DATA"):
    """DataError when decoding every image would not fit in memory (sizes read from headers)."""
    pixels = 0
    for path in paths:
        try:
            with Image.open(path) as img:
                pixels += img.size[0] * img.size[1]
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{what}: {path}: cannot read image ({exc})") from None
    needed = pixels * 3 * (1 + 1 / scale**2)
    available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > MEMORY_SHARE * available:
        raise DataError(f"{what}: {len(paths)} images need {needed / 2**30:.1f} GiB decoded, more "
                        f"than {MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available; "
                        "use fewer (TRAIN_IMAGES=n, VAL_IMAGES=n, TEST_IMAGES=n)")


def _lr_for(hr_path, lr_paths, scale, what):
    """The LR file matching an HR file: the same stem, or DIV2K's `<stem>x<scale>`."""
    for stem in (hr_path.stem, f"{hr_path.stem}x{scale}"):
        if stem in lr_paths:
            return lr_paths[stem]
    raise DataError(f"{what}: no LR image for {hr_path.name} (looked for {hr_path.stem}.* and "
                    f"{hr_path.stem}x{scale}.*)")


def paired(hr_path, lr_path, scale, what="LR_DATA"):
    """Pair from an HR file and its LR file; their sizes must agree at `scale`."""
    hr, lr = read_image(hr_path, what), read_image(lr_path, what)
    expected = (hr.shape[0] // scale, hr.shape[1] // scale)
    if lr.shape[:2] != expected:
        raise DataError(f"{what}: {lr_path}: LR is {lr.shape[0]}x{lr.shape[1]} but HR "
                        f"{hr_path.name} is {hr.shape[0]}x{hr.shape[1]}: expected "
                        f"{expected[0]}x{expected[1]} at scale {scale}")
    return Pair(hr_path.stem, lr, hr[: expected[0] * scale, : expected[1] * scale])


def folder_pairs(hr_paths, scale, lr_folder=None, what="DATA"):
    """Pairs for HR files: LR read from `lr_folder` when given, else made by bicubic downscaling."""
    if lr_folder is None:
        return [bicubic_pair(p.stem, read_image(p, what), scale) for p in hr_paths]
    lr_paths = {p.stem: p for p in list_images(lr_folder, "LR_DATA")}
    return [paired(p, _lr_for(p, lr_paths, scale, f"LR_DATA: {lr_folder}"), scale)
            for p in hr_paths]


def split(items):
    """(train, val, test): a fixed split by sorted order. Every 10th item from index 9 validates
    and every 10th from index 8 tests; with fewer than 10 items, the last validates and the one
    before tests. Needs at least 3 items (load_pairs checks) for all three to be non-empty."""
    if len(items) >= 10:
        val_idx = {i for i in range(len(items)) if i % 10 == 9}
        test_idx = {i for i in range(len(items)) if i % 10 == 8}
    else:
        val_idx, test_idx = {len(items) - 1}, {len(items) - 2}
    return ([x for i, x in enumerate(items) if i not in val_idx | test_idx],
            [x for i, x in enumerate(items) if i in val_idx],
            [x for i, x in enumerate(items) if i in test_idx])


def div2k_paths(root, scale):
    """(train, val, test) lists of (hr path, lr path) from DIV2K's official layout: train
    0001-0800, validation 0801-0850 and test 0851-0900, both from DIV2K_valid_* (images missing
    from the tree are skipped; a missing folder or an empty split is an error)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"DIV2K_ROOT: {root}: folder does not exist")
    result = {}
    for key, part, numbers in (("train", "train", DIV2K_TRAIN), ("val", "valid", DIV2K_VAL),
                               ("test", "valid", DIV2K_TEST)):
        hr_dir = root / f"DIV2K_{part}_HR"
        lr_dir = root / f"DIV2K_{part}_LR_bicubic" / f"X{scale}"
        for folder in (hr_dir, lr_dir):
            if not folder.is_dir():
                raise DataError(f"DIV2K_ROOT: {folder}: folder missing (expected DIV2K's official "
                                f"layout; `make div2k` downloads it)")
        pairs = [(hr_dir / f"{n:04d}.png", lr_dir / f"{n:04d}x{scale}.png") for n in numbers]
        result[key] = [(hr, lr) for hr, lr in pairs if hr.is_file()]
        for hr, lr in result[key]:
            if not lr.is_file():
                raise DataError(f"DIV2K_ROOT: {lr}: missing (the LR image of {hr.name})")
        if not result[key]:
            raise DataError(f"DIV2K_ROOT: {hr_dir}: no images named {numbers[0]:04d}.png ... "
                            f"{numbers[-1]:04d}.png (the {key} split)")
    return result["train"], result["val"], result["test"]


def load_pairs(data=None, scale=3, lr_data=None, div2k_root=None, train_images=None,
               val_images=None, test_images=None):
    """(train pairs, validation pairs, test pairs) from the source a run names.

    data None or "skimage": scikit-image's photos; "div2k": DIV2K under div2k_root; otherwise a
    folder of HR images (split by sorted name), with LR from lr_data when given. train_images /
    val_images / test_images keep only the first n of each split (a quick subset of a large set).
    """
    counts = (train_images, val_images, test_images)
    if scale not in SCALES:
        raise DataError(f"SCALE: {scale}: allowed scales are {', '.join(map(str, SCALES))}")
    if data in (None, "skimage"):
        if lr_data:
            raise DataError("LR_DATA: only with DATA=folder (the default photos have no LR images)")
        return tuple(_first([bicubic_pair(n, hr, scale) for n, hr in _skimage(names)], count)
                     for names, count in zip((SKIMAGE_TRAIN, SKIMAGE_VAL, SKIMAGE_TEST), counts))
    if data == "div2k":
        if not div2k_root:
            raise DataError("DIV2K_ROOT: not set; DATA=div2k needs DIV2K_ROOT=path")
        parts = [_first(p, n) for p, n in zip(div2k_paths(div2k_root, scale), counts)]
        check_memory([hr for part in parts for hr, _ in part], scale, "DIV2K_ROOT")
        return tuple([paired(hr, lr, scale, "DIV2K_ROOT") for hr, lr in part] for part in parts)
    paths = list_images(data)
    if len(paths) < MIN_FOLDER_IMAGES:
        raise DataError(f"DATA: {data}: only {len(paths)} image{'s' * (len(paths) > 1)} found, "
                        f"need at least {MIN_FOLDER_IMAGES} (one each for training, validation "
                        "and test)")
    parts = [_first(p, n) for p, n in zip(split(paths), counts)]
    check_memory([p for part in parts for p in part], scale)
    return tuple(folder_pairs(part, scale, lr_data) for part in parts)


# The load_pairs arguments a run records (run.yaml's `data`, baselines.yaml's).
# load_pairs' options: what names a run's images (run.yaml's and sensitivity.yaml's `data`).
DATA_KEYS = ("data", "lr_data", "div2k_root", "train_images", "val_images", "test_images")


def data_options(namespace):
    """{DATA_KEYS: value} of parsed command-line options (an option a command lacks: None)."""
    return {k: getattr(namespace, k, None) for k in DATA_KEYS}


def recorded_pairs(data, scale, **overrides):
    """load_pairs for the source a run recorded (run.yaml's `data` mapping; other keys, such as
    `split`, ignored), with `overrides` (e.g. val_images=1) replacing recorded values."""
    options = {k: v for k, v in (data or {}).items() if k in DATA_KEYS}
    return load_pairs(scale=scale, **{**options, **overrides})


def eval_pairs(folder, scale, lr_folder=None):
    """Every image of an evaluation folder as a Pair (no split)."""
    if scale not in SCALES:
        raise DataError(f"SCALE: {scale}: allowed scales are {', '.join(map(str, SCALES))}")
    return folder_pairs(list_images(folder, "EVAL_DATA"), scale, lr_folder, "EVAL_DATA")


def _first(items, count):
    """The first `count` items (all of them when count is None)."""
    return items if count is None else items[:count]


def _skimage(names):
    """(name, uint8 HxWx3) for the named photos bundled with scikit-image (no download;
    skimage.data.clock reads clock_motion.png, immunohistochemistry ihc.png)."""
    for name in names:
        if name == "stereo_motorcycle":
            # (left, right, disparity): both views are photos; the disparity map is not.
            left, right, _ = skimage.data.stereo_motorcycle()
            yield from ((f"{name}_left", left), (f"{name}_right", right))
            continue
        image = getattr(skimage.data, name)()
        # Grayscale photos become RGB with three equal channels: the network takes RGB.
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        yield name, np.ascontiguousarray(image, dtype=np.uint8)
