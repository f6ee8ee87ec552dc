"""The adapter between a trained quantized base7 and hls4ml 1.3.0: base7 rewritten as plain Keras
layers that hls4ml converts natively, with the exact fixed-point type of every layer.

Why a rewrite and not hls4ml's QKeras path: hls4ml 1.3.0 (the newest release) parses qkeras-v3's
QConv2D only through its Keras-2 fallback, stops at a Keras-3 QActivation, has no depth-to-space
layer and merges only two inputs, so base7's 9-way anchor concatenation cannot pass. Here:
- every QConv2D becomes a Conv2D without bias holding the mantissas of its already-quantized
  kernel (precision.channel_factors: b bits for a b-bit auto_po2 kernel), then a
  BatchNormalization layer `<conv>_scale` that multiplies each channel by its power-of-2 scale
  and adds the quantized bias (a constant shift and an add per channel; its result is exactly
  the QConv2D's output);
- every quantized ReLU becomes a ReLU whose output type is the quantizer's grid
  (precision.relu_type), so hls4ml's cast rounds and saturates exactly as qkeras does;
- the anchor (the input repeated scale² times along channels) becomes a 1x1 convolution with 0/1
  weights: channel k copies input channel k mod 3; the Add of two inputs is native;
- depth-to-space, clipping to [0, 255] and rounding to 8 bits are left to the host (post_process):
  they are data movement and a clamp; export.md says so.
This module is needed until an hls4ml release parses Keras-3 QActivation and has depth-to-space
(or n-way concatenation); none has as of 1.3.0.
"""
from dataclasses import dataclass

import keras
import numpy as np
from qkeras import QActivation, QConv2D

from solvers.config import ConfigError
from solvers.export import precision
from solvers.networks.fast_relu import relu_grid
from solvers.networks.layers import DepthToSpace

INPUT_TYPE = precision.FixedType(8, 8, signed=False)  # 8-bit pixels, as the LR images are stored


class ExportError(ConfigError):
    """A model or setting the export cannot take (one-line message naming it)."""


@dataclass
class Base7Parts:
    """What the export needs of a quantized base7: scale, layer names, quantized weights
    {conv: (kernel, bias)} as the model multiplies by them, ReLU grids {act: (bits, integer)} and
    the qkeras quantizer strings {layer: {kind: str}}."""
    scale: int
    convs: list
    acts: list
    weights: dict
    relus: dict
    quantizers: dict

    def in_order(self):
        """conv_0, act_0, conv_1, ...: the layers in the order data flows through them."""
        return [n for pair in zip(self.convs, self.acts + [None], strict=True) for n in pair if n]


def _quantizer_string(q):
    return str(q) if q is not None else "float32"


def describe(model, what="MODEL"):
    """Base7Parts of a loaded quantized base7, or ExportError naming what is not."""
    layers = {layer.name: layer for layer in model.layers}
    convs = sorted((n for n in layers if n.startswith("conv_")), key=lambda n: int(n[5:]))
    acts = sorted((n for n in layers if n.startswith("act_")), key=lambda n: int(n[4:]))
    shuffle = [layer for layer in model.layers if isinstance(layer, DepthToSpace)]
    if len(convs) < 3 or len(acts) != len(convs) - 1 or len(shuffle) != 1 \
            or "anchor" not in layers:
        raise ExportError(f"{what}: {model.name} is not a base7 (conv_0.., act_0.., anchor, "
                          "depth_to_space)")
    scale = shuffle[0].block_size
    weights, relus, quantizers = {}, {}, {}
    for name in convs:
        layer = layers[name]
        kq = getattr(layer, "kernel_quantizer_internal", None)
        bq = getattr(layer, "bias_quantizer_internal", None)
        quantizers[name] = {"kernel": _quantizer_string(kq), "bias": _quantizer_string(bq)}
        if not isinstance(layer, QConv2D) or kq is None or bq is None:
            raise ExportError(f"{what}: {name} is not quantized (kernel "
                              f"{quantizers[name]['kernel']}, bias {quantizers[name]['bias']}): "
                              "only a quantized base7 has exact fixed-point types")
        weights[name] = (np.asarray(kq(layer.kernel), np.float64),
                         np.asarray(bq(layer.bias), np.float64))
    for name in acts:
        layer = layers[name]
        q = getattr(layer, "activation", None)
        quantizers[name] = {"activation": _quantizer_string(q) if isinstance(layer, QActivation)
                            else "float32"}
        if not isinstance(layer, QActivation) or relu_grid(q) is None:
            raise ExportError(f"{what}: {name} is {quantizers[name]['activation']}, not a plain "
                              "quantized_relu(bits, integer)")
        relus[name] = (int(q.bits), int(q.integer))
    return Base7Parts(scale, convs, acts, weights, relus, quantizers)


