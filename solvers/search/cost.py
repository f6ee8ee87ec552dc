"""Quantized model size: Σ weights × kernel bits + Σ biases × bias bits (float32 layers count 32).

Activations are not stored, so their quantizers change accuracy, not size.
"""
from dataclasses import dataclass

FLOAT_BITS = 32


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
