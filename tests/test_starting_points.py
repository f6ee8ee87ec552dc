"""solvers/search/starting_points.py and the oracles that run them first: the uniform, hand-rule and
sensitivity-derived configurations are the first trials of every algorithm, once each, also after
a resume."""
import csv

import keras
import keras_tuner as kt
import pytest
from conftest import REPO

from solvers.config import load_search_space
from solvers.networks.base7 import (
    base7,
    layer_names,
    quantizer_values,
    quantizers_from_hp,
)
from solvers.search import cost, starting_points, tuners
from solvers.search.space import search_choices


@pytest.fixture(scope="module")
def space():
    return load_search_space(str(REPO / "quantization_config.yaml"))


def test_point_values_follow_the_limit_and_shared_choices(space, tmp_path):
    conv, act = layer_names()
    choices = search_choices(space, conv, act)
    bits_of = {**space.kernel, **space.bias, **space.activation}
    values = starting_points.point_values(starting_points.hand_rule(8, 2, 8, 3), choices, bits_of)
    assert values["conv_0_kernel_bits"] == values["conv_6_kernel_bits"] == 8
    assert {values[f"conv_{i}_kernel_bits"] for i in range(1, 6)} == {2}
    assert {values[f"act_{i}_activation_bits"] for i in range(6)} == {3}
    # A limit of 4 bits on conv_0 and a shared middle: the nearest width each choice offers.
    text = (REPO / "quantization_config.yaml").read_text().replace(
        'limit:\n  Conv2D: {bias: ["quantized_bits(8,0,alpha=1.0)"]}',
        'limit: {conv_0: [4, 8], "conv_[1-4]": {kernel: 8, shared: middle}}')
    assert values["conv_3_bias_bits"] == 8  # the shipped limit: biases at 8 bits whatever the point
    path = tmp_path / "q.yaml"
    path.write_text(text)
    limited = load_search_space(str(path), conv + act)
    choices = search_choices(limited, conv, act, str(path))
    values = starting_points.point_values(starting_points.uniform(8), choices, bits_of)
    assert values["conv_0_kernel_bits"] == 4 and values["middle_kernel_bits"] == 8
    assert "conv_1_kernel_bits" not in values
    # Two points the limit maps onto the same values run once, under the first label.
    trials = starting_points.as_trials([("a", starting_points.uniform(8)), ("b", starting_points.uniform(7))], choices,
                               bits_of)
    assert [label for label, _ in trials] == ["a", "b"]
    same = starting_points.as_trials([("a", starting_points.uniform(4)), ("b", starting_points.uniform(4))], choices, bits_of)
    assert [label for label, _ in same] == ["a"]


def _write_table(path, space, sensitive):
    """A synthetic sensitivity.csv over every layer, kind and width of `space`: the layers in
    `sensitive` lose 5 dB per 6 bits taken away, the others 0.1."""
    conv, act = layer_names()
    rows = [{"layer": layer, "kind": kind, "bits": bits, "quantizer": q, "val_psnr": 30.0,
             "psnr_drop": (5.0 if layer in sensitive else 0.1) * (8 - bits) / 6, "seconds": 1}
            for layer in conv + act for kind in (("kernel", "bias") if layer in conv
                                                 else ("activation",))
            for q, bits in getattr(space, kind).items()]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _goal_cost(space, choices, values):
    """The goal's cost of a point's values on the model they build (cost.py, not hp_cost)."""
    model = base7(scale=3, quantizers=quantizers_from_hp(quantizer_values(choices, values)))
    return cost.costs(model, space.objective.goal)["cost"]


def test_a_table_adds_allocations_within_budget_that_follow_it(space, tmp_path):
    """for_search with a table: the exact allocations appear, each costs at most uniform b-bit
    as it runs (the goal's cost of the model built here), and the table steers them: of two
    layers alike in cost, the one it marks sensitive keeps more bits."""
    conv, act = layer_names()
    choices = search_choices(space, conv, act)
    # conv_3 (after conv_2) and act_2 (before act_3) sensitive: an allocation blind to the table
    # would treat both pairs alike.
    table = _write_table(tmp_path / "sensitivity.csv", space, {"conv_3", "act_2"})
    trials = dict(starting_points.for_search(space, choices, None, 3, str(table)))
    derived = {b: trials.get(f"sensitivity at uniform {b}-bit cost") for b in (2, 3, 4)}
    assert derived[3] is not None and derived[4] is not None, list(trials)
    # Uniform 2-bit is the cheapest configuration: the allocation at its cost is itself, and
    # runs once, under its label.
    assert derived[2] is None
    assert len(trials) == len(dict(starting_points.for_search(space, choices, None, 3))) + 2
    assert starting_points.EXACT_ALLOCATION not in trials  # no budget

    for b in (3, 4):
        budget = _goal_cost(space, choices, trials[f"uniform {b}-bit"])  # biases at 8 bits
        values = derived[b]
        assert _goal_cost(space, choices, values) <= budget, b
        assert values["conv_3_kernel_bits"] >= values["conv_2_kernel_bits"], values
        assert values["act_2_activation_bits"] > values["act_3_activation_bits"], values
    assert derived[3]["conv_3_kernel_bits"] > derived[3]["conv_2_kernel_bits"], derived[3]


