"""QReLU's fused quantized_relu against qkeras' own: same values, same gradients but at exactly 0,
same saved model."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from qkeras import QActivation, get_quantizer

from solvers.networks.base7 import base7, layer_names
from solvers.networks.fast_relu import QReLU, relu_grid


def inputs(step, top):
    """Random values over and beyond the quantizer's range, plus the edges: exact ties between two
    grid points (qkeras rounds them to even), 0, top, just past top, negatives."""
    rng = np.random.default_rng(0)
    spread = rng.uniform(-0.5 * top, 1.5 * top, size=4000)
    ties = (np.arange(-3, int(top / step) + 3) + 0.5) * step
    edges = [0.0, -0.0, top, top + step / 4, np.nextafter(top, 2 * top), -step, 1e-7, 1e6]
    return tf.constant(np.concatenate([spread, ties, edges]).astype("float32"))


def value_and_grad_tensors(fn, x):
    """fn(x) and the gradient of a weighted sum of it with respect to x."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        # A non-uniform upstream gradient, so a mask applied to the wrong element would show.
        loss = tf.reduce_sum(y * tf.linspace(1.0, 2.0, tf.size(y)))
    return y, tape.gradient(loss, x)


def value_and_grad(fn, x):
    return tuple(t.numpy() for t in value_and_grad_tensors(fn, x))


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("integer", [0, 3, 8])
@pytest.mark.parametrize("training", [True, False])
def test_fused_op_equals_qkeras_values_and_gradients_but_at_zero(bits, integer, training):
    text = f"quantized_relu({bits},{integer})"
    step, top = relu_grid(get_quantizer(text))
    x = inputs(step, top)
    expected, expected_grad = value_and_grad(get_quantizer(text), x)
    got, got_grad = value_and_grad(lambda v: QReLU(text)(v, training=training), x)
    np.testing.assert_array_equal(got, expected)
    assert len(np.unique(got)) <= 2 ** bits and got.max() == top
    np.testing.assert_array_equal(np.round(got / step) * step, got)  # on the grid
    xs = x.numpy()
    np.testing.assert_array_equal(got_grad[xs != 0], expected_grad[xs != 0])
    # At exactly 0 the fused op passes the gradient; qkeras' leaky_relu(0) does not.
    assert np.all(got_grad[xs == 0] > 0) and np.all(expected_grad[xs == 0] == 0)


@pytest.mark.parametrize("bits", [1, 4])  # 1: the gradient fake_quant's op cannot take
def test_xla_compiles_the_fused_op_and_its_gradient_with_the_same_results(bits):
    text = f"quantized_relu({bits},8)"
    x = inputs(*relu_grid(get_quantizer(text)))
    layer = QReLU(text)
    expected = value_and_grad(layer, x)
    got = tf.function(lambda v: value_and_grad_tensors(layer, v), jit_compile=True)(x)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g.numpy(), e)


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
    reference = base7(quantizers=quantizers, activation_layer=QActivation)
    reference.set_weights(model.get_weights())
    np.testing.assert_array_equal(model(x).numpy(), reference(x).numpy())
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded.get_layer("act_0"), QReLU)
    assert str(reloaded.get_layer("act_0").activation) == "quantized_relu(3,8)"
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
