"""QReLU's lean quantized_relu against qkeras' own: same values, same gradients, same saved model."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from qkeras import QActivation, get_quantizer

from solvers.networks.base7 import base7, layer_names
from solvers.networks.fast_relu import FAKE_QUANT_BITS, QReLU, quantized_relu_ste, relu_grid


def inputs(step, top):
    """Random values over and beyond the quantizer's range, plus the edges: exact ties between two
    grid points (round half to even), 0, top, just past top, negatives."""
    rng = np.random.default_rng(0)
    spread = rng.uniform(-0.5 * top, 1.5 * top, size=4000)
    ties = (np.arange(-3, int(top / step) + 3) + 0.5) * step
    edges = [0.0, -0.0, top, top + step / 4, np.nextafter(top, 2 * top), -step, 1e-7, 1e6]
    return tf.constant(np.concatenate([spread, ties, edges]).astype("float32"))


def value_and_grad(fn, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        # A non-uniform upstream gradient, so a mask applied to the wrong element would show.
        loss = tf.reduce_sum(y * tf.linspace(1.0, 2.0, tf.size(y)))
    return y.numpy(), tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("integer", [0, 3, 8])
def test_lean_path_equals_qkeras_values_and_gradients(bits, integer):
    quantizer = get_quantizer(f"quantized_relu({bits},{integer})")
    grid = relu_grid(quantizer)
    assert grid is not None
    x = inputs(*grid)
    expected, expected_grad = value_and_grad(quantizer, x)
    got, got_grad = value_and_grad(lambda v: quantized_relu_ste(v, *grid), x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_grad, expected_grad)
    step, top = grid
    assert len(np.unique(got)) <= 2 ** bits and got.max() == top
    np.testing.assert_array_equal(np.round(got / step) * step, got)  # on the grid


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("integer", [0, 8])
def test_training_path_differs_from_qkeras_only_at_ties_and_zero(bits, integer):
    """The training path (TensorFlow's fake_quant op) rounds exact half-step ties up where qkeras
    rounds them to even, and passes the gradient at exactly 0: nowhere else may it differ."""
    text = f"quantized_relu({bits},{integer})"
    step, top = relu_grid(get_quantizer(text))
    x = inputs(step, top)
    expected, expected_grad = value_and_grad(get_quantizer(text), x)
    got, got_grad = value_and_grad(lambda v: QReLU(text)(v, training=True), x)
    xs = x.numpy()
    tie = (np.mod(xs / step, 1.0) == 0.5) & (xs > 0) & (xs < top)
    np.testing.assert_array_equal(got[~tie], expected[~tie])
    np.testing.assert_array_equal(got[tie], np.floor(xs[tie] / step + 0.5) * step)  # half up
    assert tie.sum() > 0 and np.any(got[tie] != expected[tie])  # the ties really were exercised
    nonzero = xs != 0
    np.testing.assert_array_equal(got_grad[nonzero], expected_grad[nonzero])
    assert np.all(got_grad[~nonzero] > 0) and np.all(expected_grad[~nonzero] == 0)


def test_training_path_needs_a_width_fake_quant_accepts():
    """1-bit quantized_relu has no fake_quant equivalent: it trains through the exact path."""
    assert FAKE_QUANT_BITS[0] == 2
    x = inputs(*relu_grid(get_quantizer("quantized_relu(1,8)")))
    expected, expected_grad = value_and_grad(get_quantizer("quantized_relu(1,8)"), x)
    got, got_grad = value_and_grad(lambda v: QReLU("quantized_relu(1,8)")(v, training=True), x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_grad, expected_grad)


@pytest.mark.parametrize("text", ["quantized_relu(4,2,1)",          # sigmoid
                                  "quantized_relu(4,2,0,0.25)",     # leaky slope
                                  "quantized_bits(4,0)"])
def test_other_quantizers_go_through_qkeras(text):
    quantizer = get_quantizer(text)
    assert relu_grid(quantizer) is None
    x = tf.linspace(-5.0, 5.0, 101)
    np.testing.assert_array_equal(QReLU(text)(x).numpy(), quantizer(x).numpy())


def test_base7_uses_qrelu_and_a_saved_model_reloads_with_the_same_outputs(tmp_path):
    quantizers = {a: {"activation": "quantized_relu(3,8)"} for a in layer_names()[1]}
    model = base7(quantizers=quantizers)
    assert all(isinstance(model.get_layer(a), QReLU) for a in layer_names()[1])
    assert all(isinstance(model.get_layer(a), QActivation) for a in layer_names()[1])  # cost, reports
    x = np.random.default_rng(1).uniform(0, 255, (1, 12, 10, 3)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.get_layer("act_0"), QReLU)
    assert str(reloaded.get_layer("act_0").activation) == "quantized_relu(3,8)"
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
