"""hp_cost.py: base7's costs from layer bits and filter counts, against cost.py on built models."""
import random
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import REPO

from solvers.config import load_search_space
from solvers.networks.base7 import base7, quantizer_values
from solvers.networks.layout import base_filters, hp_name, layer_names, searchable_convs
from solvers.objective_settings import Goal
from solvers.search import cost
from solvers.search.hp_cost import (
    FLOAT_BITS,
    CostModel,
    EnergyTable,
    build_energy_table,
    layer_bits_of,
)
from solvers.search.space import search_choices

CONV, ACT = layer_names()
SPACE = load_search_space(REPO / "quantization_config.yaml", CONV + ACT)
KINDS = {**{(c, k): k for c in CONV for k in ("kernel", "bias")},
         **{(a, "activation"): "activation" for a in ACT}}
# Not square, and input/output bits other than 8, so that no H/W or bit swap goes unnoticed.
GOAL = Goal(input_hw=(24, 40), input_bits=7, output_bits=6)
# energy_pj: QTools rounds each layer's terms to 0.01 pJ, and truncates its total to an integer.
ENERGY_PJ = 1.2


def random_bits(rng, widths=range(2, 9), bias_widths=range(2, 9), p_float=0.15, whole=False):
    """{(layer, kind): bits}, each entry left out (float) with probability p_float; whole: a
    convolution's kernel and bias are float together (a plain Conv2D)."""
    bits = {}
    for layer, kind in KINDS:  # a kernel comes before its bias
        if kind == "bias" and whole:
            if (layer, "kernel") in bits:
                bits[layer, kind] = rng.choice(bias_widths)
        elif rng.random() >= p_float:
            bits[layer, kind] = rng.choice(bias_widths if kind == "bias" else widths)
    return bits


def random_filters(rng):
    return {c: rng.randint(1, 40) for c in searchable_convs()} if rng.random() < 0.8 else None


def model_of(layer_bits, scale=3, filters=None):
    """base7 with the shipped space's quantizers at these bits (a missing kind: None, float)."""
    quantizers = {}
    for (layer, kind), bits in layer_bits.items():
        layer_quantizers = quantizers.setdefault(layer, dict.fromkeys(
            ["kernel", "bias"] if kind != "activation" else ["activation"]))
        layer_quantizers[kind] = SPACE.quantizer(kind, bits)
    return base7(scale=scale, quantizers=quantizers, filters=filters)


@pytest.mark.parametrize("scale", [2, 3])
def test_bits_and_bops_equal_cost_py(scale):
    rng = random.Random(scale)
    models = {kind: CostModel(replace(GOAL, type=kind), scale=scale)
              for kind in ("bits", "bops")}
    for _ in range(25):
        layer_bits, filters = random_bits(rng), random_filters(rng)
        model = model_of(layer_bits, scale, filters)
        expected = {"size_bits": cost.size_bits(model), "bits": cost.bits(model, GOAL),
                    "bops": cost.bops(model, GOAL)}
        for kind, cost_model in models.items():
            costs = cost_model.costs(layer_bits, filters)
            assert costs["size_bits"] == expected["size_bits"]
            assert costs["bits"] == expected["bits"]
            assert costs["bops"] == pytest.approx(expected["bops"], rel=1e-12)
            assert costs["cost"] == cost_model.cost(layer_bits, filters) == costs[kind]


def synthetic_table(goal, scale=3, widths=(*range(2, 9), FLOAT_BITS)):
    """An EnergyTable of made-up numbers for every width: the decomposition without QTools."""
    rng = random.Random(1)
    conv = {(i, b_in, b_k, FLOAT_BITS if b_k == FLOAT_BITS else b_b):
            tuple(rng.uniform(1, 1e6) for _ in range(3)) + (rng.uniform(1, 1e3) * (i == 6),)
            for i in range(7) for b_in in (widths if i else [goal.input_bits])
            for b_k in widths for b_b in widths}
    act = {(j, b): rng.uniform(1, 1e4) for j in range(6) for b in widths}
    return EnergyTable(goal, scale, 4, conv, act, 1234.5)


