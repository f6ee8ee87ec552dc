"""solvers/gradient model.py and fit.py: the learned-width base7 against its QKeras twin, saving,
the width-learning training under a budget on tiny random tensors, and final_bits' repair."""
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from solvers import train
from solvers.gradient import fit
from solvers.gradient.cost import GradientCost
from solvers.gradient.model import (
    LearnedConv2D,
    learned_base7,
    learned_widths,
    rounded_bits,
    to_qkeras,
)
from solvers.networks.layout import layer_names
from solvers.objective_settings import Goal
from solvers.search.hp_cost import CostModel

CONV, ACT = layer_names()
BIAS = "quantized_bits(8,0,alpha=1.0)"
KEYS = [(c, "kernel") for c in CONV] + [(a, "activation") for a in ACT]
GRADIENT_COST = GradientCost(CostModel(Goal(type="bops", input_hw=(12, 12))))


def uniform_cost(b):
    return fit.rounded_cost(GRADIENT_COST, dict.fromkeys(KEYS, b))


def random_net(seed):
    """A learned base7 with real widths all over (1.5, 8.5) and weights of varied scale, biases
    outside the bias quantizer's [-1, 1) too."""
    rng = np.random.default_rng(seed)
    net = learned_base7(3, {k: float(rng.uniform(1.5, 8.5)) for k in KEYS}, BIAS)
    for name in CONV:
        layer = net.get_layer(name)
        scales = rng.uniform(0.1, 3.0, layer.kernel.shape[-1]).astype(np.float32)
        layer.kernel.assign(layer.kernel.numpy() * scales)
        layer.bias.assign(rng.normal(0.0, 0.7, layer.bias.shape).astype(np.float32))
    return net


def quantizers_of(bits):
    """base7's quantizer strings at integer widths {(layer, kind): b}."""
    out = {c: {"kernel": f'quantized_bits({bits[c, "kernel"]},0,alpha="auto_po2")', "bias": BIAS}
           for c in CONV}
    out.update({a: {"activation": f"quantized_relu({bits[a, 'activation']},8)"} for a in ACT})
    return out


def pixels(rng, n, side):
    return rng.uniform(0.0, 255.0, (n, side, side, 3)).astype(np.float32)


def test_to_qkeras_outputs_equal_the_learned_model_at_rounded_widths():
    net = random_net(0)
    bits = rounded_bits(net)
    assert len(set(bits.values())) > 3  # widths really differ per layer
    x = pixels(np.random.default_rng(1), 2, 12)
    expected = net(x).numpy()
    assert np.array_equal(to_qkeras(net, quantizers_of(bits), 3)(x).numpy(), expected)
    # ...and one width off is not the same network: the comparison can fail
    other = {**bits, ("act_2", "activation"): bits["act_2", "activation"] % 8 + 1}
    assert not np.array_equal(to_qkeras(net, quantizers_of(other), 3)(x).numpy(), expected)


def test_learned_model_saves_and_reloads(tmp_path):
    net = random_net(2)
    path = str(tmp_path / "learned.keras")
    net.save(path)
    loaded = keras.models.load_model(path)
    x = pixels(np.random.default_rng(3), 1, 12)
    assert np.array_equal(loaded(x).numpy(), net(x).numpy())
    assert {k: float(v.numpy()) for k, v in learned_widths(loaded).items()} == \
        {k: float(v.numpy()) for k, v in learned_widths(net).items()}
    conv = loaded.get_layer("conv_3")
    assert isinstance(conv, LearnedConv2D) and conv.bias_quantizer == BIAS
    assert [w.name for w in conv.trainable_weights] == ["kernel", "bias", "kernel_width"]


def test_initial_widths_start_just_over_the_budget():
    assert set(fit.initial_widths(GRADIENT_COST, uniform_cost(3)).values()) == {3.5}
    assert set(fit.initial_widths(GRADIENT_COST, uniform_cost(3) - 1).values()) == {2.5}
    assert set(fit.initial_widths(GRADIENT_COST, uniform_cost(8)).values()) == {7.5}
    with pytest.raises(ValueError, match="every width at 2 bits"):
        fit.initial_widths(GRADIENT_COST, uniform_cost(2) - 1)


def test_width_gradients_are_the_loss_plus_beta_times_the_cost_over_budget():
    """The training loss's width gradients: the HGQ surrogate (non-zero) plus β times
    the cost/budget gradient; calibrated_beta from them; WidthAdam's two rates."""
    rng = np.random.default_rng(4)
    budget = uniform_cost(3)
    net = learned_base7(3, fit.initial_widths(GRADIENT_COST, budget), BIAS)
    costed = fit.CostedModel(net, GRADIENT_COST, budget, 1.0, width_learning_rate=0.05)
    train.compile_model(costed)
    x, y = pixels(rng, 2, 12), pixels(rng, 2, 36)
    widths = list(learned_widths(net).values())
    grads = {}
    for beta in (0.0, 2.0):
        costed.beta.assign(beta)
        with tf.GradientTape() as tape:
            loss = costed.compute_loss(x, y, costed(x, training=True), training=True)
        grads[beta] = np.array([float(g) for g in tape.gradient(loss, widths)])
    with tf.GradientTape() as tape:
        fraction = GRADIENT_COST(learned_widths(net)) / budget
    cost_grads = np.array([float(g) for g in tape.gradient(fraction, widths)])
    assert np.all(grads[0.0] != 0) and np.all(np.isfinite(grads[0.0]))  # the HGQ surrogate
    np.testing.assert_allclose(grads[2.0] - grads[0.0], 2.0 * cost_grads, rtol=1e-3)
    # the initial β: where the cost's pull equals the loss's for the median width
    assert fit.calibrated_beta(costed, [(x, y)]) == pytest.approx(
        np.median(np.abs(grads[0.0]) / cost_grads), rel=1e-4)
    # WidthAdam: a first step moves each variable by about its own learning rate
    stepped = (net.get_layer("conv_1").kernel, widths[0])
    before = [v.numpy().copy() for v in stepped]
    costed.optimizer.apply_gradients([(tf.ones_like(v), v) for v in stepped])
    moved = [np.abs(v.numpy() - b).max() for v, b in zip(stepped, before, strict=True)]
    assert moved == pytest.approx([1e-3, 0.05], rel=1e-2)


