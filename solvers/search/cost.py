"""What a base7 model costs in hardware: stored size, AutoQKeras bits, BOPs and QTools energy.

Every cost reads widths and quantizers from the layers (any filter count per layer), counts a layer
left in float (no quantizer) at 32 bits, and is for one inference on an LR input of goal.input_hw
(H x W; base7 is fully convolutional and stays at LR resolution until depth-to-space, scale s).

size_bits: Σ kernel weights x kernel bits + Σ biases x bias bits (the stored model; activation
    quantizers do not change it).

bits: AutoQKeras' ForgivingFactorBits (google/qkeras,
    qkeras/autoqkeras/forgiving_metrics/forgiving_bits.py) with its config
    {"default": ["parameters", "activations"]}, made right for base7:
      parameters  = size_bits (AutoQKeras counts a float keras layer at ref_bits: here 32)
      activations = H·W·C_in·input_bits                       the input (AutoQKeras' InputLayer)
                  + Σ over ReLUs H·W·channels·bits             quantizer bits; a float ReLU: 32
                  + sH·sW·C_out·output_bits                    the model output (the SR image)
    AutoQKeras matches class names exactly ("QActivation", "Activation"), so base7's QReLU and a
    keras ReLU would count nothing there, and it uses output_bits only for softmax/sigmoid layers.
    Not counted, as data movement that stores no new activation: a convolution's own output
    (fused with the ReLU after it, as AutoQKeras counts a conv without activation as 0; conv_6's
    goes straight into the Add), the 9-way anchor Concatenate (the stored input, read again), the
    Add (its sum is the output, counted once), DepthToSpace (a reordering) and ClipPixels (it
    produces the output, counted at output_bits).

bops: per convolution, the bit-operation count of Baskin et al., "UNIQ" (arXiv:1804.10969, ACM
    TOCS 2021), m·n·k²·(b_a·b_w + b_a + b_w + log2(n·k²)) for the m outputs at one pixel, times
    the p pixels a convolution computes:
        BOPs = p · m·n·k² · (b_a·b_w + b_a + b_w + log2(n·k²))
    m output / n input channels, k kernel size, p = H·W (stride 1, 'same'), b_w kernel bits,
    b_a the bits of the convolution's input: the image at input_bits, a quantized ReLU's output at
    its bits, any unquantized tensor at 32. Each of the n·k² MACs per output value costs b_a·b_w
    for the product and b_a + b_w + log2(n·k²) for the addition into an accumulator that wide.
    The upstream project's m·n·k²·(p·b_a·b_w + b_a + b_w + log2(n·k²)) is the form of the hls4ml "Ps and Qs"
    BOP counters (Hawks et al., Front. AI 2021, calc_BOPS), where p is the fraction of weights
    left after pruning (a zero weight saves its product, not its accumulator slot); reading p as
    the pixel count would count the accumulations once per layer instead of once per output
    value. Nothing is pruned here: that fraction is 1.
    The bias is not counted: the accumulator starts from it, so the n·k² additions per output
    already include it. The anchor Add (H·W·C_out additions, 1/(n·k²) of conv_6's accumulations),
    Concatenate, DepthToSpace and ClipPixels have no MACs and are not counted.

energy_pj: QTools' estimate as AutoQKeras calls it, on a clone QTools can parse (energy.py).

costs() returns all four (COST_COLUMNS) and "cost", the goal type's. reference_model() is the same
network at ref_bits: the forgiving factor's reference.
"""
import math
from dataclasses import dataclass

import keras
from qkeras import QActivation, QConv2D

from solvers.networks.fast_relu import QReLU
from solvers.networks.layers import DepthToSpace
from solvers.objective_settings import Goal
from solvers.search import energy as _energy

FLOAT_BITS = 32
COST_COLUMNS = ("size_bits", "bits", "bops", "energy_pj")


@dataclass(frozen=True)
class LayerSize:
    name: str
    weights: int      # kernel parameters
    biases: int
    kernel_bits: int
    bias_bits: int

    @property
    def bits(self):
        return self.weights * self.kernel_bits + self.biases * self.bias_bits


def _bits(quantizer):
    """Bit width of a qkeras quantizer; a layer without one (None) is float32."""
    return FLOAT_BITS if quantizer is None else int(quantizer.bits)


def layer_sizes(model):
    """One LayerSize per layer that holds a kernel, in model order."""
    sizes = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        bias = getattr(layer, "bias", None)
        sizes.append(LayerSize(
            name=layer.name,
            weights=int(kernel.numpy().size),
            biases=0 if bias is None else int(bias.numpy().size),
            kernel_bits=_bits(getattr(layer, "kernel_quantizer_internal", None)),
            bias_bits=_bits(getattr(layer, "bias_quantizer_internal", None)),
        ))
    return sizes


