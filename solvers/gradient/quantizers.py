"""Fake quantizers whose bit width is a learnable real number, HGQ-style (Sun et al., "HGQ: High
Granularity Quantization", arXiv:2405.00645).

A width f is a real scalar per layer. The forward pass quantizes at the integer width
b = ceil(clip(f, lo, hi)): the rounded-up width, so a width between two integers always pays for
(and gets) the larger one, as the cost does (cost.py). At every integer b the values are exactly
the shipped space's qkeras quantizers, so the learned widths map onto its quantizer strings:
    fake_quantized_relu(x, f)    = quantized_relu(b, 8)                         (activations)
    fake_quantized_kernel(w, f)  = quantized_bits(b, 0, alpha="auto_po2")       (kernels)
(tests/test_gradient.py compares both with qkeras at b = 2..8).

Gradients:
  x: straight-through, as qkeras' own (use_ste): quantized_relu passes the gradient where
     0 < x <= top (its clipped ReLU), quantized_bits passes it everywhere.
  f: HGQ's surrogate. The rounding error δ = q - x of a quantizer with step 2^-b halves with each
     extra bit, δ ∝ 2^-b, so ∂q/∂b = ∂δ/∂b ≈ -ln2·δ per element; the scalar f gets
     Σ dL/dq · (-ln2·δ) through the chain rule, with ∂b/∂f = 1 (straight through the ceil and the
     clip, so a width pushed past a bound can come back; WidthRange keeps it inside).
     δ is the rounding error only: a value clipped at the top of the range (or a negative input
     of the ReLU) has an error that more bits do not reduce, so it counts 0 there (the brief's
     q - x, restricted to the range the quantizer represents).

The kernel's scale is qkeras' auto_po2 search reproduced op for op (not wrapped): one pass with a
tensor width instead of seven quantizers selected by b, and bit-identical values (tested).
"""
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

LN2 = math.log(2.0)
WIDTH_RANGE = (2, 8)  # the shipped space's kernel and activation widths
PO2_ITERATIONS = 5    # qkeras quantized_bits' auto_po2 refinements of the scale


def integer_width(f, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1]):
    """The integer width a learned width f (number, array or variable) quantizes at: ceil(f)
    clipped to [lo, hi], as a Python int (the final mapping onto quantizer strings)."""
    return math.ceil(min(max(float(np.asarray(f)), lo), hi))


def rounded_width(f, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1]):
    """ceil(clip(f, lo, hi)) as a float32 tensor, with gradient 1 w.r.t. f (straight-through):
    for anything whose cost or value is a function of the integer width."""
    f = tf.cast(ops.convert_to_tensor(f), tf.float32)
    b = tf.math.ceil(tf.clip_by_value(f, float(lo), float(hi)))
    # For f in [lo, hi], b - f is exact (Sterbenz: f <= b <= 2f), so the value is exactly b.
    return f + tf.stop_gradient(b - f)


@keras.saving.register_keras_serializable(package="autoq")
class WidthRange(keras.constraints.Constraint):
    """Keeps a learned width inside [lo, hi] after each optimizer step (a variable constraint),
    so that the straight-through gradients never push it far past a bound."""

    def __init__(self, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1]):
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, w):
        return ops.clip(w, self.lo, self.hi)

    def get_config(self):
        return {"lo": self.lo, "hi": self.hi}


def _integer_bits(f, lo, hi):
    """ceil(clip(f)) without a gradient: the width the values are computed at."""
    return tf.math.ceil(tf.clip_by_value(tf.stop_gradient(f), float(lo), float(hi)))


def relu_values(x, b, integer=8):
    """qkeras quantized_relu(b, integer)'s values: round_half_even(x / step)·step clipped to
    [0, top], step = 2^(integer - b), top = 2^integer - step. x float32; b a float32 tensor
    holding an integer. Returns (values, top).

    qkeras computes 2^i·clip(round(x·2^b / 2^i) / 2^b, 0, 1 - 2^-b); every factor is a power of
    two, so this shorter form gives the same floats."""
    step = tf.pow(2.0, float(integer) - b)
    levels = tf.pow(2.0, b) - 1.0
    return tf.clip_by_value(tf.round(x / step), 0.0, levels) * step, levels * step