def test_train_widths_under_a_budget(tmp_path, monkeypatch):
    """Random images whose targets are their nearest-neighbour upscale (the anchor: the residual
    to learn is 0, so the loss hardly pulls on the widths), a budget (uniform 3-bit BOPs) below
    the start (uniform 4): the rows have the documented columns, β is updated once per
    execution from the rounded cost, and the penalty brings the rounded cost within budget."""
    rng = np.random.default_rng(5)
    x = pixels(rng, 32, 12)
    y = np.repeat(np.repeat(x, 3, axis=1), 3, axis=2)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    val_ds = tf.data.Dataset.from_tensor_slices((x[:2], y[:2])).batch(1)
    budget = uniform_cost(3)
    init = fit.initial_widths(GRADIENT_COST, budget)
    net = learned_base7(3, init, BIAS)
    updates = []
    update = fit.BetaPID.update
    monkeypatch.setattr(fit.BetaPID, "update", lambda self, c: updates.append(c) or update(self, c))
    rows = fit.train_widths(net, GRADIENT_COST, budget, 0.9, train_ds, val_ds, epochs=2,
                            steps_per_epoch=20, width_learning_rate=0.1, tb_dir=str(tmp_path),
                            verbose=0)
    width_columns = [f"{layer}_{kind}_{what}" for layer, kind in learned_widths(net)
                     for what in ("width", "bits")]
    assert [list(row) for row in rows] == [["epoch", "loss", "val_loss", "val_psnr", "beta",
                                            "cost", "cost_fraction", *width_columns]] * 2
    assert [row["epoch"] for row in rows] == [1, 2] and len(updates) == 4  # 2 executions/epoch
    assert updates[-1] == rows[-1]["cost"] and rows[-1]["beta"] > 0  # the rounded cost
    assert rows[-1]["cost_fraction"] == pytest.approx(rows[-1]["cost"] / budget)
    assert rows[-1]["cost"] <= budget < uniform_cost(4)  # the penalty pulled widths down
    assert rows[-1]["conv_2_kernel_bits"] == rounded_bits(net)["conv_2", "kernel"]
    assert fit.final_bits(net, GRADIENT_COST, budget) == (rounded_bits(net), 0)
    tags = {v.tag for f in Path(tmp_path, "train").glob("events.*")
            for e in tf.compat.v1.train.summary_iterator(str(f)) for v in e.summary.value}
    assert {"epoch_beta", "epoch_cost_fraction", "epoch_mean_width"} <= tags


def set_widths(net, reals):
    for key, f in reals.items():
        learned_widths(net)[key].assign(f)


def test_final_bits_repairs_an_over_budget_assignment():
    net = learned_base7(3, dict.fromkeys(KEYS, 3.5), BIAS)
    assert fit.final_bits(net, GRADIENT_COST, uniform_cost(4)) == (dict.fromkeys(KEYS, 4), 0)
    # act_2 learned 3.02: 0.02 from 3 bits, the cheapest step; a budget one step below the cost
    set_widths(net, {("act_2", "activation"): 3.02})
    one_down = {**dict.fromkeys(KEYS, 4), ("act_2", "activation"): 3}
    bits, steps = fit.final_bits(net, GRADIENT_COST, fit.rounded_cost(GRADIENT_COST, one_down))
    assert (bits, steps) == (one_down, 1)
    # far over: many steps, and the result is within the budget
    set_widths(net, {k: 7.4 + 0.1 * i for i, k in enumerate(KEYS[:5])})
    budget = uniform_cost(3) * 1.01
    bits, steps = fit.final_bits(net, GRADIENT_COST, budget)
    assert fit.rounded_cost(GRADIENT_COST, bits) <= budget < fit.rounded_cost(
        GRADIENT_COST, rounded_bits(net))
    learned = rounded_bits(net)  # each step lowers one width by one bit
    assert steps == sum(learned[k] - bits[k] for k in KEYS) > 5
    assert all(2 <= bits[k] <= learned[k] for k in KEYS)
    with pytest.raises(ValueError, match="budget"):
        fit.final_bits(net, GRADIENT_COST, budget, repair=False)
    with pytest.raises(ValueError, match="every width at 2 bits"):
        fit.final_bits(net, GRADIENT_COST, uniform_cost(2) - 1)
