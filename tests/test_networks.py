"""base7, its layers, quantizer plumbing and MyHyperModel."""
import subprocess
import sys

import keras_tuner as kt
import numpy as np
import pytest

from solvers import train
from solvers.config import SearchSpace, search_choices
from solvers.networks.base7 import (MyHyperModel, base7, copy_float_weights,
                                    fold_quantized_weights, layer_names, quantizers_from_hp)
from solvers.networks.layers import DepthToSpace

CONV, ACT = layer_names()
KBITS = {b: f'quantized_bits({b},0,alpha="auto_po2")' for b in range(2, 9)}
RELU = {b: f"quantized_relu({b},8)" for b in range(2, 9)}
SPACE = SearchSpace(kernel={q: b for b, q in KBITS.items()}, bias={q: b for b, q in KBITS.items()},
                    activation={q: b for b, q in RELU.items()})


def mixed_quantizers():
    """A fixed, deliberately uneven per-layer assignment."""
    values = {f"{c}_kernel": KBITS[2 + i % 7] for i, c in enumerate(CONV)}
    values.update({f"{c}_bias": KBITS[8 - i % 5] for i, c in enumerate(CONV)})
    values.update({f"{a}_activation": RELU[3 + i] for i, a in enumerate(ACT)})
    return values


def test_parameter_count_is_42539():
    assert base7(scale=3).count_params() == 42539


def test_depth_to_space_matches_numpy_reference():
    s, h, w, c = 3, 4, 5, 2
    x = np.random.default_rng(0).normal(size=(1, h, w, c * s * s)).astype("float32")
    # Reference: out[y*s+dy, x*s+dx, ch] = in[y, x, (dy*s+dx)*c + ch]  (TensorFlow's DCR order)
    expected = x.reshape(1, h, w, s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(1, h * s, w * s, c)
    np.testing.assert_array_equal(np.asarray(DepthToSpace(s)(x)), expected)


def test_zero_weights_give_nearest_neighbour_upscale_and_output_is_clipped():
    model = base7(scale=3)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    lr = np.random.default_rng(1).uniform(0, 255, (2, 7, 5, 3)).astype("float32")
    out = np.asarray(model(lr))
    assert out.shape == (2, 21, 15, 3)
    np.testing.assert_allclose(out, lr.repeat(3, axis=1).repeat(3, axis=2), atol=1e-4)
    model.get_layer("conv_6").set_weights([np.zeros((3, 3, 27, 27), "float32"),
                                           np.full(27, 1000.0, "float32")])
    assert float(np.max(model(lr))) == 255.0


def _round_trip(model, tmp_path):
    """Saves `model`, reloads it in a NEW process, and returns (input, original output, reloaded output)."""
    x = np.random.default_rng(2).uniform(0, 255, (1, 11, 13, 3)).astype("float32")
    path, inp, out = tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "y.npy"
    model.save(path)
    np.save(inp, x)
    code = ("import sys, numpy as np, keras; sys.path.insert(0, '.');"
            "import solvers.train, solvers.networks.base7;"
            f"m = keras.models.load_model('{path}');"
            f"np.save('{out}', np.asarray(m.predict(np.load('{inp}'), verbose=0)))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return np.asarray(model.predict(x, verbose=0)), np.load(out)


@pytest.mark.parametrize("quantized", [False, True])
def test_saved_model_reloads_in_new_process_with_identical_outputs(tmp_path, quantized):
    quantizers = quantizers_from_hp(mixed_quantizers()) if quantized else None
    model = train.compile_model(base7(quantizers=quantizers))
    original, reloaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(original, reloaded)


def _hypermodel(choices, float_weights=None):
    return MyHyperModel(choices, compile_fn=train.compile_model, fit_fn=train.fit,
                        float_weights=float_weights)


def test_hypermodel_layers_carry_exactly_the_sampled_quantizers():
    values = mixed_quantizers()
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    model = _hypermodel(search_choices(SPACE, CONV, ACT)).build(hp)
    for conv in CONV:
        layer = model.get_layer(conv)
        assert layer.kernel_quantizer_internal.bits == int(values[f"{conv}_kernel"][15])
        assert layer.get_config()["kernel_quantizer"]["config"]["bits"] == layer.kernel_quantizer_internal.bits
        assert layer.bias_quantizer_internal.bits == int(values[f"{conv}_bias"][15])
    for act in ACT:
        assert model.get_layer(act).activation.bits == int(values[f"{act}_activation"][15])
    assert model.optimizer is not None  # compiled, as Keras Tuner expects


def test_hypermodel_declares_13_layers_of_choices_and_honours_the_limit():
    limited = SearchSpace(**{**SPACE.__dict__, "limit": {"Conv2D": {"kernel": 4, "bias": 6},
                                                           "Activation": {"activation": 3},
                                                           "conv_0": {"kernel": 8, "bias": 8}}})
    hp = kt.HyperParameters()
    _hypermodel(search_choices(limited, CONV, ACT)).build(hp)
    assert len(hp.space) == 2 * len(CONV) + len(ACT) == 20
    for p in hp.space:
        bits = [int(v.split("(")[1].split(",")[0]) for v in p.values]
        if p.name.startswith("conv_0"):
            assert max(bits) == 8
        elif p.name.endswith("_kernel"):
            assert max(bits) == 4 and min(bits) == 2
        elif p.name.endswith("_bias"):
            assert max(bits) == 6
        else:
            assert bits == [2, 3]


def test_pretrained_transfer_copies_the_float_weights():
    float_model = base7()
    weights = {c: float_model.get_layer(c).get_weights() for c in CONV}
    hp = kt.HyperParameters()
    model = _hypermodel(search_choices(SPACE, CONV, ACT), float_weights=weights).build(hp)
    for conv in CONV:
        for got, want in zip(model.get_layer(conv).get_weights(), weights[conv]):
            np.testing.assert_array_equal(got, want)
    fresh = _hypermodel(search_choices(SPACE, CONV, ACT)).build(kt.HyperParameters())
    assert not np.array_equal(fresh.get_layer("conv_1").get_weights()[0], weights["conv_1"][0])


def test_copy_float_weights_rejects_wrong_shapes():
    model = base7(scale=3)
    wrong = base7(scale=2).get_layer("conv_6").get_weights()
    with pytest.raises(ValueError, match="conv_6"):
        copy_float_weights(model, {"conv_6": wrong})


def test_folded_weights_give_the_quantized_models_output():
    model = base7(quantizers=quantizers_from_hp(mixed_quantizers()))
    for layer in model.layers:  # trained-looking weights, not just the initial ones
        if layer.weights:
            layer.set_weights([w + np.random.default_rng(3).normal(0, 0.05, w.shape)
                               for w in layer.get_weights()])
    folded = fold_quantized_weights(model, scale=3)
    assert not any("QConv2D" in type(layer).__name__ for layer in folded.layers)
    x = np.random.default_rng(4).uniform(0, 255, (1, 9, 7, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=1e-3)
    np.testing.assert_array_equal(folded.get_layer("conv_2").get_weights()[0],
                                  model.get_layer("conv_2").kernel_quantizer_internal(
                                      model.get_layer("conv_2").kernel).numpy())
