"""tf.data pipelines over (LR, HR) pairs from solvers.sources: random training patches, whole
validation images. Pixels are float32 in [0, 255] once they leave this module; images are HxWx3 RGB.
"""

import numpy as np
import tensorflow as tf

from solvers.sources import DataError


def check_patch_fits(pairs, patch, name) -> None:
    """DataError if any pair's LR image (height x width) is smaller than patch x patch."""
    for pair in pairs:
        lr_h, lr_w = pair.lr.shape[:2]
        if lr_h < patch or lr_w < patch:
            raise DataError(f"DATA: {name}: image {pair.name} is {lr_h}x{lr_w} LR pixels, smaller "
                            f"than the {patch}x{patch} training patch (PATCH)")


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


def train_dataset(pairs, scale: int, patch: int, batch: int, seed: int) -> tf.data.Dataset:
    """Infinite dataset of (lr, hr) float32 batches, (batch, patch, patch, 3) and
    (batch, patch*scale, patch*scale, 3), static shapes, random crops and dihedral transforms.

    Element i draws its randomness from stateless ops seeded by (seed, i), so the same seed
    gives the same batches whatever the parallelism or the number of runs.
    """
    if not pairs:
        raise DataError("DATA: training set: no training images")
    check_patch_fits(pairs, patch, "training set")
    lr_flat, lr_offsets, lr_shapes = _pack([p.lr for p in pairs])
    hr_flat, hr_offsets, hr_shapes = _pack([p.hr for p in pairs])
    n_images = len(pairs)
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


def val_dataset(pairs) -> tf.data.Dataset:
    """Finite dataset of whole-image (lr, hr) float32 pairs, each of shape (1, h, w, 3).

    The pairs stay in memory as uint8 in one flat buffer; each element is a slice of it.
    """
    if not pairs:
        raise DataError("DATA: validation set: no validation images")
    lr_flat, lr_offsets, lr_shapes = _pack([p.lr for p in pairs])
    hr_flat, hr_offsets, hr_shapes = _pack([p.hr for p in pairs])

    def unpack(flat, offsets, shapes, k):
        h, w = shapes[k][0], shapes[k][1]
        img = tf.slice(flat, [offsets[k]], [h * w * 3])
        return tf.cast(tf.reshape(img, tf.stack([1, h, w, 3])), tf.float32)

    def element(k):
        return (unpack(lr_flat, lr_offsets, lr_shapes, k),
                unpack(hr_flat, hr_offsets, hr_shapes, k))

    return tf.data.Dataset.range(len(pairs)).map(element)
