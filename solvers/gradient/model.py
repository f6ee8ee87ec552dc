"""base7 with learnable bit widths: the network make gradient trains, and its plain QKeras twin.

Two layers stand where base7 has QConv2D and QReLU, with the same names (conv_i, act_i), so
float weights copy in by name and the learned widths are keyed like the search's quantizers:
  LearnedConv2D  a 3×3 'same' convolution whose kernel is fake_quantized_kernel at a learnable
                 scalar width `kernel_width`, i.e. quantized_bits(b,0,alpha="auto_po2") at
                 b = ceil(clip(kernel_width)); its bias goes through a fixed qkeras quantizer (the
                 config's, 8 bits in the shipped limit).
  LearnedReLU    fake_quantized_relu at a learnable scalar `activation_width`, i.e.
                 quantized_relu(b,8).
Both keep QConv2D's / QReLU's arithmetic op for op (convolution_op, then `+ quantized bias`; the
same [-1, 1] clip constraints on the latent kernel and bias that QConv2D sets), so that
to_qkeras, which copies the latent weights into base7's QConv2D layers, gives the same outputs
bit for bit at the rounded widths (tests/test_gradient_model.py). A width is a non-negative real
variable kept in [lo, hi] by WidthRange and trained like any weight (fit.py gives it its own
learning rate).
"""
import keras
from qkeras.qlayers import get_auto_range_constraint_initializer
from qkeras.quantizers import get_quantizer

from solvers.gradient.quantizers import (
    WIDTH_RANGE,
    WidthRange,
    fake_quantized_kernel,
    fake_quantized_relu,
    integer_width,
)
from solvers.networks.base7 import base7, layer_filters
from solvers.networks.layout import layer_names

ACTIVATION_INTEGER = 8  # quantized_relu(b, 8): the shipped space's [0, 256) range at every width


def _width_weight(layer, name, init_width, width_range):
    return layer.add_weight(name=name, shape=(), trainable=True,
                            initializer=keras.initializers.Constant(float(init_width)),
                            constraint=WidthRange(*width_range))


@keras.saving.register_keras_serializable(package="autoq")
class LearnedConv2D(keras.layers.Conv2D):
    """QConv2D(filters, 3, padding="same", kernel_quantizer=quantized_bits(b,0,alpha="auto_po2"),
    bias_quantizer=bias_quantizer) with b learned: b = ceil(clip(kernel_width, *width_range)).

    bias_quantizer: a qkeras quantizer string (fixed, not learned).
    init_width: kernel_width's initial value (a real number; it quantizes at its ceiling).
    """

    def __init__(self, filters, bias_quantizer, init_width=WIDTH_RANGE[1],
                 width_range=WIDTH_RANGE, kernel_size=3, padding="same",
                 kernel_initializer="glorot_uniform", **kwargs):
        self.bias_quantizer = bias_quantizer
        self.bias_quantizer_internal = get_quantizer(bias_quantizer)
        self.init_width, self.width_range = float(init_width), tuple(int(w) for w in width_range)
        # QConv2D's constraints (qkeras clips latent kernels and biases to [-1, 1] for these
        # quantizers): without them the latent weights would train differently from the QKeras
        # model they are copied into. The kernel's is the same at every width; the hi-bit one.
        hi = self.width_range[1]
        kernel_quantizer = get_quantizer(f'quantized_bits({hi},0,alpha="auto_po2")')
        for kind, quantizer in [("kernel", kernel_quantizer),
                                ("bias", self.bias_quantizer_internal)]:
            if kwargs.get(f"{kind}_constraint") is None:  # a reloaded layer brings its own
                kwargs[f"{kind}_constraint"], _ = get_auto_range_constraint_initializer(
                    quantizer, None, None)
        super().__init__(filters, kernel_size, padding=padding,
                         kernel_initializer=kernel_initializer, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel_width = _width_weight(self, "kernel_width", self.init_width, self.width_range)

    def call(self, inputs):
        lo, hi = self.width_range
        kernel = fake_quantized_kernel(self.kernel, self.kernel_width, lo, hi)
        # QConv2D.call's ops: convolution_op, then qkeras' bias_add_portable (a plain +).
        return self.convolution_op(inputs, kernel) + self.bias_quantizer_internal(self.bias)

    # Conv2D saves its kernel and bias only; Layer's own methods store every variable in order
    # (kernel, bias, kernel_width), so a saved model reloads with its learned width.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(), "bias_quantizer": self.bias_quantizer,
                "init_width": self.init_width, "width_range": list(self.width_range)}


