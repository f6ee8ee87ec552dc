"""Inference energy of a base7 model in pJ, from qkeras' QTools (Horowitz' 45 nm table, ISSCC 2014).

QTools is called as AutoQKeras' ForgivingFactorPower calls it (google/qkeras,
qkeras/autoqkeras/forgiving_metrics/forgiving_energy.py): `QTools(model, process, source_quantizers,
is_inference, weights_path=None, keras_quantizer, keras_accumulator, for_reference)`, then
`pe(weights_on_memory, activations_on_memory, min_sram_size, rd_wr_on_io)` and
`extract_energy_sum(settings.cfg.include_energy, ...)`. That sum counts, per layer: a convolution's
input reads, parameter reads and MAC energy; a (Q)Activation's output writes; an Add's additions;
the default (inputs, parameters, op_cost) for the rest.

QTools cannot cost base7 as built, so it costs a clone (`costing_clone`) that computes the same
thing with layers it understands:
- a fixed input shape, (H, W, C) from goal.input_hw (QTools needs static shapes);
- QReLU (fast_relu.py) -> qkeras QActivation with the same quantizer: QTools knows layers by class
  name; an unknown QReLU is costed as a default layer (its accumulator-wide input read, +0.2 uJ on
  the uniform 8-bit base7) instead of its output written at its own width (its width still reaches
  the next convolution, which QTools reads from any layer's `.activation`);
- a float ReLU -> keras Activation("relu"), costed at float32 like every float layer (below);
- DepthToSpace is left out: it only reorders the 27 channels into 3x3 pixel blocks (addressing, no
  operation, no extra memory traffic), and the element-wise tail commutes with it;
- ClipPixels -> QActivation(quantized_relu(output_bits, 8)): clipping to [0, 255] and delivering
  output_bits pixels is that quantizer, so the model's output write is counted once, at output_bits;
- the 9-way anchor Concatenate and the Add stay: QTools counts the anchor's read of the input image
  and the Add's H*W*27 additions (at the merged accumulator width); neither writes a tensor;
- auto_po2 kernel quantizers get their `scale` (QTools reads it) by quantizing the copied kernel.
Any other layer class raises NotImplementedError instead of being passed through uncounted, and each
activation's width is checked to have reached QTools.

Float layers: DESIGN.md's convention "a layer left in float counts 32 bits" holds here too: a plain
Conv2D / ReLU is costed as fp32 (keras_quantizer = keras_accumulator = "fp32"), so the float32 base7
costs ~800 uJ at 64x64 (fp32 MACs at 3.7 + 0.9 pJ). AutoQKeras instead costs keras layers of a
hybrid model at reference_internal / reference_accumulator; here those two settings define the
AutoQKeras reference (`for_reference=True`: every layer at reference_internal, accumulators and
activations at reference_accumulator, the input at reference_internal), as in get_reference.
The forgiving factor's reference is cost.reference_model instead: at 64x64 the AutoQKeras int8/int32
reference of base7 is 152 uJ (activations at int32) against 48 uJ for the uniform 8-bit network.
"""
import contextlib
import io
import logging
import warnings

import keras
from qkeras import QActivation, quantized_bits, quantized_relu
from qkeras.qtools import qtools_util, run_qtools
from qkeras.qtools import settings as qtools_settings

from solvers.networks.layers import ClipPixels, DepthToSpace

FLOAT = "fp32"  # QTools' type for float32 layers
QTOOLS_CLASSES = {"InputLayer", "Conv2D", "QConv2D", "Activation", "QActivation", "Concatenate",
                  "Add"}


def _quantizer_bits(activation_layer):
    """The bit width of a QActivation's quantizer; None for a float activation."""
    bits = getattr(getattr(activation_layer, "activation", None), "bits", None)
    return None if bits is None else int(bits)


