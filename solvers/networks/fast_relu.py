"""QReLU: qkeras' QActivation, with plain `quantized_relu(bits, integer)` computed in a few fused ops.

Why: qkeras builds quantized_relu from about fifteen element-wise ops (where, leaky_relu, the
straight-through `x + stop_gradient(q - x)` trick twice, ...) and Keras keeps each intermediate for
the backward pass. On base7's activations (16 x 64 x 64 x 28 floats per layer) that made a quantized
train step 1.2-1.35x a float step on this CPU (`make bench`); quantizing only the kernels cost 3 %.

Two paths replace it, both on qkeras' grid (multiples of step = 2^(integer-bits) in [0, top]):
- inference (validation, make eval, any call without training=True): `quantized_relu_ste`, exactly
  qkeras' values and straight-through gradient (1 where 0 < x <= top, else 0);
- training: TensorFlow's own quantization-aware-training op, fake_quant_with_min_max_args(0, top,
  bits): one op forward and one backward instead of four and five. It differs from qkeras only on
  sets of measure zero: an input exactly halfway between two grid points rounds up (qkeras rounds
  to even), and the gradient passes at exactly x = 0 (qkeras' does not). Reported numbers
  (val_psnr, make eval) all come from the exact path.
Any other quantizer, or a quantized_relu with options these paths do not model (sigmoid, leaky
slope, stochastic rounding, noise factor, variables), goes through qkeras unchanged.
"""
import keras
import numpy as np
import tensorflow as tf
from qkeras import QActivation, quantized_relu

FAKE_QUANT_BITS = (2, 16)  # the widths TensorFlow's fake_quant ops accept


def relu_grid(quantizer):
    """(step, top) of a plain quantized_relu: outputs are multiples of step in [0, top]; None for
    any quantizer the lean path does not reproduce exactly."""
    q = quantizer
    plain = (type(q) is quantized_relu and not q.use_sigmoid and q.negative_slope == 0
             and not q.use_stochastic_rounding and q.is_quantized_clip and q.use_ste
             and q.qnoise_factor == 1.0 and not q.use_variables
             and isinstance(q.bits, (int, np.integer)) and isinstance(q.integer, (int, np.integer)))
    if not plain:
        return None
    # qkeras: x_q = 2^i * clip(round(x * 2^b / 2^i) / 2^b, 0, 1 - 2^-b); powers of two keep it exact.
    step = 2.0 ** (int(q.integer) - int(q.bits))
    return step, 2.0 ** int(q.integer) - step


def quantized_relu_ste(x, step, top):
    """clip(round(x / step) * step, 0, top), with the straight-through gradient of qkeras'
    quantized_relu: the incoming gradient where 0 < x <= top, zero elsewhere."""
    @tf.custom_gradient
    def forward(v):
        def grad(dy):
            return tf.where((v > 0.0) & (v <= top), dy, tf.zeros_like(dy))
        return tf.clip_by_value(tf.round(v * (1.0 / step)) * step, 0.0, top), grad
    return forward(tf.cast(x, tf.float32))


@keras.saving.register_keras_serializable(package="autoq")
class QReLU(QActivation):
    """A QActivation (same config, same `activation` quantizer, counted the same everywhere) that
    takes the fast paths when its quantizer is a plain quantized_relu."""

    def call(self, inputs, training=None):
        grid = relu_grid(self.activation)
        if grid is None:
            return super().call(inputs)
        if training and FAKE_QUANT_BITS[0] <= self.activation.bits <= FAKE_QUANT_BITS[1]:
            return tf.quantization.fake_quant_with_min_max_args(
                tf.cast(inputs, tf.float32), 0.0, grid[1], num_bits=int(self.activation.bits))
        return quantized_relu_ste(inputs, *grid)