@pytest.mark.parametrize("goal", ["bits", "bops"])
def test_a_budget_keeps_the_points_within_the_band(goal, tmp_path):
    """With a budget just above the cost of uniform 4-bit (as the limit leaves it: biases at 8):
    only the points whose values cost within [0.9 budget, budget] on the model they build,
    the exact allocation at the budget first; the others reported as dropped with their cost."""
    config = tmp_path / "q.yaml"
    config.write_text((REPO / "quantization_config.yaml").read_text().replace(
        "goal:\n  type: bits", f"goal:\n  type: {goal}"))
    conv, act = layer_names()
    space = load_search_space(str(config), conv + act)
    assert space.objective.goal.type == goal
    choices = search_choices(space, conv, act, str(config))
    table = _write_table(tmp_path / "sensitivity.csv", space, {"conv_3", "act_2"})
    free = starting_points.plan(space, choices, None, 3, str(table))
    budget = free.costs["uniform 4-bit"] / 0.95
    plan = starting_points.plan(space, choices, None, 3, str(table), budget=budget)
    labels = [label for label, _ in plan.points]
    assert labels[0] == starting_points.EXACT_ALLOCATION, labels
    assert "uniform 4-bit" in labels and "uniform 5-bit" not in labels
    for label, values in plan.points:
        spent = _goal_cost(space, choices, values)
        assert spent == pytest.approx(plan.costs[label], rel=1e-9), label
        assert 0.9 * budget <= spent <= budget, (label, spent / budget)
    dropped = dict(plan.dropped)
    assert set(dropped) | set(labels) == set(plan.costs) and not set(dropped) & set(labels)
    assert all(not 0.9 * budget <= c <= budget for c in dropped.values()), dropped
    assert starting_points.for_search(space, choices, None, 3, str(table), budget=budget) == \
        plan.points


def test_below_the_band_only_the_exact_allocation_stays(space, tmp_path):
    """A band no configuration reaches (bits are integers; [budget, budget] at a half): the exact
    allocation is the best one below the budget, and the only point."""
    conv, act = layer_names()
    choices = search_choices(space, conv, act)
    table = _write_table(tmp_path / "sensitivity.csv", space, {"conv_3", "act_2"})
    budget = starting_points.plan(space, choices, None, 3).costs["uniform 4-bit"] + 0.5
    plan = starting_points.plan(space, choices, None, 3, str(table), budget=budget, band=1.0)
    assert len(plan.points) == 1 and plan.costs[plan.points[0][0]] < budget
    assert len(plan.dropped) == len(plan.costs) - 1


def test_costs_are_those_of_the_values_and_hand_rules_can_go(space):
    """The shipped limit runs uniform 2-bit with 8-bit biases: that is what it costs. Without
    hand rules: uniform and kernels 4/activations 8 only; a budget keeps what lies in its band."""
    from solvers.search.hp_cost import CostModel
    conv, act = layer_names()
    choices = search_choices(space, conv, act)
    model = CostModel(space.objective.goal, 3)
    plan = starting_points.plan(space, choices, None, 3, cost_model=model)
    as_run = {**starting_points.uniform(2), **{(c, "bias"): 8 for c in conv}}
    assert plan.costs["uniform 2-bit"] == model.cost(as_run) > model.cost(starting_points.uniform(2))
    labels = [label for label, _ in starting_points.for_search(space, choices, None, 3,
                                                               hand_rules=False)]
    assert labels == [f"uniform {b}-bit" for b in range(2, 9)] + \
        [starting_points.KERNELS_4_ACTIVATIONS_8]
    assert not set(labels) & set(starting_points.HAND_RULES)
    budget = plan.costs["hand rule k8-2 a3"]  # uniform 3-bit costs a little less
    kept = starting_points.for_search(space, choices, None, 3, budget=budget)
    assert [label for label, _ in kept] == ["uniform 3-bit", "hand rule k8-2 a3"], kept


