"""base7, its layers, quantizer plumbing and MyHyperModel."""
import subprocess
import sys

import keras
import keras_tuner as kt
import numpy as np
import pytest

from solvers import train
from solvers.config import SearchSpace
from solvers.search.space import search_choices
from solvers.networks.base7 import (FilterSearch, MyHyperModel, base7, copy_float_weights,
                                    fold_quantized_weights, layer_filters, layer_names,
                                    quantizers_from_hp)
from solvers.search import cost
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


# The quantized model also has other widths than base7's (a filter search's choice): the layers'
# configs carry them.
@pytest.mark.parametrize("quantized, filters", [(False, None),
                                                (True, {"conv_0": 42, "conv_2": 14, "conv_5": 41})])
def test_saved_model_reloads_in_new_process_with_identical_outputs(tmp_path, quantized, filters):
    quantizers = quantizers_from_hp(mixed_quantizers()) if quantized else None
    model = train.compile_model(base7(quantizers=quantizers, filters=filters))
    original, reloaded = _round_trip(model, tmp_path)
    np.testing.assert_array_equal(original, reloaded)
    assert layer_filters(keras.models.load_model(tmp_path / "m.keras")) == layer_filters(model)


def _hypermodel(choices, float_weights=None):
    return MyHyperModel(choices, compile_fn=train.compile_model, fit_fn=train.fit,
                        float_weights=float_weights)


