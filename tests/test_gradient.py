"""solvers/gradient: learnable-width quantizers against qkeras, the differentiable cost against
hp_cost.CostModel, and the β controller on a toy problem."""
import math
import random
from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO
from qkeras import quantized_bits, quantized_relu
from test_imports import module_graph

from solvers.gradient.controller import BetaPID
from solvers.gradient.cost import GradientCost
from solvers.gradient.quantizers import (
    LN2,
    WidthRange,
    fake_quantized_kernel,
    fake_quantized_relu,
    integer_width,
    kernel_values,
    rounded_width,
)
from solvers.networks.layout import base_filters, layer_names, searchable_convs
from solvers.objective_settings import Goal
from solvers.search.hp_cost import CostModel, EnergyTable

CONV, ACT = layer_names()
WIDTHS = range(2, 9)
GOAL = Goal(input_hw=(24, 40), input_bits=7, output_bits=6)  # as test_hp_cost: no swap unseen


def relu_inputs(rng, b, n=4000):
    """Negative, in-range, above-range inputs, and exact ties (odd multiples of half a step)."""
    x = rng.normal(100.0, 120.0, n).astype(np.float32)
    x[:200] = (2 * rng.integers(-5, 2 ** b + 3, 200) + 1) * 2.0 ** (8 - b) / 2
    return x


def kernel(rng, shape=(3, 3, 28, 27)):
    """Weights whose output channels differ in scale, a few far above the rest (saturation)."""
    w = rng.standard_normal(shape) * rng.uniform(1e-3, 1.0, shape[-1])
    w.flat[:30] *= 8.0
    return w.astype(np.float32)


# ---------------------------------------------------------------- quantizers


@pytest.mark.parametrize("b", WIDTHS)
def test_relu_values_equal_qkeras(b):
    rng = np.random.default_rng(b)
    x = relu_inputs(rng, b)
    expected = quantized_relu(b, 8)(x).numpy()
    graph = tf.function(fake_quantized_relu)
    for f in (b, b - 0.5, b - 0.999):  # any f in (b-1, b] quantizes at b
        assert np.array_equal(fake_quantized_relu(x, f).numpy(), expected)
    assert np.array_equal(graph(x, tf.constant(b - 0.25)).numpy(), expected)


@pytest.mark.parametrize("b", WIDTHS)
def test_kernel_values_equal_qkeras(b):
    rng = np.random.default_rng(10 + b)
    for shape in [(3, 3, 28, 27), (3, 3, 3, 28)]:
        w = kernel(rng, shape)
        expected = quantized_bits(b, 0, alpha="auto_po2")(w).numpy()
        assert np.array_equal(fake_quantized_kernel(w, b - 0.4).numpy(), expected)
    graph = tf.function(fake_quantized_kernel)
    assert np.array_equal(graph(w, tf.constant(float(b))).numpy(), expected)


def test_widths_round_up_and_clip():
    x = relu_inputs(np.random.default_rng(0), 3)
    assert np.array_equal(fake_quantized_relu(x, 2.01).numpy(), quantized_relu(3, 8)(x).numpy())
    assert np.array_equal(fake_quantized_relu(x, 0.3).numpy(), quantized_relu(2, 8)(x).numpy())
    assert np.array_equal(fake_quantized_relu(x, 11.0).numpy(), quantized_relu(8, 8)(x).numpy())
    assert [integer_width(f) for f in (0.3, 2.0, 2.01, 5.5, 7.0, 9.2)] == [2, 2, 3, 6, 7, 8]
    f = tf.Variable(5.3)
    with tf.GradientTape() as tape:
        b = rounded_width(f)
    assert float(b) == 6.0 and float(tape.gradient(b, f)) == 1.0  # straight through
    assert np.array_equal(WidthRange()(tf.constant([0.5, 4.25, 9.0])).numpy(), [2.0, 4.25, 8.0])


def test_input_gradients_are_qkeras_straight_through():
    rng = np.random.default_rng(1)
    x = tf.constant(relu_inputs(rng, 4))
    w = tf.constant(kernel(rng))
    for ours, theirs, v in [(lambda v: fake_quantized_relu(v, 4.0), quantized_relu(4, 8), x),
                            (lambda v: fake_quantized_kernel(v, 4.0),
                             quantized_bits(4, 0, alpha="auto_po2"), w)]:
        dy = tf.constant(rng.standard_normal(v.shape).astype(np.float32))
        grads = []
        for quantize in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(v)
                loss = tf.reduce_sum(quantize(v) * dy)
            grads.append(tape.gradient(loss, v).numpy())
        assert np.array_equal(*grads)