@pytest.mark.parametrize("mode", ["block", "layer"])
def test_a_filter_search_under_a_budget_starts_from_rebalanced_uniform_points(space, mode):
    """tune_filters at uniform 3-bit's BOPs: for each multiplier but 1, every layer at the widest
    uniform width that fits with those filters (kept below the band too), priced as the model
    it builds; block and layer modes give the same points; none without a budget."""
    import dataclasses

    from solvers.config import with_goal_options
    from solvers.networks.layout import base_filters
    from solvers.search import budget as budgets
    from solvers.search.space import filter_search
    conv, act = layer_names()
    rebalanced = with_goal_options(dataclasses.replace(space, tune_filters=mode), "bops", "uniform3")
    choices = search_choices(rebalanced, conv, act)
    filters = filter_search(rebalanced, 3)
    model = budgets.cost_model(rebalanced, 3, choices)
    limit = budgets.resolve(rebalanced, 3, choices, model, filters)
    plan = starting_points.plan(rebalanced, choices, filters, 3, cost_model=model, budget=limit,
                                hand_rules=False)
    points = {label: values for label, values in plan.points if "filters" in label}
    # x1.5, x2: even uniform 2-bit costs more than uniform 3-bit with base7's filters
    assert sorted(points) == ["uniform 4-bit, filters x0.75", "uniform 7-bit, filters x0.5"], \
        sorted(points)
    for label, values in points.items():
        width, multiplier = int(label.split()[1].split("-")[0]), float(label.split("x")[1])
        counts = {**base_filters(3), **filters.filters_of(values)}
        assert counts["conv_2"] == round(28 * multiplier) and counts["conv_6"] == 27
        quantizers = quantizers_from_hp(quantizer_values(choices, values))
        spent = cost.bops(base7(quantizers=quantizers, filters=counts), rebalanced.objective.goal)
        assert spent == pytest.approx(plan.costs[label], rel=1e-9) and spent <= limit
        wider = {**values, **{k: width + 1 for k in values if k.endswith(("kernel_bits",
                                                                          "activation_bits"))}}
        wider_bits = {(name[:-len("_kernel_bits")], "kernel"): b for name, b in wider.items()
                      if name.endswith("_kernel_bits")}
        wider_bits.update({(name[:-len("_activation_bits")], "activation"): b
                           for name, b in wider.items() if name.endswith("_activation_bits")})
        wider_bits.update({(c, "bias"): 8 for c in conv})
        assert width == 8 or model.cost(wider_bits, counts) > limit, label  # the widest that fits
    assert any(plan.costs[label] < 0.9 * limit for label in points)  # kept below the band
    unbudgeted = starting_points.plan(rebalanced, choices, filters, 3, cost_model=model)
    assert not any("filters" in label for label, _ in unbudgeted.points)


class _ThreeQuantizers(kt.HyperModel):
    def build(self, hp):
        for name in ("k_bits", "b_bits", "a_bits"):
            hp.Choice(name, [2, 3, 4, 8], ordered=True)
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])  # never trained


POINTS = [("uniform 8", {"k_bits": 8, "b_bits": 8, "a_bits": 8}),
         ("uniform 2", {"k_bits": 2, "b_bits": 2, "a_bits": 2}),
         ("rule", {"k_bits": 8, "b_bits": 2, "a_bits": 3})]


def _run_trials(tuner, count):
    """Creates and ends `count` trials, scored by their total bits (no training); returns the
    values of the new ones."""
    oracle, created = tuner.oracle, []
    for _ in range(count):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        values = trial.hyperparameters.values
        bits = {k: values[k] for k in ("k_bits", "b_bits", "a_bits")}
        oracle.update_trial(trial.trial_id, {"val_score": float(sum(bits.values()))})
        if not values.get("tuner/trial_id"):  # not Hyperband training a trial on for longer
            created.append(bits)
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return created


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_every_algorithm_starts_with_the_starting_points_once(algo, tmp_path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence warnings (bayesian)
        tuner = tuners.make_tuner(algo, _ThreeQuantizers(), {}, 6, 3, 1, str(tmp_path),
                                  starting_points=POINTS)
        created = _run_trials(tuner, 6)
        assert created[:3] == [values for _, values in POINTS], created
        assert all(c not in created[:3] for c in created[3:])  # the rest explores
        assert tuner.oracle.start_label({**POINTS[2][1], "tuner/epochs": 1}) == "rule"
        assert tuner.oracle.start_label({"k_bits": 4, "b_bits": 4, "a_bits": 4}) is None
        # Resumed from its folder, the oracle runs no starting point again.
        resumed = tuners.make_tuner(algo, _ThreeQuantizers(), {}, 8, 3, 1, str(tmp_path),
                                    starting_points=POINTS)
        resumed.oracle.reload()
        # Where every oracle draws a new trial's values (the Gaussian process may still
        # propose a tried point after its initial ones: that is its choice, not a starting point).
        drawn = resumed.oracle._random_values()
    assert {k: drawn[k] for k in POINTS[0][1]} not in [values for _, values in POINTS], drawn


def test_baselines_add_the_hand_rule_only_where_the_space_offers_its_widths(space, tmp_path):
    from solvers.search import baselines
    labels = [label for label, _, _ in baselines.plan(space)]
    assert labels == [f"uniform {b}-bit" for b in range(2, 9)] + ["float32", "hand rule k8-2 a3"]
    rule = baselines.plan(space)[-1][2]
    assert rule["conv_0"]["kernel"] == rule["conv_6"]["kernel"] == 'quantized_bits(8,0,alpha="auto_po2")'
    assert rule["conv_3"]["kernel"] == 'quantized_bits(2,0,alpha="auto_po2")'
    assert rule["act_2"]["activation"] == "quantized_relu(3,8)"
    text = "\n".join(line for line in (REPO / "quantization_config.yaml").read_text().splitlines()
                     if "(2," not in line)
    path = tmp_path / "no2.yaml"
    path.write_text(text + "\n")
    no2 = load_search_space(str(path))
    assert [label for label, _, _ in baselines.plan(no2)][-1] == "float32"
    assert all("hand rule" not in label for label, _ in starting_points.starting_configs(no2, [3, 4, 8]))
