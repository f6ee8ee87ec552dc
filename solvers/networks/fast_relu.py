"""QReLU: qkeras' QActivation, with plain `quantized_relu(bits, integer)` computed by one fused op.

Why: qkeras builds quantized_relu from about fifteen element-wise ops (where, leaky_relu, the
straight-through `x + stop_gradient(q - x)` trick twice, ...) and Keras keeps each intermediate for
the backward pass. On base7's activations (16 x 64 x 64 x 28 floats per layer) that made a quantized
train step 1.2-1.35x a float step on this CPU, and whole-image inference 2.6x (`make bench`);
quantizing only the kernels cost 3 %.

TensorFlow's own quantize_and_dequantize_v2 op, unsigned, over the range [0, top] with `bits` bits
and ties rounded to even, computes the same function in one op forward (and fake_quant's gradient
op, one op backward):
the values equal qkeras' exactly (ties and out-of-range inputs included: tests/test_fast_relu.py),
and so does the straight-through gradient (the incoming gradient where 0 < x <= top, zero
elsewhere) except at exactly x = 0, where this op passes the gradient and qkeras' does not.
Any other quantizer, or a quantized_relu with options this op does not model (sigmoid, leaky
slope, stochastic rounding, noise factor, variables), goes through qkeras unchanged.
"""
import keras
import numpy as np
import tensorflow as tf
from qkeras import QActivation, quantized_relu

FAKE_QUANT_BITS = (2, 16)  # the widths TensorFlow's fake_quant ops accept


def relu_grid(quantizer):
    """(step, top) of a plain quantized_relu: its outputs are the multiples of step in [0, top];
    None for any quantizer the fused op does not reproduce."""
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


def fused_quantized_relu(x, bits, top):
    """round_half_even(clip(x, 0, top) / step) * step with step = top / (2^bits - 1), in one op;
    its gradient passes where 0 <= x <= top, in one op too.

    The gradient is given explicitly because quantize_and_dequantize's own gradient op has no XLA
    kernel (XLA=1 would fail); fake_quant's gradient op computes the same mask and has one.
    """
    bits = int(bits)

    @tf.custom_gradient
    def forward(v):
        def grad(dy):
            if FAKE_QUANT_BITS[0] <= bits <= FAKE_QUANT_BITS[1]:
                # min 0 and max top need no nudging: the mask is exactly 0 <= v <= top.
                return tf.raw_ops.FakeQuantWithMinMaxArgsGradient(
                    gradients=dy, inputs=v, min=0.0, max=top, num_bits=bits)
            return tf.where((v >= 0.0) & (v <= top), dy, tf.zeros_like(dy))
        return tf.quantization.quantize_and_dequantize_v2(
            v, 0.0, top, signed_input=False, num_bits=bits, range_given=True,
            round_mode="HALF_TO_EVEN"), grad
    return forward(tf.cast(x, tf.float32))


@keras.saving.register_keras_serializable(package="autoq")
class QReLU(QActivation):
    """A QActivation (same config, same `activation` quantizer, counted the same everywhere) that
    runs a plain quantized_relu as one fused op."""

    def call(self, inputs):
        grid = relu_grid(self.activation)
        if grid is None:
            return super().call(inputs)
        return fused_quantized_relu(inputs, self.activation.bits, grid[1])
