"""Fixed-point types under which an hls4ml design of a quantized base7 computes exactly what the
Keras model computes.

Why exact types and not hls4ml's defaults: a trained model's quantizers already put every weight,
bias and activation on a grid; the hardware has to hold those values without rounding again and
sum them without overflow. Weights and biases get the narrowest type that holds every folded
value of the layer; auto_po2 kernels are first split into b-bit mantissas and one power-of-2 scale
per output channel (channel_factors), since one type per layer holding every channel's scale
would need b plus their spread. Accumulators get the fractional bits of input times weight and the
integer bits of the largest partial sum any input in range can reach. Activations take the
quantizer's own grid: quantized_relu(b, i) is ap_ufixed<b, i> rounded to nearest-even (qkeras'
tf.round) and saturated at the top of the range (qkeras' clip).
"""
from dataclasses import dataclass

import numpy as np

MAX_FRACTION_BITS = 64  # a float32 has at most 149 fractional bits; quantized values far fewer


@dataclass(frozen=True)
class FixedType:
    """ap_fixed<width, integer> (signed) or ap_ufixed; `rounding`/`saturation` as hls4ml writes
    them (RND_CONV, SAT) or None for ap_fixed's defaults (truncation, wrap-around)."""
    width: int
    integer: int
    signed: bool = True
    rounding: str = None
    saturation: str = None

    @property
    def fraction(self):
        return self.width - self.integer

    @property
    def step(self):
        return 2.0 ** -self.fraction

    @property
    def low(self):
        return -(2.0 ** (self.integer - 1)) if self.signed else 0.0

    @property
    def high(self):
        return (2.0 ** (self.integer - 1) if self.signed else 2.0 ** self.integer) - self.step

    def hls(self):
        """hls4ml's precision string, e.g. fixed<18,10> or ufixed<6,8,RND_CONV,SAT>."""
        modes = [m for m in (self.rounding, self.saturation) if m]
        if modes and not self.rounding:
            modes.insert(0, "TRN")
        args = ",".join(map(str, [self.width, self.integer, *modes]))
        return f"{'' if self.signed else 'u'}fixed<{args}>"


class NotExact(ValueError):
    """Values no fixed-point type can hold exactly (not on any grid of 2^-MAX_FRACTION_BITS)."""


def fraction_bits(values):
    """The fewest fractional bits f with every value a multiple of 2^-f."""
    values = np.asarray(values, np.float64)
    for f in range(MAX_FRACTION_BITS + 1):
        scaled = values * 2.0 ** f
        if np.array_equal(scaled, np.round(scaled)):
            return f
    raise NotExact(f"values are not multiples of 2^-{MAX_FRACTION_BITS}")


def signed_integer_bits(low, high, fraction):
    """The fewest integer bits i (sign included) with ap_fixed<i + fraction, i> covering
    [low, high]."""
    i = 1
    while low < -(2.0 ** (i - 1)) or high > 2.0 ** (i - 1) - 2.0 ** -fraction:
        i += 1
    return i


def holding(values):
    """The narrowest signed type holding every value exactly."""
    values = np.asarray(values, np.float64)
    return sum_type(float(values.min(initial=0.0)), float(values.max(initial=0.0)),
                    fraction_bits(values))


def channel_factors(kernel):
    """(mantissas, scales): kernel = mantissas · scales, one power-of-2 scale per output channel
    (the last axis) and every mantissa on one grid, ap_fixed<W, 1> with the fewest bits W.

    This undoes auto_po2: qkeras' quantized_bits(b, 0, alpha="auto_po2") stores each channel as
    b-bit values times its own power of 2, so W = b and the multipliers are b bits wide; held as
    one type per layer the kernel would need b plus the spread of the channel scales."""
    kernel = np.asarray(kernel, np.float64)
    fractions = np.array([fraction_bits(kernel[..., c]) for c in range(kernel.shape[-1])])
    integers = kernel * 2.0 ** fractions  # each channel as integers
    width = signed_integer_bits(float(integers.min(initial=0.0)),
                                float(integers.max(initial=0.0)), 0)
    scales = 2.0 ** (width - 1 - fractions)
    return kernel / scales, scales


def accumulator(kernel, bias, data):
    """(type, low, high) of a convolution's sums when its input is of type `data` (unsigned in
    base7: pixels or ReLU outputs): fractional bits of input times weight (and the bias's),
    integer bits of the extreme partial sums. hls4ml starts each sum at the bias and adds the
    products one by one, so every partial sum lies between the bias plus all negative products
    at the largest input and the bias plus all positive ones (inputs are at least 0)."""
    if data.signed:
        raise ValueError("accumulator: only unsigned inputs (pixels, ReLU outputs) are handled")
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    f = max(data.fraction + fraction_bits(kernel), fraction_bits(bias))
    axes = tuple(range(kernel.ndim - 1))  # all but the output channel
    positive = np.clip(kernel, 0, None).sum(axis=axes) * data.high
    negative = np.clip(kernel, None, 0).sum(axis=axes) * data.high
    low = float((negative + np.minimum(bias, 0)).min())
    high = float((positive + np.maximum(bias, 0)).max())
    i = signed_integer_bits(low, high, f)
    return FixedType(i + f, i), low, high


def relu_type(bits, integer):
    """quantized_relu(bits, integer)'s grid: steps of 2^(integer - bits) from 0 to 2^integer
    minus one step, rounded half to even and saturated."""
    return FixedType(int(bits), int(integer), signed=False, rounding="RND_CONV", saturation="SAT")


def sum_type(low, high, fraction):
    """The exact signed type of a sum known to lie in [low, high] on a grid of 2^-fraction."""
    i = signed_integer_bits(low, high, fraction)
    return FixedType(i + fraction, i)