def test_hypermodel_layers_carry_exactly_the_sampled_quantizers():
    values = mixed_quantizers()
    hp = kt.HyperParameters()
    for name, value in values.items():  # the hyperparameters are widths: conv_0_kernel_bits...
        hp.Fixed(f"{name}_bits", int(value[15]))
    model = _hypermodel(search_choices(SPACE, CONV, ACT)).build(hp)
    assert len(hp.space) == 20
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
        bits = p.values
        assert p.name.endswith("_bits") and p.ordered and bits == sorted(bits)
        if p.name.startswith("conv_0"):
            assert max(bits) == 8
        elif p.name.endswith("_kernel_bits"):
            assert max(bits) == 4 and min(bits) == 2
        elif p.name.endswith("_bias_bits"):
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
    model = base7(quantizers=quantizers_from_hp(mixed_quantizers()), filters={"conv_2": 14})
    for layer in model.layers:  # trained-looking weights, not just the initial ones
        if layer.weights:
            layer.set_weights([w + np.random.default_rng(3).normal(0, 0.05, w.shape)
                               for w in layer.get_weights()])
    folded = fold_quantized_weights(model, scale=3)
    assert not any("QConv2D" in type(layer).__name__ for layer in folded.layers)
    assert layer_filters(folded) == layer_filters(model)  # other widths than base7's kept
    x = np.random.default_rng(4).uniform(0, 255, (1, 9, 7, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(folded(x)), np.asarray(model(x)), atol=1e-3)
    np.testing.assert_array_equal(folded.get_layer("conv_2").get_weights()[0],
                                  model.get_layer("conv_2").kernel_quantizer_internal(
                                      model.get_layer("conv_2").kernel).numpy())


# conv_2 at 14 filters: conv_2's kernel loses half its outputs, conv_3's half its inputs.
NARROW = {"conv_2": 14}


def test_base7_with_other_filters_has_their_shapes_and_hand_counted_size():
    model = base7(scale=3, filters=NARROW, quantizers=quantizers_from_hp(
        {**{f"{c}_kernel": KBITS[4] for c in CONV}, **{f"{c}_bias": KBITS[8] for c in CONV},
         **{f"{a}_activation": RELU[8] for a in ACT}}))
    assert model.get_layer("conv_2").kernel.shape == (3, 3, 28, 14)
    assert model.get_layer("conv_3").kernel.shape == (3, 3, 14, 28)
    assert layer_filters(model) == {"conv_0": 28, "conv_1": 28, "conv_2": 14, "conv_3": 28,
                                    "conv_4": 28, "conv_5": 27, "conv_6": 27}
    # kernels 3·3·in·out: conv_0 3→28, conv_1 28→28, conv_2 28→14, conv_3 14→28, conv_4 28→28,
    # conv_5 28→27, conv_6 27→27; biases = outputs.
    weights = 9 * (3 * 28 + 28 * 28 + 28 * 14 + 14 * 28 + 28 * 28 + 28 * 27 + 27 * 27)
    biases = 28 + 28 + 14 + 28 + 28 + 27 + 27
    assert (weights, biases) == (35289, 180)
    assert cost.size_bits(model) == weights * 4 + biases * 8 == 142596
    assert base7(filters=NARROW).count_params() == weights + biases
    x = np.random.default_rng(5).uniform(0, 255, (1, 6, 7, 3)).astype("float32")
    assert np.asarray(model(x)).shape == (1, 18, 21, 3)


@pytest.mark.parametrize("filters, match", [({"conv_6": 28}, "conv_6 must keep 27"),
                                            ({"conv_9": 8}, "no convolution 'conv_9'"),
                                            ({"conv_1": 0}, "at least 1")])
def test_base7_refuses_widths_the_architecture_cannot_take(filters, match):
    with pytest.raises(ValueError, match=match):
        base7(scale=3, filters=filters)


def test_copy_float_weights_copies_the_overlapping_slice_where_widths_differ():
    float_model = base7()
    weights = {c: float_model.get_layer(c).get_weights() for c in CONV}
    model = base7(quantizers=quantizers_from_hp(mixed_quantizers()),
                  filters={"conv_0": 42, "conv_2": 14})
    initial = {c: model.get_layer(c).get_weights() for c in CONV}
    copy_float_weights(model, weights)
    got = {c: model.get_layer(c).get_weights() for c in CONV}
    # conv_0 is wider (42 > 28): its first 28 outputs are the float ones, the rest as initialized.
    np.testing.assert_array_equal(got["conv_0"][0][..., :28], weights["conv_0"][0])
    np.testing.assert_array_equal(got["conv_0"][0][..., 28:], initial["conv_0"][0][..., 28:])
    np.testing.assert_array_equal(got["conv_0"][1][:28], weights["conv_0"][1])
    np.testing.assert_array_equal(got["conv_0"][1][28:], initial["conv_0"][1][28:])
    # conv_1 reads 42 channels: the float kernel fills its first 28 inputs.
    np.testing.assert_array_equal(got["conv_1"][0][:, :, :28], weights["conv_1"][0])
    np.testing.assert_array_equal(got["conv_1"][0][:, :, 28:], initial["conv_1"][0][:, :, 28:])
    # conv_2 is narrower (14): the float model's first 14 outputs; conv_3 its first 14 inputs.
    np.testing.assert_array_equal(got["conv_2"][0], weights["conv_2"][0][..., :14])
    np.testing.assert_array_equal(got["conv_2"][1], weights["conv_2"][1][:14])
    np.testing.assert_array_equal(got["conv_3"][0], weights["conv_3"][0][:, :, :14])
    for conv in ("conv_4", "conv_5", "conv_6"):  # same shapes: copied whole
        for g, w in zip(got[conv], weights[conv]):
            np.testing.assert_array_equal(g, w)
    out = np.asarray(model(np.full((1, 5, 5, 3), 100.0, "float32")))
    assert out.shape == (1, 15, 15, 3) and np.isfinite(out).all()


def test_hypermodel_builds_the_searched_widths():
    values = mixed_quantizers()
    layer = FilterSearch("layer", (0.5, 1.0, 2.0), {"conv_1": 28, "conv_5": 27})
    assert layer.choices() == {"conv_1_filters": [14, 28, 56], "conv_5_filters": [14, 27, 54]}
    hp = kt.HyperParameters()
    for name, value in {**values, "conv_1_filters": 56, "conv_5_filters": 14}.items():
        hp.Fixed(name, value)
    model = MyHyperModel(search_choices(SPACE, CONV, ACT), train.compile_model, train.fit,
                         filter_search=layer).build(hp)
    assert layer_filters(model) == {"conv_0": 28, "conv_1": 56, "conv_2": 28, "conv_3": 28,
                                    "conv_4": 28, "conv_5": 14, "conv_6": 27}
    block = FilterSearch("block", (0.5, 1.5), {"conv_0": 28, "conv_5": 27})
    hp = kt.HyperParameters()
    for name, value in {**values, "filters_multiplier": 1.5}.items():
        hp.Fixed(name, value)
    hypermodel = MyHyperModel(search_choices(SPACE, CONV, ACT), train.compile_model, train.fit,
                              filter_search=block)
    model = hypermodel.build(hp)
    # 27 × 1.5 = 40.5: rounded half up, not to the even 40.
    assert layer_filters(model) == hypermodel.filters_of(hp.values) == {
        "conv_0": 42, "conv_1": 28, "conv_2": 28, "conv_3": 28, "conv_4": 28, "conv_5": 41,
        "conv_6": 27}
    hp = kt.HyperParameters()  # declared as choices, the designed width as the default
    hypermodel.build(hp)
    assert hp.values["filters_multiplier"] == 0.5 and len(hp.space) == 21  # 1 is not offered
    hp = kt.HyperParameters()
    MyHyperModel(search_choices(SPACE, CONV, ACT), train.compile_model, train.fit,
                 filter_search=layer).build(hp)
    assert [p.name for p in hp.space][20:] == ["conv_1_filters", "conv_5_filters"]
    assert hp.values["conv_1_filters"] == 28 and hp.space[20].ordered


def test_progress_line_shows_bits_of_width_and_string_hyperparameters():
    from solvers.search.tuners import describe
    values = {"conv_0_kernel_bits": 4, "conv_0_bias_bits": 8, "act_0_activation_bits": 3,
              "conv_1_kernel": KBITS[6], "conv_1_bias_bits": 2}
    assert describe(values, {KBITS[6]: 6}) == "conv_0 4/8 r3 | conv_1 6/2"


def test_hypermodel_builds_a_shared_choice_into_every_layer_of_it():
    shared = SearchSpace(**{**SPACE.__dict__, "limit": {"conv_[1-4]": {"kernel": 5}},
                            "shared": {"conv_[1-4]": "middle"}})
    hp = kt.HyperParameters()
    hp.Fixed("middle_kernel_bits", 3)
    model = _hypermodel(search_choices(shared, CONV, ACT)).build(hp)
    assert [model.get_layer(c).kernel_quantizer_internal.bits for c in CONV[1:5]] == [3] * 4
    assert len(hp.space) == 20 - 2 * 3 and "middle_bias_bits" in [p.name for p in hp.space]