@pytest.mark.parametrize("which", ["relu", "kernel"])
def test_width_gradient_is_hgq_surrogate(which):
    """df = -ln2 · Σ dL/dq · (q - clip(x)): the rounding error, summed through the chain rule."""
    rng = np.random.default_rng(2)
    if which == "relu":
        x, quantize = tf.constant(relu_inputs(rng, 5)), fake_quantized_relu
        clipped = tf.clip_by_value(x, 0.0, 256.0 - 2.0 ** 3)  # top at b = 5
    else:
        x, quantize = tf.constant(kernel(rng)), fake_quantized_kernel
        _, bound = kernel_values(x, tf.constant(5.0))  # scale·(2^4 - 1) per output channel
        assert np.all(np.abs(quantize(x, 5.0).numpy()) <= bound.numpy())
        assert np.any(np.abs(x.numpy()) > bound.numpy())  # some weights saturate
        clipped = tf.clip_by_value(x, -bound, bound)
    dy = tf.constant(rng.standard_normal(x.shape).astype(np.float32))
    f = tf.Variable(4.5)
    with tf.GradientTape() as tape:
        q = quantize(x, f)
        loss = tf.reduce_sum(q * dy)
    expected = -LN2 * float(tf.reduce_sum(dy * (q - clipped)))
    assert float(tape.gradient(loss, f)) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("which", ["relu", "kernel"])
def test_more_bits_less_error(which):
    """loss = mean((q - x)²): d loss / d f < 0, and a few SGD steps on it alone raise f."""
    rng = np.random.default_rng(3)
    if which == "relu":
        x = tf.constant(rng.uniform(0.0, 250.0, 2000).astype(np.float32))
        quantize, rate = fake_quantized_relu, 0.01
    else:
        x = tf.constant(rng.standard_normal((3, 3, 8, 8)).astype(np.float32))
        quantize, rate = fake_quantized_kernel, 20.0
    f = keras.Variable(3.5)  # a Keras variable, as a layer's width will be
    start = float(f)

    @tf.function  # a graph, as in training
    def gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((quantize(x, f) - x) ** 2)
        return tape.gradient(loss, f)

    for _ in range(5):
        grad = gradient()
        assert float(grad) < 0
        f.assign(f - rate * grad)
    assert integer_width(f) > integer_width(start)


# ---------------------------------------------------------------- cost


def random_widths(rng):
    """{(layer, kind): real f} whose integer widths are random in 2..8, and those integers."""
    reals, ints = {}, {}
    for key in [(c, "kernel") for c in CONV] + [(a, "activation") for a in ACT]:
        ints[key] = rng.choice(WIDTHS)
        reals[key] = tf.Variable(ints[key] - rng.choice([0.0, 0.3, 0.999]))
    return reals, ints


@pytest.mark.parametrize("goal_type", ["bits", "bops"])
def test_cost_equals_hp_cost_at_integer_widths(goal_type):
    rng = random.Random(goal_type)
    cost_model = CostModel(replace(GOAL, type=goal_type))
    designed = GradientCost(cost_model)
    for n in range(20):
        filters = None if n % 2 else {c: rng.randint(1, 40) for c in searchable_convs()}
        cost = GradientCost(cost_model, filters=filters) if filters else designed
        reals, ints = random_widths(rng)
        layer_bits = {**ints, **{(c, "bias"): 8 for c in CONV}}
        assert cost.layer_bits(reals) == layer_bits
        assert float(cost(reals)) == cost_model.cost(layer_bits, filters)
    assert float(tf.function(cost)(reals)) == float(cost(reals))  # the same in a graph


@pytest.mark.parametrize("goal_type", ["bits", "bops"])
def test_cost_gradients_are_the_costs_at_real_widths(goal_type):
    goal = replace(GOAL, type=goal_type)
    cost = GradientCost(CostModel(goal))
    reals, _ = random_widths(random.Random(5))
    with tf.GradientTape() as tape:
        value = cost(reals)
    grads = dict(zip(reals, tape.gradient(value, list(reals.values()))))
    assert all(float(g) > 0 for g in grads.values())
    pixels, counts = goal.input_hw[0] * goal.input_hw[1], base_filters()
    n_in = [3] + [counts[c] for c in CONV[:-1]]
    real = {key: min(max(float(f.numpy()), 2.0), 8.0) for key, f in reals.items()}
    for i, conv in enumerate(CONV):
        macs = pixels * counts[conv] * 9 * n_in[i]
        if goal_type == "bits":
            expected = 9 * n_in[i] * counts[conv]
        else:  # ∂/∂b_w of p·m·n·k²·(b_a·b_w + b_a + b_w + log2(n·k²)), at the real b_a
            expected = macs * ((real[ACT[i - 1], "activation"] if i else goal.input_bits) + 1)
        assert float(grads[conv, "kernel"]) == pytest.approx(expected, rel=1e-6)
    for j, act in enumerate(ACT):
        nxt = CONV[j + 1]
        expected = (pixels * counts[CONV[j]] if goal_type == "bits" else
                    pixels * counts[nxt] * 9 * n_in[j + 1] * (real[nxt, "kernel"] + 1))
        assert float(grads[act, "activation"]) == pytest.approx(expected, rel=1e-6)