@keras.saving.register_keras_serializable(package="autoq")
class LearnedReLU(keras.layers.Layer):
    """quantized_relu(b, integer) with b learned: b = ceil(clip(activation_width, *width_range))."""

    def __init__(self, init_width=WIDTH_RANGE[1], width_range=WIDTH_RANGE,
                 integer=ACTIVATION_INTEGER, **kwargs):
        super().__init__(**kwargs)
        self.init_width, self.width_range = float(init_width), tuple(int(w) for w in width_range)
        self.integer = int(integer)

    def build(self, input_shape):
        self.activation_width = _width_weight(self, "activation_width", self.init_width,
                                              self.width_range)

    def call(self, inputs):
        lo, hi = self.width_range
        return fake_quantized_relu(inputs, self.activation_width, self.integer, lo, hi)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init_width": self.init_width,
                "width_range": list(self.width_range), "integer": self.integer}


def learned_base7(scale, init_widths, bias_quantizers, filters=None, m=4, width_range=WIDTH_RANGE):
    """base7 (base7.base7's topology, names and filter counts) with learned-width layers.

    init_widths: {(conv name, "kernel"): f, (act name, "activation"): f} for every layer.
    bias_quantizers: one qkeras quantizer string for every bias, or {conv name: string}.
    filters: None or {conv name: filters}, as base7 takes them.
    width_range: (lo, hi), the integer widths the learned ones round to (GradientCost's).
    """
    convs, acts = layer_names(m)
    missing = [f"{layer} {kind}" for layer, kind in [(c, "kernel") for c in convs]
               + [(a, "activation") for a in acts] if (layer, kind) not in init_widths]
    if missing:
        raise ValueError(f"init_widths: no initial width for {', '.join(missing)}")
    if isinstance(bias_quantizers, str):
        bias_quantizers = dict.fromkeys(convs, bias_quantizers)

    def conv_layer(name, count):
        return LearnedConv2D(count, bias_quantizers[name], init_widths[name, "kernel"],
                             width_range, name=name)

    def relu_layer(name):
        return LearnedReLU(init_widths[name, "activation"], width_range, name=name)

    net = base7(scale=scale, m=m, filters=filters, conv_layer=conv_layer, relu_layer=relu_layer)
    return keras.Model(net.input, net.output, name="learned_base7")


def learned_widths(model):
    """{(layer, kind): width variable} of a learned base7, in the network's layer order."""
    widths = {}
    for layer in model.layers:
        if isinstance(layer, LearnedConv2D):
            widths[layer.name, "kernel"] = layer.kernel_width
        elif isinstance(layer, LearnedReLU):
            widths[layer.name, "activation"] = layer.activation_width
    return widths


def width_ranges(model):
    """{(layer, kind): (lo, hi)} of a learned base7's widths."""
    return {(layer.name, "kernel" if isinstance(layer, LearnedConv2D) else "activation"):
            layer.width_range
            for layer in model.layers if isinstance(layer, (LearnedConv2D, LearnedReLU))}


def rounded_bits(model):
    """{(layer, kind): int} the learned widths quantize at now: ceil(clip(f, lo, hi))."""
    ranges = width_ranges(model)
    return {key: integer_width(f, *ranges[key]) for key, f in learned_widths(model).items()}


def to_qkeras(model, quantizers, scale, m=4):
    """A plain QKeras base7 (base7.base7(quantizers=..., filters=...)) holding the learned model's
    latent kernels and biases. quantizers: base7's {layer: {kind: qkeras string}}; where they
    name the rounded widths (rounded_bits), the outputs equal the learned model's exactly."""
    qmodel = base7(scale=scale, m=m, quantizers=quantizers, filters=layer_filters(model, m))
    for name in layer_names(m)[0]:
        layer = model.get_layer(name)
        qmodel.get_layer(name).set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    return qmodel
