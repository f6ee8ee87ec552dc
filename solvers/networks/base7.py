"""base7: the anchor-based plain super-resolution net, in float32 and with per-layer qkeras quantizers.

Layer names are shared by both versions (conv_0..conv_{m+2}, act_0..act_{m+1}) so float weights copy
into a quantized model by name, and per-layer quantizers are keyed by the same names everywhere
(hyperparameters, trials.csv, best_config.yaml).

Widths ("rebalancing", AutoQKeras' tune_filters): base7(filters=...) changes any convolution's
output channels but the last one's, which must stay 3·scale² (depth-to-space turns them into the
scale×scale sub-pixels of 3 colours, and the anchor add needs that many). FilterSearch declares a
search over them; the saved .keras carries each layer's filters, so it reloads as it was built.
"""
import hashlib
from dataclasses import dataclass

import keras
import keras_tuner as kt
import numpy as np
from qkeras import QActivation, QConv2D

from solvers.networks.fast_relu import QReLU
from solvers.networks.layers import ClipPixels, DepthToSpace
from solvers.networks.layout import (FILTERS_MULTIPLIER, base_filters, hp_name, layer_names,
                                     scaled_filters)


@dataclass(frozen=True)
class QuantizerChoice:
    """One layer's choice of one kind of quantizer (config.search_choices builds them).

    layers: the layers that take this choice: one, or those of a `shared` limit entry.
    name: the hyperparameter: <layer>_<kind>_bits (conv_0_kernel_bits; for shared layers
        <shared name>_<kind>_bits) when each width left after the limit has one quantizer, the
        options then being those widths (ordered integers, which TensorBoard's HParams and the
        Bayesian oracle read as numbers); hp_name (conv_0_kernel) otherwise, the options being
        the quantizer strings.
    options: the hyperparameter's values, fewest bits first.
    quantizers: {option: qkeras quantizer string}.
    """
    layers: tuple
    kind: str
    name: str
    options: tuple
    quantizers: dict

    @property
    def by_bits(self):
        return all(isinstance(x, int) for x in self.options)


def quantizer_values(choices, values):
    """{hp_name: quantizer string} of every layer's quantizers for these hyperparameter values
    (choices: config.search_choices) — quantizers_from_hp's input, trials.csv's string columns."""
    return {hp_name(layer, c.kind): c.quantizers[values[c.name]] for c in choices.values()
            if c.name in values for layer in c.layers}


def layer_filters(model, m=4):
    """{conv name: filters} of a built base7."""
    return {name: int(model.get_layer(name).filters) for name in layer_names(m)[0]}


def _conv(name, filters, quantizers):
    """A 3×3 'same' conv: QConv2D when this layer has quantizers, plain Conv2D (float32) otherwise."""
    if quantizers is None:
        return keras.layers.Conv2D(filters, 3, padding="same", name=name)
    # Keras' Conv2D initializer, not qkeras' he_normal default: on [0, 255] pixels he_normal makes
    # activations of hundreds, and every quantized model we trained collapsed to the anchor
    # (27.82 dB on the default validation photos, even at 8 bits; 29.4 dB with glorot_uniform).
    return QConv2D(filters, 3, padding="same", name=name, kernel_initializer="glorot_uniform",
                   kernel_quantizer=quantizers["kernel"], bias_quantizer=quantizers["bias"])


def _relu(name, quantizers, activation_layer):
    if quantizers is None:
        return keras.layers.ReLU(name=name)
    return activation_layer(quantizers["activation"], name=name)