def scale_name(conv):
    """The per-channel scale-and-bias layer after convolution `conv`."""
    return f"{conv}_scale"


def layer_types(parts):
    """{hls4ml layer name: {"weight"|"bias"|"scale"|"accum"|"result": FixedType}} of the
    rewritten graph, and {scale layer: (low, high)} the bounds of each QConv2D's sums."""
    types, bounds, data = {"lr": {"result": INPUT_TYPE}}, {}, INPUT_TYPE
    for i, name in enumerate(parts.convs):
        kernel, bias = parts.weights[name]
        mantissas, scales = precision.channel_factors(kernel)
        acc = precision.accumulator(mantissas, np.zeros_like(bias), data)[0]
        _, low, high = precision.accumulator(kernel, bias, data)
        types[name] = {"weight": precision.holding(mantissas),
                       "bias": precision.holding(np.zeros(1)), "accum": acc, "result": acc}
        result = precision.sum_type(low, high, max(acc.fraction + precision.fraction_bits(scales),
                                                   precision.fraction_bits(bias)))
        types[scale_name(name)] = {"scale": precision.holding(scales),
                                   "bias": precision.holding(bias), "result": result}
        bounds[scale_name(name)] = (low, high)
        if i < len(parts.acts):
            data = precision.relu_type(*parts.relus[parts.acts[i]])
            types[parts.acts[i]] = {"result": data}
    # The 1x1 copy sums one pixel times 1 and zeros: 8-bit pixels stay exact.
    types["anchor"] = {"weight": precision.FixedType(1, 1, signed=False), "accum": INPUT_TYPE,
                       "result": INPUT_TYPE}
    low, high = bounds[scale_name(parts.convs[-1])]
    types["add_anchor"] = {"result": precision.sum_type(
        low, high + INPUT_TYPE.high, max(result.fraction, INPUT_TYPE.fraction))}
    return types, bounds


def hls_graph(parts, input_hw):
    """The plain-Keras form of `parts` on (h, w) LR tiles: what hls4ml converts. Its output is the
    anchored residual, (h, w, 3·scale²), before depth-to-space."""
    inputs = keras.Input((*input_hw, 3), name="lr")
    x = inputs
    for i, name in enumerate(parts.convs):
        kernel, bias = parts.weights[name]
        mantissas, scales = precision.channel_factors(kernel)
        conv = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[:2], padding="same",
                                   use_bias=False, name=name)
        x = conv(x)
        conv.set_weights([mantissas.astype(np.float32)])
        # Mean 0, variance 1 and epsilon 0: hls4ml's scale gamma / sqrt(variance + epsilon) is
        # then the power of 2 itself, and its bias beta the quantized bias.
        scale = keras.layers.BatchNormalization(epsilon=0.0, name=scale_name(name))
        x = scale(x)
        ones = np.ones_like(scales, np.float32)
        scale.set_weights([scales.astype(np.float32), bias.astype(np.float32), 0 * ones, ones])
        if i < len(parts.acts):
            x = keras.layers.ReLU(name=parts.acts[i])(x)
    channels = 3 * parts.scale ** 2
    copy = np.zeros((1, 1, 3, channels), np.float32)
    copy[0, 0, np.arange(channels) % 3, np.arange(channels)] = 1.0
    anchor = keras.layers.Conv2D(channels, 1, use_bias=False, name="anchor")
    y = anchor(inputs)
    anchor.set_weights([copy])
    outputs = keras.layers.Add(name="add_anchor")([x, y])
    return keras.Model(inputs, outputs, name="base7_hls")


def depth_to_space(residual, scale):
    """The design's output (n, h, w, 3·scale²) as SR pixels (n, h·s, w·s, 3): output pixel
    (y·s + dy, x·s + dx), colour c is channel (dy·s + dx)·3 + c, as tf.nn.depth_to_space."""
    n, h, w, _ = residual.shape
    shuffled = residual.reshape(n, h, w, scale, scale, 3).transpose(0, 1, 3, 2, 4, 5)
    return shuffled.reshape(n, h * scale, w * scale, 3)


def post_process(residual, scale):
    """What the host does with the design's output: depth-to-space, then the model's clip to
    [0, 255]. Rounding to 8 bits is metrics.to_8bit, as for Keras."""
    return np.clip(depth_to_space(residual, scale), 0.0, 255.0)
