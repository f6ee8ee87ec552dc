"""tf.data pipelines over (LR, HR) pairs from solvers.data.sources: random training patches, whole
validation and test images. Pixels are float32 in [0, 255] once they leave this module; images are HxWx3 RGB.
"""

import numpy as np
import tensorflow as tf

from solvers.data import sources
from solvers.data.sources import DataError


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


def _crops(pixels, offsets, widths, y, x, size, transform) -> tf.Tensor:
    """A batch of size x size crops, (B, size, size, 3) float32, in one gather.

    pixels: (P, 3) every image's pixels, row-major, one after the other; offsets, widths, y, x,
    transform: (B,) int64, the first pixel and width of each crop's image, the crop's top-left
    corner, and which of the 8 symmetries of the square to apply (bits: 1 flips columns, 2 flips
    rows, 4 swaps rows and columns). The symmetry is applied to the pixel indices, not the pixels:
    flips to the row and column ramps, the swap by choosing between two (B, size, size) indices
    (a transpose would do, but oneDNN has no integer transpose here and logs an error line).
    """
    # int32 indices when they fit: the index arithmetic is most of a batch's cost.
    dtype = tf.int32 if pixels.shape[0] < 2 ** 31 else tf.int64
    offsets, widths, y, x, transform = (tf.cast(t, dtype)
                                        for t in (offsets, widths, y, x, transform))
    ramp = tf.range(size, dtype=dtype)[None, :]
    flip_cols, flip_rows = (transform & 1) > 0, (transform & 2) > 0
    rows = y[:, None] + tf.where(flip_rows[:, None], size - 1 - ramp, ramp)   # (B, size)
    cols = x[:, None] + tf.where(flip_cols[:, None], size - 1 - ramp, ramp)
    rows = offsets[:, None] + rows * widths[:, None]           # flat index of each row's start
    swap = ((transform & 4) > 0)[:, None, None]
    index = tf.where(swap, rows[:, None, :] + cols[:, :, None],  # out[i, j] = crop[j, i]
                     rows[:, :, None] + cols[:, None, :])        # out[i, j] = crop[i, j]
    return tf.cast(tf.gather(pixels, index), tf.float32)                      # (B, size, size, 3)


def train_dataset(pairs, scale: int, patch: int, batch: int, seed: int) -> tf.data.Dataset:
    """Infinite dataset of (lr, hr) float32 batches, (batch, patch, patch, 3) and
    (batch, patch*scale, patch*scale, 3), static shapes, random crops and dihedral transforms.

    Batch i draws its randomness from stateless ops seeded by (seed, i), so the same seed gives the
    same batches whatever the run. A batch is built whole (a dozen ops and one gather per side)
    rather than patch by patch, because on a 2-core machine the pipeline's CPU time is taken from
    the train step: per-patch ops cost 20 % of the step rate (`make bench`).
    """
    if not pairs:
        raise DataError("DATA: training set: no training images")
    check_patch_fits(pairs, patch, "training set")
    lr_flat, lr_offsets, lr_shapes = _pack([p.lr for p in pairs])
    hr_flat, hr_offsets, hr_shapes = _pack([p.hr for p in pairs])
    lr_pixels, hr_pixels = tf.reshape(lr_flat, (-1, 3)), tf.reshape(hr_flat, (-1, 3))
    n_images = len(pairs)

    def make_batch(index):
        draws = tf.random.stateless_uniform(
            [batch, 4], seed=tf.stack([tf.constant(seed, tf.int64), index]), dtype=tf.float64)
        # floor(u * n) with u in [0, 1) is uniform over 0..n-1.
        k = tf.cast(draws[:, 0] * n_images, tf.int64)
        lr_h, lr_w = tf.gather(lr_shapes[:, 0], k), tf.gather(lr_shapes[:, 1], k)
        y = tf.cast(draws[:, 1] * tf.cast(lr_h - patch + 1, tf.float64), tf.int64)
        x = tf.cast(draws[:, 2] * tf.cast(lr_w - patch + 1, tf.float64), tf.int64)
        transform = tf.cast(draws[:, 3] * 8, tf.int64)
        lr = _crops(lr_pixels, tf.gather(lr_offsets, k) // 3, lr_w, y, x, patch, transform)
        hr = _crops(hr_pixels, tf.gather(hr_offsets, k) // 3, tf.gather(hr_shapes[:, 1], k),
                    y * scale, x * scale, patch * scale, transform)
        return lr, hr

    # One batch ahead is enough and keeps the pipeline from competing with the step for cores.
    return tf.data.Dataset.counter(dtype=tf.int64).map(make_batch).prefetch(1)


# ---------------------------------------------------------------- validation pipeline


def val_dataset(pairs, split="validation") -> tf.data.Dataset:
    """Finite dataset of whole-image (lr, hr) float32 pairs, each of shape (1, h, w, 3), for the
    validation or the test split (`split` names it in the error for an empty one).

    The pairs stay in memory as uint8 in one flat buffer; each element is a slice of it.
    """
    if not pairs:
        raise DataError(f"DATA: {split} set: no {split} images")
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


def datasets(options, scale, patch_size, batch_size, seed, with_test=True):
    """(train, validation, test) pipelines from the source `options` names (a mapping with
    sources.DATA_KEYS: data, lr_data, div2k_root, train_images, ...; a missing key is its default),
    built once per run so bad data fails here, before any write. Validation serves every selection
    step; test only the final figures (None when with_test is false: a measurement that reports
    nothing on held-out images, such as make sensitivity, needs no test split)."""
    train_pairs, val_pairs, test_pairs = sources.load_pairs(
        scale=scale, **{k: options.get(k) for k in sources.DATA_KEYS})
    name = options.get("data") or "skimage"
    check_patch_fits(train_pairs, patch_size, name)
    print(f"data: {len(train_pairs)} training, {len(val_pairs)} validation (selection) and "
          f"{len(test_pairs)} test (held out) images ({options.get('data') or 'scikit-image photos'}), "
          "decoded in memory", flush=True)
    train_ds = train_dataset(train_pairs, scale, patch_size, batch_size, seed)
    return train_ds, val_dataset(val_pairs), (val_dataset(test_pairs, "test") if with_test else None)