def base7(scale=3, num_fea=28, m=4, in_channels=3, out_channels=3, quantizers=None,
          activation_layer=QReLU, filters=None, conv_layer=None, relu_layer=None):
    """base7 on LR RGB pixels in [0, 255] of any size → SR pixels in [0, 255], `scale` times larger.

    quantizers: None for the float32 network, or {layer name: {"kernel": str, "bias": str}} for
    convolutions and {layer name: {"activation": str}} for ReLUs (qkeras quantizer strings); a layer
    missing from the dict stays float32.
    activation_layer: the class of the quantized ReLUs; qkeras' QActivation gives the reference
    implementation that QReLU reproduces faster (make bench times both).
    filters: None for the designed filter counts (base_filters), or {conv name: output channels}
    for the layers whose count differs (a filter search's choice); the last convolution must keep
    out_channels·scale² (ValueError otherwise).
    conv_layer(name, filters), relu_layer(name): the layers at base7's convolutions and ReLUs
    instead of those `quantizers` makes (solvers/gradient/model.py: learned-width ones); None
    for those of `quantizers`.
    """
    quantizers = quantizers or {}
    conv_layer = conv_layer or (lambda name, count: _conv(name, count, quantizers.get(name)))
    relu_layer = relu_layer or (lambda name: _relu(name, quantizers.get(name), activation_layer))
    conv_names, act_names = layer_names(m)
    filters_of = base_filters(scale, num_fea, m, out_channels)
    unknown = sorted(set(filters or {}) - set(filters_of))
    if unknown:
        raise ValueError(f"filters: no convolution {unknown[0]!r} in base7 ({', '.join(filters_of)})")
    filters_of.update({name: int(n) for name, n in (filters or {}).items()})
    up_channels = out_channels * scale * scale
    if filters_of[conv_names[-1]] != up_channels:
        raise ValueError(f"filters: {conv_names[-1]} must keep {up_channels} = {out_channels}·"
                         f"scale² outputs (depth-to-space and the anchor add), not "
                         f"{filters_of[conv_names[-1]]}")
    if min(filters_of.values()) < 1:
        raise ValueError(f"filters: every layer needs at least 1, got {filters_of}")
    inputs = keras.Input((None, None, in_channels), name="lr")
    # The anchor repeats the input s² times so that depth-to-space turns it into a nearest-neighbour
    # upscale: the convolutions only learn the residual.
    anchor = keras.layers.Concatenate(name="anchor")([inputs] * (scale * scale))
    x = inputs
    for i, name in enumerate(conv_names):
        x = conv_layer(name, filters_of[name])(x)
        if i < len(act_names):
            x = relu_layer(act_names[i])(x)
    x = keras.layers.Add(name="add_anchor")([x, anchor])
    x = DepthToSpace(scale, name="depth_to_space")(x)
    outputs = ClipPixels(name="clip")(x)
    return keras.Model(inputs, outputs, name="base7")


def quantizers_from_hp(values, m=4):
    """Per-layer quantizer dict (base7's `quantizers` argument) from flat quantizer strings keyed
    by hp_name (quantizer_values turns hyperparameter values into these)."""
    conv_names, act_names = layer_names(m)
    quantizers = {c: {k: values[hp_name(c, k)] for k in ("kernel", "bias")} for c in conv_names}
    quantizers.update({a: {"activation": values[hp_name(a, "activation")]} for a in act_names})
    return quantizers


def copy_float_weights(model, float_weights):
    """Copies {layer name: [kernel, bias]} of a float32 base7 into the same-named layers of `model`.

    Where a filter search changed filter counts, a layer's float weights no longer fit: the overlapping
    slice is copied (kernel[:, :, :n_in, :n_out], bias[:n_out], each the smaller of the two
    counts) and the rest keeps `model`'s initializer. A narrower layer starts from the float
    model's first channels (the dropped ones' contributions are gone), a wider one from all of
    them plus freshly initialized ones. What the architecture fixes must still match: the kernel
    size, the first convolution's input (RGB) and the last one's 3·scale² outputs; ValueError
    otherwise (a float model at another scale, another network).
    """
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for name, weights in float_weights.items():
        layer = model.get_layer(name)
        current = [np.array(w) for w in layer.get_weights()]
        expected, found = [w.shape for w in current], [tuple(np.shape(w)) for w in weights]
        if expected == found:
            layer.set_weights(weights)
            continue
        fits = (len(expected) == len(found) == 2 and len(found[0]) == 4
                and expected[0][:2] == found[0][:2]
                and (name != convs[0] or expected[0][2] == found[0][2])
                and (name != convs[-1] or expected[0][3] == found[0][3]))
        if not fits:
            raise ValueError(f"{name}: float weights {found} do not fit {expected}")
        n_in, n_out = min(expected[0][2], found[0][2]), min(expected[0][3], found[0][3])
        current[0][:, :, :n_in, :n_out] = weights[0][:, :, :n_in, :n_out]
        current[1][:n_out] = weights[1][:n_out]
        layer.set_weights(current)


def fold_quantized_weights(model, scale, m=4):
    """The same network for inference, with every QConv2D's kernel and bias quantized once and
    stored in a plain Conv2D, instead of re-quantized by qkeras inside every call; the activation
    quantizers stay (they act on data). Outputs are those of `model`."""
    conv_names, act_names = layer_names(m)
    activations = {name: {"activation": model.get_layer(name).activation}
                   for name in act_names if isinstance(model.get_layer(name), QActivation)}
    folded = base7(scale=scale, m=m, quantizers=activations, filters=layer_filters(model, m))
    for name in conv_names:
        layer = model.get_layer(name)
        weights = [layer.kernel, layer.bias]
        quantizers = [getattr(layer, "kernel_quantizer_internal", None),
                      getattr(layer, "bias_quantizer_internal", None)]
        folded.get_layer(name).set_weights(
            [np.asarray(w if q is None else q(w)) for w, q in zip(weights, quantizers)])
    return folded