def fake_quantized_relu(x, f, integer=8, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1]):
    """quantized_relu(b, integer) of x at b = ceil(clip(f, lo, hi)), with qkeras' straight-through
    gradient for x and HGQ's surrogate gradient for the scalar width f (module docstring)."""

    @tf.custom_gradient
    def forward(x, f):
        q, top = relu_values(x, _integer_bits(f, lo, hi), integer)

        def grad(dy):
            inside = (x > 0.0) & (x <= top)  # qkeras: the clipped ReLU's gradient
            rounding_error = q - tf.clip_by_value(x, 0.0, top)
            df = -LN2 * tf.reduce_sum(dy * rounding_error)
            return tf.where(inside, dy, tf.zeros_like(dy)), tf.reshape(df, tf.shape(f))
        return q, grad

    return forward(tf.cast(x, tf.float32), tf.cast(ops.convert_to_tensor(f), tf.float32))


def kernel_values(w, b):
    """qkeras quantized_bits(b, 0, alpha="auto_po2")'s values of a kernel w (channels last: one
    power-of-2 scale per output channel, the last axis), op for op as qkeras computes them, with
    b a float32 tensor holding an integer. Returns (values, bound): bound = scale·(2^(b-1) - 1)
    per channel, the largest magnitude a value reaches (larger weights saturate there)."""
    if len(w.shape) < 2:  # qkeras scales a 1-D tensor per element, not per channel
        raise ValueError(f"kernel_values: a kernel of at least 2 dimensions, got shape {w.shape}")
    eps = keras.config.epsilon()
    axis = list(range(len(w.shape) - 1))
    levels = (ops.power(2.0, b - 1.0) - 1.0) * 2.0  # symmetric: 2^(b-1) - 1 each side of 0
    half = levels / 2.0

    def po2(scale, log2):  # qkeras divides by log(2.0) first, by np.log(2.0) in the refinements
        return ops.power(2.0, ops.round(ops.log(scale + eps) / log2))

    def integers(scale):  # round half up, then saturate at ±half
        v = ops.floor(ops.abs(w) / scale + 0.5)
        return ops.sign(w) * ops.where(v < half, v, ops.ones_like(v) * levels / 2)

    scale = po2(ops.max(ops.abs(w), axis=axis, keepdims=True) * 2 / levels, ops.log(2.0))
    for _ in range(PO2_ITERATIONS):  # least-squares scale of the current integers, to a power of 2
        z = integers(scale)
        qx = ops.mean(w * z, axis=axis, keepdims=True)
        qq = ops.mean(z * z, axis=axis, keepdims=True)
        scale = po2(qx / (qq + eps), np.log(2.0))
    z = integers(scale)
    m = ops.power(2.0, b - 1.0)
    xq = (scale * m) * (1.0 * z / m)
    # qkeras returns x + stop_gradient(-x + xq): not always xq to the last bit where a weight
    # saturates far above it, so the same sum, for the same floats as the final QKeras model.
    return w + (-w + xq), scale * half


def fake_quantized_kernel(w, f, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1]):
    """quantized_bits(b, 0, alpha="auto_po2") of a kernel w at b = ceil(clip(f, lo, hi)), with the
    straight-through gradient for w (qkeras': identity, the scale taken as a constant) and HGQ's
    surrogate gradient for the scalar width f (module docstring)."""

    @tf.custom_gradient
    def forward(w, f):
        q, bound = kernel_values(w, _integer_bits(f, lo, hi))

        def grad(dy):
            rounding_error = q - tf.clip_by_value(w, -bound, bound)
            df = -LN2 * tf.reduce_sum(dy * rounding_error)
            return dy, tf.reshape(df, tf.shape(f))
        return q, grad

    return forward(tf.cast(w, tf.float32), tf.cast(ops.convert_to_tensor(f), tf.float32))
