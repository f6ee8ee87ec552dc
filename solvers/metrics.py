"""Image quality as super-resolution papers report it (BasicSR's `crop_border` and `test_y_channel`).

PSNR and SSIM on the Y channel of ITU-R BT.601 (the studio-range luma of MATLAB's rgb2ycbcr), with
`border` pixels (the scale, by convention) cropped from each side, on the SR output as it would be
stored: rounded and clipped to 8 bits. All functions take batches (n, h, w, 3) of [0, 255] pixels.
"""
import tensorflow as tf

# Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in [0, 255]: Y lies in [16, 235].
BT601_Y = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
BT601_Y_OFFSET = 16.0


def y_channel(rgb):
    """(n, h, w, 3) RGB in [0, 255] → (n, h, w, 1) BT.601 luma in [16, 235]."""
    rgb = tf.cast(rgb, tf.float32)
    return tf.tensordot(rgb, tf.constant(BT601_Y, tf.float32), axes=[[-1], [0]])[..., None] \
        + BT601_Y_OFFSET


def crop_border(images, border):
    """Removes `border` pixels from each side of (n, h, w, c) images (none when border is 0)."""
    if border <= 0:
        return images
    return images[:, border:-border, border:-border, :]


def to_8bit(images):
    """Pixels as an 8-bit image would store them: rounded and clipped to [0, 255] (kept float32)."""
    return tf.round(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0))


def _prepare(hr, sr, border, y_only):
    hr, sr = tf.cast(hr, tf.float32), to_8bit(sr)
    if y_only:
        hr, sr = y_channel(hr), y_channel(sr)
    return crop_border(hr, border), crop_border(sr, border)


def psnr(hr, sr, border=0, y_only=True):
    """Per-image PSNR in dB (shape (n,)) of the 8-bit SR output against HR; inf when identical."""
    hr, sr = _prepare(hr, sr, border, y_only)
    return tf.image.psnr(hr, sr, max_val=255.0)


def ssim(hr, sr, border=0, y_only=True):
    """Per-image SSIM (shape (n,)): Gaussian window 11, sigma 1.5, k1 0.01, k2 0.03 (Wang et al.)."""
    hr, sr = _prepare(hr, sr, border, y_only)
    return tf.image.ssim(hr, sr, max_val=255.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)