def test_energy_cost_is_the_table_and_its_slopes():
    goal = replace(GOAL, type="energy")
    rng = random.Random(1)
    conv = {(i, b_in, b_k, 8): tuple(rng.uniform(1, 1e6) for _ in range(3)) + (0.0,)
            for i in range(7) for b_in in (WIDTHS if i else [goal.input_bits]) for b_k in WIDTHS}
    act = {(j, b): rng.uniform(1, 1e4) for j in range(6) for b in WIDTHS}
    cost_model = CostModel(goal, energy_table=EnergyTable(goal, 3, 4, conv, act, 1234.5))
    cost = GradientCost(cost_model)
    for _ in range(5):
        reals, ints = random_widths(rng)
        assert float(cost(reals)) == cost_model.cost({**ints, **{(c, "bias"): 8 for c in CONV}})
    reals[CONV[0], "kernel"].assign(4.25)  # conv_0 reads the image: its term is 1-D in b_kernel
    with tf.GradientTape() as tape:
        value = cost(reals)
    slope = cost_model.conv_term(0, goal.input_bits, 5, 8) - cost_model.conv_term(
        0, goal.input_bits, 4, 8)
    assert float(tape.gradient(value, reals[CONV[0], "kernel"])) == pytest.approx(slope)
    with pytest.raises(ValueError, match="no activation width for act_2"):
        cost({k: v for k, v in reals.items() if k != (ACT[2], "activation")})


# ---------------------------------------------------------------- controller


def test_controller_brings_a_toy_width_to_the_budget():
    """loss = (w - 8)² pulls toward more bits, cost = ceil(w), budget 4: β·cost added and β
    steered, a few hundred steps end at a rounded cost of exactly 4 (within one step, not over)."""
    w = tf.Variable(8.0)
    controller = BetaPID(budget=4, init_beta=0.1, p=1.0, i=0.05)
    for _ in range(300):
        with tf.GradientTape() as tape:
            loss = (w - 8.0) ** 2 + controller.beta * rounded_width(w)
        w.assign(WidthRange()(w - 0.05 * tape.gradient(loss, w)))
        controller.update(float(rounded_width(w)))
    assert 3 < float(rounded_width(w)) <= 4


def test_controller_law():
    controller = BetaPID(budget=100.0, init_beta=1e-3, p=1.0, i=0.1, warmup=2, band=0.9)
    assert controller.update(400) == controller.update(400) == 1e-3  # warm-up
    assert controller.update(200) == pytest.approx(1e-3)             # seeded: init_beta
    rising = [controller.update(200) for _ in range(3)]
    assert rising[0] > 1e-3 and rising == sorted(rising)             # over budget: β grows
    held = controller.update(95)                                     # in [90, 100]: error 0
    assert controller.update(95) == held
    assert controller.update(50) < held                              # under the band: falls
    assert controller.error(100) == controller.error(90) == 0
    assert controller.error(200) == pytest.approx(math.log10(2))


def test_controller_bounds_without_windup():
    controller = BetaPID(budget=1.0, init_beta=1.0, p=0.0, i=1.0, max_beta=10.0)
    for _ in range(50):  # far over budget for long: held at max_beta
        assert controller.update(100.0) <= 10.0
    assert controller.beta == 10.0
    assert controller.update(0.5) < 10.0  # leaves the bound at once when under budget
    for bad in [{"budget": 0}, {"init_beta": 0}, {"i": 0}, {"band": 1.5}, {"max_beta": 0.5}]:
        with pytest.raises(ValueError):
            BetaPID(**{"budget": 1, "init_beta": 1, **bad})


# ---------------------------------------------------------------- imports


def test_gradient_package_does_not_reach_run():
    graph = module_graph(REPO)
    reached, todo = set(), [m for m in graph if m.startswith("solvers.gradient")]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph.get(module, ()))
    assert "solvers.run" not in reached and "solvers.gradient.cost" in reached
