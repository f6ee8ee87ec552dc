"""solvers/search/allocation.py: the exact allocation against brute force, against a greedy one,
widths the table did not measure, the band's lower bound, and base7 with hp_cost's cost model."""
import itertools
import random
import time
from types import SimpleNamespace

import pytest

from solvers.networks.layout import layer_names
from solvers.objective_settings import Goal
from solvers.search import allocation
from solvers.search.hp_cost import CostModel

KEYS0 = [("conv_0", "kernel"), ("conv_0", "bias"), ("act_0", "activation"), ("conv_1", "kernel"),
         ("conv_1", "bias"), ("act_1", "activation"), ("conv_2", "kernel"), ("conv_2", "bias")]


class ChainCost:
    """A small cost model of hp_cost.CostModel's shape (m = 0: conv_0 act_0 conv_1 act_1 conv_2)
    with integer terms: weights·b_kernel·(b_in + 1) + bias·b_bias per convolution (coupled to
    the ReLU before it, like bops; coupled=False: weights·b_kernel, like bits), act·bits per
    ReLU. Integers keep sums exact, so ties are ties."""

    def __init__(self, weights=(3, 5, 2), biases=(1, 1, 1), acts=(4, 2), input_bits=2,
                 coupled=True):
        self.goal, self.m = SimpleNamespace(input_bits=input_bits), 0
        self.weights, self.biases, self.acts, self.coupled = weights, biases, acts, coupled

    def fixed(self, filters=None):
        return 7

    def conv_term(self, i, b_in, b_kernel, b_bias, filters=None):
        return self.weights[i] * b_kernel * (b_in + 1 if self.coupled else 1) \
            + self.biases[i] * b_bias

    def act_term(self, j, bits, filters=None):
        return self.acts[j] * bits

    def cost(self, layer_bits, filters=None):
        bits = {**dict.fromkeys(KEYS0, allocation.FLOAT_BITS), **layer_bits}
        total, b_in = self.fixed(), self.goal.input_bits
        for i in range(3):
            total += self.conv_term(i, b_in, bits[f"conv_{i}", "kernel"], bits[f"conv_{i}", "bias"])
            if i < 2:
                b_in = bits[f"act_{i}", "activation"]
                total += self.act_term(i, b_in)
        return total


def loss(drops, config):
    return sum(allocation.drop_at(drops, *key, bits) for key, bits in config.items())


def rank(drops, model, config):
    """The allocation's order: least drop, then lower cost, then more bits."""
    return loss(drops, config), model.cost(config), -sum(config.values())


def ranked(drops, model, options):
    """[(rank, configuration)] of every configuration the options allow."""
    at = {(k, b): allocation.drop_at(drops, *k, b) for k, widths in options.items() for b in widths}
    configs = [dict(zip(options, bits)) for bits in itertools.product(*options.values())]
    return [((sum(at[kb] for kb in c.items()), model.cost(c), -sum(c.values())), c)
            for c in configs]


def brute_force(everything, budget, low=0.0):
    """The best of `everything` (ranked) with cost in [low, budget], or None (integer costs:
    any tolerance far below 1 is allocation.within's)."""
    inside = [(r, c) for r, c in everything if low - 1e-6 <= r[1] <= budget + 1e-6]
    return min(inside, key=lambda rc: rc[0])[1] if inside else None


def test_exact_equals_brute_force_on_a_coupled_chain():
    """Random tables (multiples of 1/8 dB: exact sums, and ties), random options and bands:
    the same configuration as enumerating all 3^8, including the cases where neither the
    optimum under the budget nor the one above the lower bound lies in the band."""
    rng = random.Random(3)
    model = ChainCost()
    both_sides = 0
    for _ in range(40):
        widths = [2, 4, 8]
        options = {k: widths if rng.random() < 0.85 else [rng.choice(widths)] for k in KEYS0}
        # Drops with a minimum inside the range (a noisy table): more bits do not always help.
        drops = {(*k, b): rng.randint(0, 12) / 8 * abs(b - rng.choice(widths)) / 2
                 for k in KEYS0 for b in widths if rng.random() < 0.9}
        everything = ranked(drops, model, options)
        costs = sorted({r[1] for r, _ in everything})
        budget = rng.choice(costs) + rng.choice([0, 0, 3])
        low = rng.choice([0.0, 0.9 * budget, 0.97 * budget, rng.choice(costs)])
        want = brute_force(everything, budget, low)
        got = allocation.exact(drops, model, options, budget, low)
        assert (got is None) == (want is None), (budget, low, want)
        if want is not None:
            assert rank(drops, model, got) == rank(drops, model, want), (budget, low)
            assert allocation.within(model.cost(got), low, budget)
            below = brute_force(everything, budget)
            above = brute_force(everything, float("inf"), low)
            both_sides += (model.cost(below) < low and model.cost(above) > budget)
    assert both_sides >= 3  # the branch-and-bound pass was exercised