def costing_clone(model, goal):
    """The network QTools costs (see the module docstring): same widths, weights and quantizers,
    input fixed at goal.input_hw, layers mapped to ones QTools parses. Returns (clone, {name of
    each clone activation: the output bit width QTools must give it (None for float)})."""
    inputs = keras.Input((*goal.input_hw, model.inputs[0].shape[-1]), name=model.inputs[0].name)
    tensors = {id(model.inputs[0]): inputs}
    expected_bits = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        x = layer.input
        x = [tensors[id(t)] for t in x] if isinstance(x, (list, tuple)) else tensors[id(x)]
        if isinstance(layer, DepthToSpace):
            tensors[id(layer.output)] = x
            continue
        if isinstance(layer, ClipPixels):
            new = QActivation(quantized_relu(goal.output_bits, 8), name=layer.name)
            expected_bits[layer.name] = goal.output_bits
        elif isinstance(layer, QActivation) and _quantizer_bits(layer) is not None:
            new = QActivation(layer.activation, name=layer.name)  # QReLU included
            expected_bits[layer.name] = _quantizer_bits(layer)
        elif isinstance(layer, (QActivation, keras.layers.ReLU)):
            new = keras.layers.Activation("relu", name=layer.name)
            expected_bits[layer.name] = None
        else:
            new = layer.__class__.from_config(layer.get_config())
        tensors[id(layer.output)] = new(x)
        if layer.weights:
            new.set_weights(layer.get_weights())
        for quantizer, weight in zip(getattr(new, "get_quantizers", list)(), new.weights):
            if quantizer is not None and getattr(quantizer, "alpha", None) == "auto_po2":
                quantizer(weight)  # sets quantizer.scale, which QTools reads
    clone = keras.Model(inputs, tensors[id(model.outputs[0])], name=f"{model.name}_costing")
    unknown = {type(l).__name__ for l in clone.layers} - QTOOLS_CLASSES
    if unknown:
        raise NotImplementedError(
            f"energy: no QTools cost model for layer class(es) {sorted(unknown)}")
    return clone, expected_bits


@contextlib.contextmanager
def _quiet():
    """QTools prints per layer (stdout), warns on stderr and through TensorFlow's and absl's
    loggers; a trial's output stays clean."""
    loggers = [logging.getLogger(name) for name in ("", "tensorflow", "absl")]
    levels = [logger.level for logger in loggers]
    sink = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def energy_pj(model, goal, for_reference=False):
    """QTools' energy sum of one inference on a goal.input_hw input, in pJ (see the module
    docstring). for_reference: AutoQKeras' reference instead (the architecture at
    goal.reference_internal / goal.reference_accumulator, whatever the model's quantizers)."""
    clone, expected_bits = costing_clone(model, goal)
    if for_reference:
        source = keras_quantizer = goal.reference_internal
        keras_accumulator = goal.reference_accumulator
    else:
        # The input image: input_bits unsigned pixels (8: the integers 0..255).
        source = quantized_bits(goal.input_bits, goal.input_bits, keep_negative=False, alpha=1)
        keras_quantizer = keras_accumulator = FLOAT
    with _quiet():
        q = run_qtools.QTools(clone, process=goal.process, source_quantizers=[source],
                              is_inference=True, weights_path=None,
                              keras_quantizer=keras_quantizer, keras_accumulator=keras_accumulator,
                              for_reference=for_reference)
        energy = q.pe(weights_on_memory=goal.parameters_on_memory,
                      activations_on_memory=goal.activations_on_memory,
                      min_sram_size=goal.min_sram_size, rd_wr_on_io=goal.rd_wr_on_io)
        total = q.extract_energy_sum(qtools_settings.cfg.include_energy, energy)
    if not for_reference:
        types = q._layer_map["layer_data_type_map"]  # QTools keeps each layer's types there
        for layer in clone.layers:
            if layer.name in expected_bits:
                out = qtools_util.get_val(types[layer], "output_quantizer")
                want = expected_bits[layer.name]
                if (not out.is_floating_point) if want is None else int(out.bits) != want:
                    raise RuntimeError(f"energy: QTools gave {layer.name} {out.bits}-bit outputs, "
                                       f"not {want or FLOAT}")
    if not total > 0:
        raise RuntimeError(f"energy: QTools returned {total} pJ for {model.name}")
    return float(total)
