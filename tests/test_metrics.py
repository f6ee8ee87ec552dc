"""The evaluation protocol of SR papers: BT.601 Y, border crop, PSNR, SSIM."""
import math

import numpy as np
import pytest
import tensorflow as tf

from solvers import metrics


def test_y_channel_against_hand_computed_values():
    rgb = np.array([[[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                      [10, 20, 30]]]], np.float32)
    y = metrics.y_channel(rgb).numpy()[0, 0, :, 0]
    expected = [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966,
                16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255]
    np.testing.assert_allclose(y, expected, atol=1e-3)


def test_crop_border_removes_exactly_border_pixels():
    images = tf.reshape(tf.range(2 * 10 * 12 * 3, dtype=tf.float32), (2, 10, 12, 3))
    cropped = metrics.crop_border(images, 3)
    assert cropped.shape == (2, 4, 6, 3)
    np.testing.assert_array_equal(cropped.numpy(), images.numpy()[:, 3:7, 3:9, :])
    assert metrics.crop_border(images, 0) is images


@pytest.mark.parametrize("d", [1, 4, 10])
def test_psnr_of_a_constant_offset(d):
    hr = tf.fill((1, 16, 16, 3), 100.0)
    rgb = metrics.psnr(hr, hr + d, y_only=False).numpy()[0]
    assert rgb == pytest.approx(20 * math.log10(255 / d), abs=1e-3)
    # On Y, an offset of d in every channel moves luma by d * 219 / 255.
    y = metrics.psnr(hr, hr + d, border=3).numpy()[0]
    assert y == pytest.approx(20 * math.log10(255 / (d * 219 / 255)), abs=1e-3)


def test_psnr_uses_the_rounded_clipped_output_and_the_border():
    hr = tf.fill((1, 16, 16, 3), 255.0)
    assert np.isinf(metrics.psnr(hr, hr + 40.0).numpy()[0])  # clipped back to 255
    assert np.isinf(metrics.psnr(hr, hr + 0.3).numpy()[0])
    sr = tf.Variable(hr)
    sr[:, :2, :, :].assign(tf.zeros((1, 2, 16, 3)))  # damage only the 2-pixel border
    assert np.isinf(metrics.psnr(hr, sr, border=2).numpy()[0])
    assert np.isfinite(metrics.psnr(hr, sr, border=1).numpy()[0])


def test_ssim_of_identical_images_is_one_and_of_different_ones_below():
    rng = np.random.default_rng(0)
    hr = rng.uniform(0, 255, (2, 32, 32, 3)).round().astype(np.float32)
    np.testing.assert_allclose(metrics.ssim(hr, hr, border=3).numpy(), 1.0, atol=1e-6)
    noise = rng.normal(0, 1, hr.shape).astype(np.float32)
    mild, strong = (metrics.ssim(hr, hr + s * noise, border=3).numpy() for s in (10, 40))
    assert (strong < mild).all() and (mild < 0.999).all()