@pytest.mark.parametrize("kind", ["bits", "bops", "energy"])
def test_the_chain_decomposition_holds(kind):
    goal = replace(GOAL, type=kind)
    cost_model = CostModel(goal, energy_table=synthetic_table(goal))
    rng = random.Random(7)
    for _ in range(25):
        layer_bits, filters = random_bits(rng, whole=True), random_filters(rng)
        get = layer_bits.get
        b_in, total = goal.input_bits, cost_model.fixed(filters)
        for i, conv in enumerate(CONV):
            total += cost_model.conv_term(i, b_in, get((conv, "kernel"), FLOAT_BITS),
                                          get((conv, "bias"), FLOAT_BITS), filters)
            if i < len(ACT):
                b_in = get((ACT[i], "activation"), FLOAT_BITS)
                total += cost_model.act_term(i, b_in, filters)
        assert cost_model.cost(layer_bits, filters) == pytest.approx(total, rel=1e-12)
    assert cost_model.costs(layer_bits, filters)["cost"] == cost_model.cost(layer_bits, filters)
    if kind == "bops":
        assert cost_model.fixed() == 0 and cost_model.act_term(2, 5) == 0


def test_energy_terms_scale_with_filters():
    goal = Goal(type="energy")
    table = synthetic_table(goal)
    cost_model = CostModel(goal, energy_table=table)
    inputs, parameters, ops, merge = table.conv[2, 5, 4, 8]
    wide = {"conv_1": 56}  # conv_2 reads twice the channels
    assert cost_model.conv_term(2, 5, 4, 8, wide) == pytest.approx(
        2 * inputs + parameters * (9 * 56 + 1) / (9 * 28 + 1) + 2 * ops + merge)
    assert cost_model.act_term(1, 5, wide) == pytest.approx(2 * table.act[1, 5])
    assert cost_model.conv_term(2, 5, 4, 8) == inputs + parameters + ops + merge


@pytest.fixture(scope="module")
def shipped_table():
    """The default table (scale 3, widths 2..8, biases at 8): built once, ~15-30 s."""
    return build_energy_table(Goal(type="energy"))


def check_energy(table, goal, scale, layer_bits):
    model = model_of(layer_bits, scale)
    expected = cost.costs(model, goal)
    costs = CostModel(goal, scale, energy_table=table).costs(layer_bits)
    assert costs["energy_pj"] == pytest.approx(expected["energy_pj"], abs=ENERGY_PJ)
    assert costs["cost"] == costs["energy_pj"]
    assert {k: costs[k] for k in ("size_bits", "bits", "bops")} == pytest.approx(
        {k: expected[k] for k in ("size_bits", "bits", "bops")}, rel=1e-12)


def test_energy_table_equals_qtools(shipped_table):
    rng = random.Random(3)
    assert len(shipped_table.conv) == 6 * 7 * 7 + 7 and len(shipped_table.act) == 6 * 7
    for _ in range(4):
        check_energy(shipped_table, Goal(type="energy"), 3,
                     random_bits(rng, bias_widths=[8], p_float=0))


def test_energy_with_bias_widths_float_layers_and_scale_2():
    goal = Goal(type="energy", input_hw=(16, 24))
    rng = random.Random(4)
    # QTools' accumulator is as wide as the bias or the product needs: bias bits are a dimension.
    table = build_energy_table(goal, scale=2, widths=(3, 6), bias_widths=(2, 8))
    for _ in range(3):
        check_energy(table, goal, 2, random_bits(rng, (3, 6), (2, 8), p_float=0))
    table = build_energy_table(goal, scale=2, widths=(4, FLOAT_BITS))
    samples = [random_bits(rng, [4], [4], p_float=0.4, whole=True) for _ in range(3)]
    for kind in ("kernel", "activation"):  # float convolutions and float ReLUs both occur
        assert any(sum(k == kind for _, k in bits) < (7 if kind == "kernel" else 6)
                   for bits in samples)
    for layer_bits in samples:
        check_energy(table, goal, 2, layer_bits)
    with pytest.raises(ValueError, match="no conv_1 with 4-bit inputs, a 4-bit kernel and 7-bit"):
        CostModel(goal, 2, energy_table=table).cost({("conv_1", "kernel"): 4,
                                                     ("conv_1", "bias"): 7,
                                                     ("act_0", "activation"): 4})