@dataclass(frozen=True)
class FilterSearch:
    """AutoQKeras' filter search ("rebalancing"), over base7's filter counts.

    mode: "block": one hyperparameter, filters_multiplier, over the multipliers, scales every layer
        in `base`; "layer": one hyperparameter per layer in `base`, conv_i_filters, over that
        layer's filter counts (integers, so TensorBoard's HParams and the Bayesian oracle see ordered
        numbers).
    multipliers: the multipliers offered (AutoQKeras: 0.5, 0.75, 1, 1.5, 2); a count is
        scaled_filters(designed count, multiplier).
    base: {conv name: designed filters} of the layers searched; the others keep base7's.
    """
    mode: str
    multipliers: tuple
    base: dict

    def choices(self):
        """{hyperparameter name: options, smallest first}."""
        if self.mode == "block":
            return {FILTERS_MULTIPLIER: sorted({float(x) for x in self.multipliers})}
        return {hp_name(name, "filters"): sorted({scaled_filters(count, x)
                                                  for x in self.multipliers})
                for name, count in self.base.items()}

    def default(self, name):
        """The designed filter count (multiplier 1) if offered, as AutoQKeras' default; else the first."""
        options = self.choices()[name]
        designed = 1.0 if name == FILTERS_MULTIPLIER else self.base[name[:-len("_filters")]]
        return designed if designed in options else options[0]

    def filters_of(self, values):
        """{conv name: filters} of the searched layers for these hyperparameter values."""
        if self.mode == "block":
            return {name: scaled_filters(count, values[FILTERS_MULTIPLIER])
                    for name, count in self.base.items()}
        return {name: int(values[hp_name(name, "filters")]) for name in self.base}


class MyHyperModel(kt.HyperModel):
    """Quantized base7 whose 13 layers each pick their quantizers from the search space.

    choices: {hyperparameter name: QuantizerChoice} (config.search_choices: the YAML search
        space after the limit); every entry becomes one hp.Choice (ordered for widths).
    compile_fn(model): compiles a built model (train.compile_model), so trials, retrain and
        baselines share one optimizer, loss and metric setup.
    fit_fn(model, *args, **kwargs): the one training loop (train.fit); the tuner's callbacks arrive
        in kwargs and run after ours.
    float_weights: None to start from Keras' initializers, or {conv name: [kernel, bias]} from a
        trained float32 base7 (pretrained_* targets), copied in before training (the overlapping
        slice where a layer's filter count differs: copy_float_weights).
    filter_search: None to keep base7's filter counts (no filter hyperparameter at all), or a
        FilterSearch whose hyperparameters come after the quantizers'.
    seed: the run's seed: each build first seeds Keras from (seed, the values), so a trial's
        initial weights never depend on what the process built or drew before it; None leaves
        Keras' random state as it is.
    """

    def __init__(self, choices, compile_fn, fit_fn, scale=3, float_weights=None, m=4,
                 filter_search=None, seed=None):
        super().__init__(name="base7")
        self.choices, self.compile_fn, self.fit_fn = choices, compile_fn, fit_fn
        self.scale, self.float_weights, self.m = scale, float_weights, m
        self.filter_search, self.seed = filter_search, seed

    def filters_of(self, values):
        """{conv name: filters} of every convolution for these hyperparameter values."""
        filters = base_filters(self.scale, m=self.m)
        if self.filter_search is not None:
            filters.update(self.filter_search.filters_of(values))
        return filters

    def build(self, hp):
        values = {name: hp.Choice(name, list(c.options), ordered=True if c.by_bits else None)
                  for name, c in self.choices.items()}
        if self.filter_search is not None:
            values.update({name: hp.Choice(name, options, default=self.filter_search.default(name))
                           for name, options in self.filter_search.choices().items()})
        if self.seed is not None:  # sha256, not hash(): Python salts that per process
            plain = sorted((k, v.item() if hasattr(v, "item") else v) for k, v in values.items())
            text = repr((self.seed, plain)).encode()  # numpy scalars as the Python values they are
            keras.utils.set_random_seed(int.from_bytes(hashlib.sha256(text).digest()[:4], "big"))
        quantizers = quantizers_from_hp(quantizer_values(self.choices, values), self.m)
        model = base7(scale=self.scale, m=self.m, quantizers=quantizers,
                      filters=self.filters_of(values))
        if self.float_weights is not None:
            copy_float_weights(model, self.float_weights)
        self.compile_fn(model)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Trains through fit_fn; a loss that became NaN or inf (training stopped at once by
        TerminateOnNaN) fails the trial, recorded with its reason, and the search goes on."""
        history = self.fit_fn(model, *args, **kwargs)
        for epoch, loss in enumerate(history.history.get("loss", [])):
            if not np.isfinite(loss):
                raise kt.errors.FailedTrialError(
                    f"loss became {loss} in epoch {kwargs.get('initial_epoch', 0) + epoch + 1}")
        return history
