"""Training and validation data: HR images, their bicubic LR versions, tf.data pipelines.

Pixels are float32 in [0, 255] once they leave this module; images are HxWx3 RGB.
"""

from pathlib import Path

import numpy as np
import skimage.data
import tensorflow as tf
from PIL import Image

from solvers.config import ConfigError

SKIMAGE_TRAIN = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry",
                 "stereo_motorcycle")
SKIMAGE_VAL = ("chelsea", "coffee")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(ConfigError):
    """A bad data source: the one-line message names the folder or file and what is wrong."""


# ---------------------------------------------------------------- loading


def _skimage_images(names: tuple[str, ...]) -> list[np.ndarray]:
    """The named photos bundled with scikit-image (no download), uint8 HxWx3."""
    images = []
    for name in names:
        if name == "stereo_motorcycle":
            # (left, right, disparity): both views are photos; the disparity map is not.
            left, right, _ = skimage.data.stereo_motorcycle()
            images += [left, right]
        else:
            images.append(getattr(skimage.data, name)())
    return [np.ascontiguousarray(img[..., :3], dtype=np.uint8) for img in images]


def _read_image(path: Path) -> np.ndarray:
    """One image file as uint8 HxWx3 RGB; DataError naming the file if Pillow cannot decode it."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now: Image.open is lazy and would not notice a truncated file
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"DATA: {path}: cannot read image ({reason})") from exc


def _folder_images(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images directly in folder, sorted by name, split train/val (every 10th to val)."""
    if not folder.exists():
        raise DataError(f"DATA: {folder}: folder does not exist")
    if not folder.is_dir():
        raise DataError(f"DATA: {folder}: not a directory (need a folder of PNG/JPEG images)")
    paths = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.name)
    if not paths:
        raise DataError(f"DATA: {folder}: no PNG/JPEG images found")
    if len(paths) < 2:
        raise DataError(f"DATA: {folder}: only 1 image found, need at least 2 "
                        "(one for training, one for validation)")
    images = [_read_image(p) for p in paths]
    # A fixed split by sorted order, so every run (and every trial) validates on the same images.
    val_idx = {i for i in range(len(images)) if i % 10 == 9} or {len(images) - 1}
    train = [img for i, img in enumerate(images) if i not in val_idx]
    val = [img for i, img in enumerate(images) if i in val_idx]
    return train, val


