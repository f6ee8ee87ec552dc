"""Hardware costs (cost.py, energy.py): bits, BOPs and QTools energy of base7, against hand counts.

base7 at scale 3: conv_0 3→28, conv_1..conv_4 28→28, conv_5 28→27, conv_6 27→27, all 3×3, a ReLU
after conv_0..conv_5; at the reference 64×64 LR input every tensor before depth-to-space has
4096 pixels and the output is 192×192×3.
"""
import math

import keras
import pytest
from qkeras import QActivation, QConv2D

from solvers.networks.base7 import base7, layer_names
from solvers.search import cost

CONV, ACT = layer_names()
PIXELS = 64 * 64
# (n input channels, m output channels) of conv_0..conv_6
CHANNELS = [(3, 28), (28, 28), (28, 28), (28, 28), (28, 28), (28, 27), (27, 27)]
RELU_CHANNELS = [28, 28, 28, 28, 28, 27]  # act_0..act_5
PARAMS = [3 * 9 * 28 + 28, *[28 * 9 * 28 + 28] * 4, 28 * 9 * 27 + 27, 27 * 9 * 27 + 27]
MACS = [PIXELS * m * n * 9 for n, m in CHANNELS]  # per layer, at 64×64


def quantizers(bits=8, act_bits=None, **overrides):
    """Uniform quantizers of the search space; overrides: {layer: {kind: bits}}."""
    q = {c: {"kernel": f'quantized_bits({bits},0,alpha="auto_po2")',
             "bias": f"quantized_bits({bits},0,alpha=1.0)"} for c in CONV}
    q.update({a: {"activation": f"quantized_relu({act_bits or bits},8)"} for a in ACT})
    for layer, kinds in overrides.items():
        for kind, b in kinds.items():
            q[layer][kind] = {"kernel": f'quantized_bits({b},0,alpha="auto_po2")',
                              "activation": f"quantized_relu({b},8)"}[kind]
    return q


@pytest.fixture(scope="module")
def models():
    return {"float": base7(), "u8": base7(quantizers=quantizers(8)),
            "u4": base7(quantizers=quantizers(4)), "a2": base7(quantizers=quantizers(8, 2)),
            "conv_2_k4": base7(quantizers=quantizers(8, conv_2={"kernel": 4})),
            "act_3_a2": base7(quantizers=quantizers(8, act_3={"activation": 2}))}


@pytest.fixture(scope="module")
def u8_costs(models):
    return cost.costs(models["u8"])


def test_uniform_8bit_bits_by_hand(models, u8_costs):
    assert sum(PARAMS) == 42539
    activations = (PIXELS * 3 * 8                                  # the input image
                   + sum(PIXELS * c * 8 for c in RELU_CHANNELS)    # six ReLU outputs
                   + 192 * 192 * 3 * 8)                            # the SR output
    assert activations == 98304 + 4587520 + 884736 + 884736
    assert cost.activation_bits(models["u8"], cost.Goal()) == activations
    assert u8_costs["size_bits"] == 42539 * 8
    assert u8_costs["bits"] == 42539 * 8 + activations == 6795608


def test_uniform_8bit_bops_by_hand(u8_costs):
    # b_a = 8 everywhere (input_bits for conv_0, the ReLUs' 8 bits after), b_w = 8
    expected = sum(macs * (8 * 8 + 8 + 8 + math.log2(n * 9))
                   for macs, (n, _) in zip(MACS, CHANNELS))
    assert MACS[0] == 3096576 and MACS[1] == 28901376 and MACS[6] == 26873856
    assert u8_costs["bops"] == pytest.approx(expected, rel=1e-12)


def test_float_layers_count_32_bits(models):
    model = models["float"]
    relus = sum(PIXELS * c * 32 for c in RELU_CHANNELS)
    assert cost.bits(model) == 42539 * 32 + PIXELS * 3 * 8 + relus + 192 * 192 * 3 * 8 == 24233312
    b_a = [8, *[32] * 6]  # the image at input_bits, then float ReLUs
    assert cost.bops(model) == pytest.approx(sum(macs * (a * 32 + a + 32 + math.log2(n * 9))
                                                 for macs, a, (n, _) in zip(MACS, b_a, CHANNELS)))
    # Horowitz fp32: 3.7 pJ per multiply + 0.9 pJ per add; memory adds a little on top
    fp32_macs = sum(MACS) * (3.7 + 0.9)
    assert fp32_macs <= cost.energy_pj(model) <= 1.01 * fp32_macs


def test_one_kernel_at_4_bits(models, u8_costs):
    changed = cost.costs(models["conv_2_k4"])
    assert changed["size_bits"] - u8_costs["size_bits"] == 28 * 9 * 28 * (4 - 8)
    assert changed["bits"] - u8_costs["bits"] == 28 * 9 * 28 * (4 - 8) == -28224
    # conv_2's MACs at b_w 4: 8·4 + 8 + 4 = 44 bit operations instead of 80 (log2 term unchanged)
    assert MACS[2] * (44 - 80) == -1040449536
    assert changed["bops"] - u8_costs["bops"] == pytest.approx(MACS[2] * (44 - 80))
    assert changed["energy_pj"] < u8_costs["energy_pj"]


