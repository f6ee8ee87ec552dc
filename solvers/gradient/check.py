"""What make gradient can learn, checked against the search space before anything is trained.

The learned quantizers (quantizers.py) reproduce two qkeras families exactly:
    kernels      quantized_bits(b, 0, alpha="auto_po2")
    activations  quantized_relu(b, 8)
at every integer width b of one contiguous range shared by every layer (the widths are real
numbers clipped to [lo, hi]; cost.GradientCost tabulates one range). Biases are not learned:
each convolution must be left one bias quantizer by the limit (the shipped limit: 8 bits).
Filter counts are not learned either (tune_filters: none), and a `shared` limit entry (one
width for several layers) is not expressed. Anything else is a ConfigError naming the file and
key, raised before TensorFlow trains anything: the rounded widths must map back onto the YAML's
quantizer strings, or the result could not be retrained, reported or exported as a search's is.
"""
from typing import NamedTuple

from solvers.config import ConfigError
from solvers.quantizer_text import parse

FAMILIES = {"kernel": ("quantized_bits", {"integer": 0, "alpha": "auto_po2"}),
            "activation": ("quantized_relu", {"integer": 8})}
FAMILY_TEXT = {"kernel": 'quantized_bits(b,0,alpha="auto_po2")',
               "activation": "quantized_relu(b,8)"}


class Learnable(NamedTuple):
    """What the gradient learns: widths in [lo, hi] for every kernel and ReLU; biases fixed."""
    lo: int
    hi: int
    bias_bits: dict         # {conv name: bits}
    bias_quantizers: dict   # {conv name: qkeras quantizer string}
    quantizers: dict        # {(layer, kind): {bits: quantizer string}} for kernels and ReLUs


def _in_family(kind, text, bits):
    """Whether a quantizer string is the learned family's quantizer at `bits`, its arguments
    positional or named alike (quantizer_text.parse names them); any other argument is refused."""
    name, values = parse(text)
    family, fixed = FAMILIES[kind]
    extra = set(values) - {"bits", *fixed}
    return (name == family and values.get("bits") == bits and not extra
            and all(values.get(k) == v for k, v in fixed.items()))


def learnable(choices, filters, path="quantization_config.yaml"):
    """The Learnable of a search space (search_choices after the limit, filter_search), or a
    ConfigError saying what make gradient cannot express and what to change."""
    if filters is not None:
        raise ConfigError(f"{path}: tune_filters: {filters.mode}: make gradient learns bit widths, "
                          "not filter counts; set tune_filters: none (or search them: make random)")
    ranges, bias_bits, bias_quantizers, quantizers = {}, {}, {}, {}
    for name, choice in choices.items():
        if len(choice.layers) > 1:
            raise ConfigError(f"{path}: limit: shared choice {name}: make gradient learns one width "
                              "per layer; remove `shared` for it")
        layer, kind = choice.layers[0], choice.kind
        if not choice.by_bits:
            raise ConfigError(f"{path}: {kind}: two quantizers of {layer} share a width; make "
                              f"gradient learns widths of {FAMILY_TEXT.get(kind, 'one quantizer')}")
        if kind == "bias":
            if len(choice.options) != 1:
                raise ConfigError(f"{path}: limit: {layer} bias offers {len(choice.options)} "
                                  "quantizers; make gradient keeps biases fixed: limit them to one "
                                  "(as the shipped config does, Conv2D: {bias: [...]})")
            bias_bits[layer] = choice.options[0]
            bias_quantizers[layer] = choice.quantizers[choice.options[0]]
            continue
        for bits in choice.options:
            text = choice.quantizers[bits]
            if not _in_family(kind, text, bits):
                raise ConfigError(f'{path}: {kind}: "{text}" ({layer}): make gradient learns '
                                  f"{FAMILY_TEXT[kind]} widths only; limit {layer}'s {kind} to "
                                  "those quantizers")
        options = list(choice.options)
        if options != list(range(options[0], options[-1] + 1)):
            raise ConfigError(f"{path}: {kind}: {layer} offers widths {options}; make gradient "
                              "learns a contiguous range of widths")
        ranges[layer, kind] = (options[0], options[-1])
        quantizers[layer, kind] = dict(choice.quantizers)
    found = sorted(set(ranges.values()))
    if len(found) != 1:
        raise ConfigError(f"{path}: limit: make gradient learns every kernel and activation over "
                          f"one range of widths; the limit leaves {', '.join(f'{a}-{b}' for a, b in found)}")
    lo, hi = found[0]
    if lo == hi:
        raise ConfigError(f"{path}: limit: every kernel and activation is left {lo} bits only: "
                          "nothing to learn")
    return Learnable(lo, hi, bias_bits, bias_quantizers, quantizers)