def load_images(source: str | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """HR (train, val) images as uint8 HxWx3 RGB arrays.

    source None or "skimage": the photos bundled with scikit-image (SKIMAGE_TRAIN / SKIMAGE_VAL;
    both stereo_motorcycle views go to training so near-duplicates never straddle the split).
    Otherwise a folder: every *.png/*.jpg/*.jpeg directly inside it, sorted by name; images at
    indices 9, 19, ... are validation, or the last one if that gives none. Raises DataError.
    """
    if source is None or source == "skimage":
        return _skimage_images(SKIMAGE_TRAIN), _skimage_images(SKIMAGE_VAL)
    return _folder_images(Path(source))


# ---------------------------------------------------------------- LR images


def make_lr(hr: np.ndarray | tf.Tensor, scale: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(hr_cropped, lr), float32 in [0, 255].

    HR is cropped (top-left) to a multiple of scale; LR is its antialiased bicubic downscale,
    rounded and clipped like an 8-bit image (as MATLAB imresize made DIV2K's LR images).
    """
    hr = tf.cast(tf.convert_to_tensor(hr), tf.float32)
    lr_h, lr_w = tf.shape(hr)[0] // scale, tf.shape(hr)[1] // scale
    hr = hr[: lr_h * scale, : lr_w * scale, :]
    # antialias=True makes the bicubic kernel widen with the scale factor, as imresize does;
    # without it, downscaling merely samples the HR image and aliases high frequencies.
    lr = tf.image.resize(hr, tf.stack([lr_h, lr_w]), method="bicubic", antialias=True)
    # Round half up (MATLAB's uint8 conversion), not tf.round's half-to-even.
    lr = tf.floor(tf.clip_by_value(lr, 0.0, 255.0) + 0.5)
    return hr, lr


def check_patch_fits(images, scale, patch, name) -> None:
    """DataError if any image's LR size (h//scale x w//scale, height x width) is below patch.

    The image number in the message is its 0-based index in `images`; name is the data source.
    """
    for i, img in enumerate(images):
        lr_h, lr_w = img.shape[0] // scale, img.shape[1] // scale
        if lr_h < patch or lr_w < patch:
            raise DataError(f"DATA: {name}: image {i} is {lr_h}x{lr_w} LR pixels, smaller than "
                            f"the {patch}x{patch} training patch (PATCH)")


def _pack(images: list[np.ndarray]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Images of any sizes as (flat uint8 1-D tensor, int64 start offsets, int64 (h, w) shapes).

    One flat buffer holds images of different sizes with no padding, and a crop can then
    gather just the pixels it needs instead of copying a whole image per element.
    """
    arrays = [np.asarray(img, dtype=np.uint8) for img in images]
    sizes = [a.size for a in arrays]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    shapes = np.array([a.shape[:2] for a in arrays], dtype=np.int64)
    flat = np.concatenate([a.ravel() for a in arrays])
    return tf.constant(flat), tf.constant(offsets), tf.constant(shapes)


def _lr_hr_pairs(images: list[np.ndarray], scale: int) -> tuple[list, list]:
    """make_lr on every image once, both results as uint8 (their values are integral)."""
    pairs = [make_lr(img, scale) for img in images]
    hrs = [tf.cast(hr, tf.uint8).numpy() for hr, _ in pairs]
    lrs = [tf.cast(lr, tf.uint8).numpy() for _, lr in pairs]
    return lrs, hrs


# ---------------------------------------------------------------- training pipeline


def _crop(flat, offset, width, y, x, size) -> tf.Tensor:
    """size x size x 3 crop at (y, x) of the image stored row-major at flat[offset:]."""
    rows = tf.range(size, dtype=tf.int64)[:, None, None] + y
    cols = tf.range(size, dtype=tf.int64)[None, :, None] + x
    chans = tf.range(3, dtype=tf.int64)[None, None, :]
    return tf.gather(flat, offset + (rows * width + cols) * 3 + chans)  # (size, size, 3)


def _dihedral(img: tf.Tensor, flip: tf.Tensor, rot: tf.Tensor) -> tf.Tensor:
    """One of the 8 symmetries of the square: optional horizontal flip, then rot90 `rot` times."""
    img = tf.where(flip, tf.reverse(img, axis=[1]), img)
    return tf.image.rot90(img, tf.cast(rot, tf.int32))


def train_dataset(images: list[np.ndarray], scale: int, patch: int, batch: int,
                  seed: int) -> tf.data.Dataset:
    """Infinite dataset of (lr, hr) float32 batches, (batch, patch, patch, 3) and
    (batch, patch*scale, patch*scale, 3), static shapes, random crops and dihedral transforms.

    Element i draws its randomness from stateless ops seeded by (seed, i), so the same seed
    gives the same batches whatever the parallelism or the number of runs.
    """
    if not images:
        raise DataError("DATA: training set: no training images")
    check_patch_fits(images, scale, patch, "training set")
    lrs, hrs = _lr_hr_pairs(images, scale)
    lr_flat, lr_offsets, lr_shapes = _pack(lrs)
    hr_flat, hr_offsets, hr_shapes = _pack(hrs)
    n_images = len(images)
    hr_patch = patch * scale

    def element(index):
        draws = tf.random.stateless_uniform(
            [4], seed=tf.stack([tf.constant(seed, tf.int64), index]), dtype=tf.float64)
        # floor(u * n) with u in [0, 1) is uniform over 0..n-1.
        k = tf.cast(draws[0] * n_images, tf.int64)
        lr_h, lr_w = lr_shapes[k][0], lr_shapes[k][1]
        y = tf.cast(draws[1] * tf.cast(lr_h - patch + 1, tf.float64), tf.int64)
        x = tf.cast(draws[2] * tf.cast(lr_w - patch + 1, tf.float64), tf.int64)
        lr = _crop(lr_flat, lr_offsets[k], lr_w, y, x, patch)
        hr = _crop(hr_flat, hr_offsets[k], hr_shapes[k][1], y * scale, x * scale, hr_patch)
        d = tf.cast(draws[3] * 8, tf.int64)
        # float32 before the transforms: oneDNN has no uint8 kernels here and logs an error line.
        lr = _dihedral(tf.cast(lr, tf.float32), d % 2 == 1, d // 2)
        hr = _dihedral(tf.cast(hr, tf.float32), d % 2 == 1, d // 2)
        # rot90 with a tensor k loses the static shape; patches are square so restore it.
        lr = tf.ensure_shape(lr, (patch, patch, 3))
        hr = tf.ensure_shape(hr, (hr_patch, hr_patch, 3))
        return lr, hr

    ds = tf.data.Dataset.counter(dtype=tf.int64)
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- validation pipeline


def val_dataset(images: list[np.ndarray], scale: int) -> tf.data.Dataset:
    """Finite dataset of whole-image (lr, hr) float32 pairs, each of shape (1, h, w, 3).

    LR is made once here (make_lr) and kept in memory as uint8; each element is a slice.
    """
    if not images:
        raise DataError("DATA: validation set: no validation images")
    lrs, hrs = _lr_hr_pairs(images, scale)
    lr_flat, lr_offsets, lr_shapes = _pack(lrs)
    hr_flat, hr_offsets, hr_shapes = _pack(hrs)

    def unpack(flat, offsets, shapes, k):
        h, w = shapes[k][0], shapes[k][1]
        img = tf.slice(flat, [offsets[k]], [h * w * 3])
        return tf.cast(tf.reshape(img, tf.stack([1, h, w, 3])), tf.float32)

    def element(k):
        return (unpack(lr_flat, lr_offsets, lr_shapes, k),
                unpack(hr_flat, hr_offsets, hr_shapes, k))

    return tf.data.Dataset.range(len(images)).map(element)