def test_one_activation_at_2_bits(models, u8_costs):
    changed = cost.costs(models["act_3_a2"])
    assert changed["size_bits"] == u8_costs["size_bits"]
    assert changed["bits"] - u8_costs["bits"] == PIXELS * 28 * (2 - 8) == -688128
    # act_3 feeds conv_4: b_a 2 gives 2·8 + 2 + 8 = 26 bit operations per MAC instead of 80
    assert MACS[4] * (26 - 80) == -1560674304
    assert changed["bops"] - u8_costs["bops"] == pytest.approx(MACS[4] * (26 - 80))
    assert changed["energy_pj"] < u8_costs["energy_pj"]


def test_energy_orders(models, u8_costs):
    float32, u4, a2 = (cost.energy_pj(models[k]) for k in ("float", "u4", "a2"))
    u8 = u8_costs["energy_pj"]
    assert 0 < u4 < u8 < float32
    assert a2 < u8  # same weights, all activations at 2 bits instead of 8
    # 8-bit MACs: Horowitz' fixed-point multiply at 8 bits (0.2 pJ) plus an add of <= 32 bits
    mul8, add32 = 0.002994791667 * 64 + 0.001041666667 * 8, 0.003125 * 32
    assert sum(MACS) * mul8 < u8 < 1.01 * sum(MACS) * (mul8 + add32)


def test_qrelu_costs_as_qactivation(models, u8_costs):
    # QTools does not parse QReLU: the costing clone must turn it into the QActivation it is.
    reference = base7(quantizers=quantizers(8), activation_layer=QActivation)
    assert cost.costs(reference) == u8_costs


def test_input_output_bits_and_size_count(models, u8_costs):
    model = models["u8"]
    out4 = cost.costs(model, cost.Goal(output_bits=4))
    assert u8_costs["bits"] - out4["bits"] == 192 * 192 * 3 * 4
    assert out4["bops"] == u8_costs["bops"] and out4["energy_pj"] < u8_costs["energy_pj"]
    in4 = cost.costs(model, cost.Goal(input_bits=4))
    assert u8_costs["bits"] - in4["bits"] == PIXELS * 3 * 4
    # conv_0 reads the image: b_a 4 gives 4·8 + 4 + 8 = 44 instead of 80
    assert u8_costs["bops"] - in4["bops"] == pytest.approx(MACS[0] * 36)
    small = cost.costs(model, cost.Goal(input_hw=(32, 32)))
    assert small["bops"] == pytest.approx(u8_costs["bops"] / 4)
    assert u8_costs["bits"] - small["bits"] == cost.activation_bits(model, cost.Goal()) * 3 / 4
    assert small["energy_pj"] < u8_costs["energy_pj"]


def test_costs_keys_and_the_goals_cost(models, u8_costs):
    assert set(u8_costs) == {*cost.COST_COLUMNS, "cost"}
    assert u8_costs["cost"] == u8_costs["bits"]
    for kind, column in [("bops", "bops"), ("energy", "energy_pj")]:
        assert cost.costs(models["u8"], cost.Goal(type=kind))["cost"] == u8_costs[column]


def test_reference_model_keeps_widths_at_ref_bits(u8_costs):
    model = base7(num_fea=16, quantizers=quantizers(4))
    reference = cost.reference_model(model, 8)
    for name in CONV:
        layer, ref = model.get_layer(name), reference.get_layer(name)
        assert ref.kernel.shape == layer.kernel.shape and isinstance(ref, QConv2D)
        kernel, bias = ref.kernel_quantizer_internal, ref.bias_quantizer_internal
        assert (kernel.bits, kernel.integer, kernel.alpha) == (8, 0, "auto_po2")
        assert (bias.bits, bias.integer, bias.alpha) == (8, 0, 1.0)
    for name in ACT:
        assert str(reference.get_layer(name).activation) == "quantized_relu(8,8)"
    assert reference.get_layer("conv_1").kernel.shape == (3, 3, 16, 16)
    # a float base7 at 8 bits costs what the uniform 8-bit base7 costs
    assert cost.costs(cost.reference_model(base7(), 8)) == u8_costs


def test_reference_settings_change_only_the_autoqkeras_reference(models, u8_costs):
    model = models["u8"]
    fp32 = cost.Goal(reference_internal="fp32", reference_accumulator="fp32")
    assert cost.energy_pj(model, fp32) == u8_costs["energy_pj"]
    assert (cost.energy_pj(model, fp32, for_reference=True)
            > cost.energy_pj(model, cost.Goal(), for_reference=True) > 0)


def test_qtools_is_silent(models, capfd):
    cost.energy_pj(models["u4"])
    assert capfd.readouterr() == ("", "")


def test_a_layer_qtools_cannot_cost_is_an_error():
    inputs = keras.Input((None, None, 3))
    x = QConv2D(4, 3, padding="same", kernel_quantizer="quantized_bits(4,0,alpha=1.0)",
                bias_quantizer="quantized_bits(4,0,alpha=1.0)")(inputs)
    x = keras.layers.UnitNormalization()(x)
    with pytest.raises(NotImplementedError, match="UnitNormalization"):
        cost.energy_pj(keras.Model(inputs, x))