def size_bits(model):
    """Total quantized size of the model's weights and biases, in bits."""
    return sum(s.bits for s in layer_sizes(model))


def uniform_size_bits(model, bits):
    """Size of the same network with every weight and bias at `bits` (the objective's reference)."""
    return sum((s.weights + s.biases) * bits for s in layer_sizes(model))


def _activation_layer_bits(layer):
    """Bits of a ReLU's output: its quantizer's width, or 32 for a float ReLU."""
    bits = getattr(getattr(layer, "activation", None), "bits", None)
    return FLOAT_BITS if bits is None else int(bits)


def _is_relu(layer):
    return isinstance(layer, (QActivation, keras.layers.ReLU, keras.layers.Activation))


def _scale(model):
    """base7's upscaling factor: the DepthToSpace block size (1 without one)."""
    return next((l.block_size for l in model.layers if isinstance(l, DepthToSpace)), 1)


def activation_bits(model, goal):
    """The activation part of `bits`: input + every ReLU's output + the model output, in bits."""
    h, w = goal.input_hw
    s = _scale(model)
    total = h * w * model.inputs[0].shape[-1] * goal.input_bits
    for layer in model.layers:
        if _is_relu(layer):
            total += h * w * layer.output.shape[-1] * _activation_layer_bits(layer)
    return total + (h * s) * (w * s) * model.outputs[0].shape[-1] * goal.output_bits


def bits(model, goal=Goal()):
    """AutoQKeras' bits (parameters + activations), made right for base7: see the docstring."""
    return float(size_bits(model) + activation_bits(model, goal))


def _input_bits(layer, goal):
    """Bits of the tensor a convolution reads (b_a)."""
    producer = layer.input._keras_history.operation
    if isinstance(producer, keras.layers.InputLayer):
        return goal.input_bits
    return _activation_layer_bits(producer) if _is_relu(producer) else FLOAT_BITS


def bops(model, goal=Goal()):
    """Σ over convolutions of p·m·n·k²·(b_a·b_w + b_a + b_w + log2(n·k²)): see the docstring."""
    pixels = goal.input_hw[0] * goal.input_hw[1]
    total = 0.0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        if tuple(layer.strides) != (1, 1) or layer.padding != "same":
            raise NotImplementedError(f"bops: {layer.name} is not a stride-1 'same' convolution")
        kh, kw, n, m = layer.kernel.shape
        b_a = _input_bits(layer, goal)
        b_w = _bits(getattr(layer, "kernel_quantizer_internal", None))
        fan_in = n * kh * kw
        total += pixels * m * fan_in * (b_a * b_w + b_a + b_w + math.log2(fan_in))
    return total


def energy_pj(model, goal=Goal(), for_reference=False):
    """QTools' energy of one inference at goal.input_hw, in pJ (energy.py). for_reference:
    AutoQKeras' reference energy of the architecture at goal.reference_internal /
    reference_accumulator."""
    return _energy.energy_pj(model, goal, for_reference)


def costs(model, goal=Goal()):
    """{"size_bits", "bits", "bops", "energy_pj", "cost"}; "cost" is the goal type's value."""
    values = {"size_bits": size_bits(model), "bits": bits(model, goal),
              "bops": bops(model, goal), "energy_pj": energy_pj(model, goal)}
    values["cost"] = values[{"bits": "bits", "bops": "bops", "energy": "energy_pj"}[goal.type]]
    return values


def reference_model(model, ref_bits):
    """The same network (same layers, filters and scale; weights copied) with every kernel at
    quantized_bits(b,0,alpha="auto_po2"), bias at quantized_bits(b,0,alpha=1.0) and ReLU at
    quantized_relu(b,8), b = ref_bits: the forgiving factor's reference cost."""
    b = int(ref_bits)

    def at_ref_bits(layer):
        if isinstance(layer, keras.layers.Conv2D):
            return QConv2D(layer.filters, layer.kernel_size, strides=layer.strides,
                           padding=layer.padding, use_bias=layer.use_bias, name=layer.name,
                           kernel_quantizer=f'quantized_bits({b},0,alpha="auto_po2")',
                           bias_quantizer=f"quantized_bits({b},0,alpha=1.0)")
        if _is_relu(layer):
            return QReLU(f"quantized_relu({b},8)", name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    reference = keras.models.clone_model(model, clone_function=at_ref_bits)
    for layer in model.layers:
        if layer.weights:
            reference.get_layer(layer.name).set_weights(layer.get_weights())
    return reference