def greedy(drops, model, options, budget):
    """The allocation starting_points used before: from the widest, lower one kind a step at a
    time, the step that loses least per unit of cost saved, until within the budget."""
    current = {k: max(w) for k, w in options.items()}
    while model.cost(current) > budget:
        steps = []
        for key, bits in current.items():
            lower = [w for w in options[key] if w < bits]
            if lower:
                trial = {**current, key: max(lower)}
                saved = model.cost(current) - model.cost(trial)
                lost = allocation.drop_at(drops, *key, max(lower)) - \
                    allocation.drop_at(drops, *key, bits)
                steps.append((max(lost, 0.0) / saved, trial))
        current = min(steps, key=lambda step: step[0])[1]
    return current


def test_exact_beats_the_greedy_one_step_at_a_time():
    """conv_0's kernel (weight 10) must give 40 of cost; act_0 (weight 1) loses least per unit
    saved, so greedy lowers it first, then still has to lower conv_0: it loses both. The
    exact allocation lowers conv_0 only."""
    model = ChainCost(weights=(10, 0, 0), biases=(0, 0, 0), acts=(1, 0), coupled=False)
    options = {k: [8] for k in KEYS0}
    options["conv_0", "kernel"] = options["act_0", "activation"] = [2, 4, 8]
    drops = {("conv_0", "kernel", 8): 0.0, ("conv_0", "kernel", 4): 1.0,
             ("conv_0", "kernel", 2): 3.0, ("act_0", "activation", 8): 0.0,
             ("act_0", "activation", 4): 0.05, ("act_0", "activation", 2): 1.0}
    budget = model.cost({k: 8 for k in KEYS0}) - 40
    first = greedy(drops, model, options, budget)
    best = allocation.exact(drops, model, options, budget)
    assert (first["conv_0", "kernel"], first["act_0", "activation"]) == (4, 4)
    assert (best["conv_0", "kernel"], best["act_0", "activation"]) == (4, 8)
    assert model.cost(best) <= budget and loss(drops, best) == 1.0 < loss(drops, first) == 1.05


def test_insensitive_layers_go_first_and_fixed_kinds_stay():
    """Of two kernels alike in cost, the one the table marks sensitive keeps its bits; a kind
    with one option never moves."""
    model = ChainCost(weights=(1, 1, 0), biases=(0, 0, 0), acts=(1, 0), coupled=False)
    options = {k: [8] for k in KEYS0}
    keys = [("conv_0", "kernel"), ("conv_1", "kernel"), ("act_0", "activation")]
    options.update({k: [2, 4, 8] for k in keys})
    drops = {(*k, b): (3.0 if k[0] == "conv_0" else 0.1) * (8 - b) / 6
             for k in keys for b in (2, 4, 8)}
    rest = model.cost({k: 8 for k in KEYS0}) - 24  # what the kinds held at 8 cost
    found = allocation.exact(drops, model, options, rest + 12)
    assert [found[k] for k in keys] == [8, 2, 2]
    assert allocation.exact(drops, model, options, rest + 5) is None  # 6 at least
    options["act_0", "activation"] = [8]
    found = allocation.exact(drops, model, options, rest + 14)
    assert [found[k] for k in keys] == [4, 2, 8]