def test_layer_bits_of_width_choices():
    choices = search_choices(SPACE, CONV, ACT)
    assert all(c.by_bits for c in choices.values()) and choices["conv_3_bias_bits"].options == (8,)
    rng = random.Random(5)
    bits_of = {**SPACE.kernel, **SPACE.bias, **SPACE.activation}
    for _ in range(5):
        values = {name: rng.choice(c.options) for name, c in choices.items()}
        strings = quantizer_values(choices, values)
        expected = {(layer, kind): getattr(SPACE, kind)[strings[hp_name(layer, kind)]]
                    for layer, kind in KINDS}
        assert layer_bits_of(values, choices, bits_of) == expected


def test_layer_bits_of_string_and_shared_choices(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text("kernel:\n  'quantized_bits(4,0,alpha=1.0)': 4\n"
                    "  'quantized_bits(4,0,alpha=\"auto_po2\")': 4\n"
                    "  'quantized_bits(2,0,alpha=1.0)': 2\n"
                    "bias:\n  'quantized_bits(3,0,alpha=1.0)': 3\n"
                    "  'quantized_bits(8,0,alpha=1.0)': 8\n"
                    "activation:\n  'quantized_relu(5,8)': 5\n  'quantized_relu(2,8)': 2\n"
                    "limit:\n  'conv_[1-4]': {kernel: 4, shared: middle}\n")
    space = load_search_space(path, CONV + ACT)
    choices = search_choices(space, CONV, ACT)
    assert not choices["middle_kernel"].by_bits and choices["conv_0_bias_bits"].by_bits
    values = {name: c.options[-1] for name, c in choices.items()}
    del values["act_2_activation_bits"]
    values["middle_kernel"] = "quantized_bits(2,0,alpha=1.0)"
    bits = layer_bits_of(values, choices, {**space.kernel, **space.bias, **space.activation})
    assert {bits[f"conv_{i}", "kernel"] for i in range(1, 5)} == {2}
    assert bits["conv_0", "kernel"] == 4 and bits["conv_5", "bias"] == 8
    assert bits["act_0", "activation"] == 5 and ("act_2", "activation") not in bits  # no value
    assert len(bits) == 19


def test_filters_are_checked_and_float_bits_agree():
    assert FLOAT_BITS == cost.FLOAT_BITS
    cost_model = CostModel(Goal())
    with pytest.raises(ValueError, match="conv_6 must keep 27"):
        cost_model.cost({}, {"conv_6": 28})
    with pytest.raises(ValueError, match="no convolution 'conv_9'"):
        cost_model.cost({}, {"conv_9": 28})
    assert cost_model.cost({}, base_filters(3)) == cost_model.cost({})
    with pytest.raises(ValueError, match="needs an energy_table"):
        CostModel(Goal(type="energy"))
    with pytest.raises(ValueError, match="energy_table was built for"):
        CostModel(Goal(input_bits=6), energy_table=synthetic_table(Goal()))
    # the type and what QTools does not read (the reference settings) may differ
    CostModel(Goal(type="energy", reference_internal="fp32"), energy_table=synthetic_table(Goal()))


def test_importing_hp_cost_loads_no_tensorflow():
    code = ("import sys, solvers.search.hp_cost as h; from solvers.objective_settings import Goal; "
            "h.CostModel(Goal(type='bops')).cost({}); h.layer_bits_of({}, {}, {}); "
            "assert not {'tensorflow', 'keras', 'qkeras'} & set(sys.modules), sys.modules.keys()")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
