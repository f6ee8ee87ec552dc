"""base7: the anchor-based plain super-resolution net, in float32 and with per-layer qkeras quantizers.

Layer names are shared by both versions (conv_0..conv_{m+2}, act_0..act_{m+1}) so float weights copy
into a quantized model by name, and per-layer quantizers are keyed by the same names everywhere
(hyperparameters, trials.csv, best_config.yaml).
"""
import keras
import keras_tuner as kt
import numpy as np
from qkeras import QActivation, QConv2D

from solvers.networks.fast_relu import QReLU
from solvers.networks.layers import ClipPixels, DepthToSpace


def layer_names(m=4):
    """(conv names, activation names) of base7 with m middle layers: m+3 convolutions, m+2 ReLUs."""
    return [f"conv_{i}" for i in range(m + 3)], [f"act_{i}" for i in range(m + 2)]


def hp_name(layer, kind):
    """Hyperparameter / CSV column name of one quantizer, e.g. conv_3_kernel, act_0_activation."""
    return f"{layer}_{kind}"


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
          activation_layer=QReLU):
    """base7 on LR RGB pixels in [0, 255] of any size → SR pixels in [0, 255], `scale` times larger.

    quantizers: None for the float32 network, or {layer name: {"kernel": str, "bias": str}} for
    convolutions and {layer name: {"activation": str}} for ReLUs (qkeras quantizer strings); a layer
    missing from the dict stays float32.
    activation_layer: the class of the quantized ReLUs; qkeras' QActivation gives the reference
    implementation that QReLU reproduces faster (make bench times both).
    """
    quantizers = quantizers or {}
    conv_names, act_names = layer_names(m)
    up_channels = out_channels * scale * scale
    inputs = keras.Input((None, None, in_channels), name="lr")
    # The anchor repeats the input s² times so that depth-to-space turns it into a nearest-neighbour
    # upscale: the convolutions only learn the residual.
    anchor = keras.layers.Concatenate(name="anchor")([inputs] * (scale * scale))
    widths = [num_fea] * (m + 1) + [up_channels, up_channels]
    x = inputs
    for i, (name, filters) in enumerate(zip(conv_names, widths)):
        x = _conv(name, filters, quantizers.get(name))(x)
        if i < len(act_names):
            x = _relu(act_names[i], quantizers.get(act_names[i]), activation_layer)(x)
    x = keras.layers.Add(name="add_anchor")([x, anchor])
    x = DepthToSpace(scale, name="depth_to_space")(x)
    outputs = ClipPixels(name="clip")(x)
    return keras.Model(inputs, outputs, name="base7")


def quantizers_from_hp(values, m=4):
    """Per-layer quantizer dict (base7's `quantizers` argument) from flat hyperparameter values."""
    conv_names, act_names = layer_names(m)
    quantizers = {c: {k: values[hp_name(c, k)] for k in ("kernel", "bias")} for c in conv_names}
    quantizers.update({a: {"activation": values[hp_name(a, "activation")]} for a in act_names})
    return quantizers


def copy_float_weights(model, float_weights):
    """Copies {layer name: [kernel, bias]} into the same-named layers of `model` (shapes must match)."""
    for name, weights in float_weights.items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [tuple(np.shape(w)) for w in weights]:
            raise ValueError(f"{name}: float weights {[np.shape(w) for w in weights]} != {expected}")
        layer.set_weights(weights)


def fold_quantized_weights(model, scale, m=4):
    """The same network for inference, with every QConv2D's kernel and bias quantized once and
    stored in a plain Conv2D, instead of re-quantized by qkeras inside every call; the activation
    quantizers stay (they act on data). Outputs are those of `model`."""
    conv_names, act_names = layer_names(m)
    activations = {name: {"activation": model.get_layer(name).activation}
                   for name in act_names if isinstance(model.get_layer(name), QActivation)}
    folded = base7(scale=scale, m=m, quantizers=activations)
    for name in conv_names:
        layer = model.get_layer(name)
        weights = [layer.kernel, layer.bias]
        quantizers = [getattr(layer, "kernel_quantizer_internal", None),
                      getattr(layer, "bias_quantizer_internal", None)]
        folded.get_layer(name).set_weights(
            [np.asarray(w if q is None else q(w)) for w, q in zip(weights, quantizers)])
    return folded


class MyHyperModel(kt.HyperModel):
    """Quantized base7 whose 13 layers each pick their quantizers from the search space.

    choices: {hyperparameter name: [quantizer strings]} (config.search_choices: the YAML search
        space after the per-layer-type limit); every entry becomes one hp.Choice.
    compile_fn(model): compiles a built model (train.compile_model), so trials, retrain and
        baselines share one optimizer, loss and metric setup.
    fit_fn(model, *args, **kwargs): the one training loop (train.fit); the tuner's callbacks arrive
        in kwargs and run after ours.
    float_weights: None to start from Keras' initializers, or {conv name: [kernel, bias]} from a
        trained float32 base7 (pretrained_* targets), copied in before training.
    """

    def __init__(self, choices, compile_fn, fit_fn, scale=3, float_weights=None, m=4):
        super().__init__(name="base7")
        self.choices, self.compile_fn, self.fit_fn = choices, compile_fn, fit_fn
        self.scale, self.float_weights, self.m = scale, float_weights, m

    def build(self, hp):
        values = {name: hp.Choice(name, options) for name, options in self.choices.items()}
        model = base7(scale=self.scale, m=self.m, quantizers=quantizers_from_hp(values, self.m))
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