def test_unmeasured_widths_are_interpolated():
    drops = {("conv_1", "kernel", 2): 3.0, ("conv_1", "kernel", 4): 1.0,
             ("conv_1", "kernel", 8): 0.0}

    def at(bits):
        return allocation.drop_at(drops, "conv_1", "kernel", bits)
    assert (at(3), at(5), at(6), at(7)) == (2.0, 0.75, 0.5, 0.25)
    assert (at(1), at(2), at(16)) == (3.0, 3.0, 0.0)  # outside: the nearest measured width
    assert allocation.drop_at(drops, "conv_2", "kernel", 3) == 0.0  # not in the table
    # The allocation takes an unmeasured width where it loses least within the budget.
    model = ChainCost(weights=(0, 1, 0), biases=(0, 0, 0), acts=(0, 0), coupled=False)
    options = {k: [8] for k in KEYS0}
    options["conv_1", "kernel"] = list(range(2, 9))
    base = model.cost({**{k: 8 for k in KEYS0}, ("conv_1", "kernel"): 0})
    assert allocation.exact(drops, model, options, base + 7)["conv_1", "kernel"] == 7
    assert allocation.exact(drops, model, options, base + 5.5)["conv_1", "kernel"] == 5


def test_the_band_lower_bound():
    """A table that loses nothing above 4 bits: under the budget alone the cheapest lossless
    configuration wins (ties: lower cost), far below the budget; asked for a band, the answer
    lies in it; a band no configuration reaches, or a budget below the cheapest, gives None."""
    model = ChainCost(weights=(0, 1, 0), biases=(0, 0, 0), acts=(0, 0), coupled=False)
    options = {k: [8] for k in KEYS0}
    options["conv_1", "kernel"] = [2, 4, 6, 8]
    drops = {("conv_1", "kernel", 2): 1.0, ("conv_1", "kernel", 4): 0.0,
             ("conv_1", "kernel", 8): 0.0}
    base = model.cost({**{k: 8 for k in KEYS0}, ("conv_1", "kernel"): 0})

    def bits(found):
        return found and found["conv_1", "kernel"]
    assert bits(allocation.exact(drops, model, options, base + 8)) == 4
    assert bits(allocation.exact(drops, model, options, base + 8, base + 7)) == 8
    assert bits(allocation.exact(drops, model, options, base + 7, base + 5)) == 6
    assert allocation.exact(drops, model, options, base + 7.5, base + 6.5) is None
    assert allocation.exact(drops, model, options, base + 1) is None
    assert allocation.exact(drops, model, options, base + 4, base + 5) is None  # low > budget


def _table(seed=0, widths=(2, 3, 4, 6, 8)):
    """A synthetic sensitivity table of base7: each kind loses s·2^-(b-2) dB plus noise."""
    rng = random.Random(seed)
    convs, acts = layer_names()
    kinds = [(c, k) for c in convs for k in ("kernel", "bias")] + [(a, "activation") for a in acts]
    drops = {}
    for key in kinds:
        scale = rng.uniform(0.05, 3)
        drops.update({(*key, b): scale * 2.0 ** (2 - b) + rng.gauss(0, 0.02) for b in widths})
    return kinds, drops


@pytest.mark.parametrize("goal", ["bits", "bops"])
def test_base7_with_the_cost_model(goal):
    """On base7 with hp_cost's CostModel, 7 widths for every kind (and biases fixed at 8 as the
    shipped limit leaves them): within the budget (and the band when asked), never worse than
    uniform at that cost, in well under a second."""
    model = CostModel(Goal(type=goal), scale=3)
    kinds, drops = _table()
    for biases in ([8], list(range(2, 9))):
        options = {k: biases if k[1] == "bias" else list(range(2, 9)) for k in kinds}
        for b in (3, 4, 6):
            uniform = {k: b for k in kinds}
            budget = model.cost(uniform)
            for low in (0.0, 0.9 * budget):
                started = time.perf_counter()
                found = allocation.exact(drops, model, options, budget, low)
                seconds = time.perf_counter() - started
                assert allocation.within(model.cost(found), low, budget), (b, low)
                assert set(found) == set(kinds)
                if biases != [8]:
                    assert loss(drops, found) <= loss(drops, uniform)
                assert seconds < 2.0, seconds  # ~0.2 s at most on 2 shared cores
