"""A budget the user names (`goal: {budget: ...}` or --budget), in the goal's unit for this run's
network and search space, and the cost model that proposals are priced with.

uniformN is the cost of the configuration "every layer at N bits" as the limit leaves it (the
shipped limit keeps biases at 8 bits: what a uniform baseline of that width costs); P% is that
fraction of the reference, every quantizer at ref_bits with base7's filters (the objective's
reference); a number is taken as it is. A budget below the cheapest configuration the limit and
the filter search allow is a ConfigError: no trial could be trained.
"""
from solvers.config import ConfigError
from solvers.search import hp_cost, starting_points

UNITS = {"bits": "bits", "bops": "BOPs", "energy": "pJ"}


def cost_model(space, scale, choices=None):
    """hp_cost.CostModel for the space's goal; with the energy goal its per-layer table is built
    here (QTools, once per search: 49 models per bias width, so only the bias widths `choices`
    (search_choices) leave; the shipped limit keeps one, 8 bits)."""
    goal = space.objective.goal
    table = None
    if goal.type == "energy":
        widths = sorted({*space.kernel.values(), *space.activation.values()})
        bits_of = {**space.kernel, **space.bias, **space.activation}
        biases = sorted({o if c.by_bits else bits_of[o] for c in (choices or {}).values()
                         if c.kind == "bias" for o in c.options}) or None
        table = hp_cost.build_energy_table(goal, scale, widths, bias_widths=biases)
    return hp_cost.CostModel(goal, scale, energy_table=table)


def values_cost(model, choices, bits_of, filter_search=None, scale=3):
    """cost_of(hyperparameter values) -> the goal's cost, for the oracles (no model built)."""
    from solvers.networks.layout import base_filters

    def cost_of(values):
        filters = base_filters(scale)
        if filter_search is not None:
            filters.update(filter_search.filters_of(values))
        return model.cost(hp_cost.layer_bits_of(values, choices, bits_of), filters)
    return cost_of


def extreme(model, choices, bits_of, filter_search=None, scale=3, end=0):
    """The cost of the cheapest (end 0) or costliest (end -1) configuration the search space
    allows: every choice at its fewest (most) bits, every searched layer at its fewest (most)
    filters; each cost grows with both."""
    values = {name: c.options[end] for name, c in choices.items()}
    if filter_search is not None:
        values.update({name: options[end] for name, options in filter_search.choices().items()})
    return values_cost(model, choices, bits_of, filter_search, scale)(values)


def resolve(space, scale, choices, model, filter_search=None, where="goal: budget"):
    """The budget in the goal's unit (None without one); ConfigError for a width the space lacks
    or a budget below the cheapest configuration."""
    goal = space.objective.goal
    if goal.budget is None:
        return None
    bits_of = {**space.kernel, **space.bias, **space.activation}
    kind, value = goal.budget
    if kind == "uniform":
        if value not in space.uniform_widths():
            raise ConfigError(f"{where}: uniform{value}: the search space has no {value}-bit "
                              f"quantizer of every kind; widths offered: "
                              f"{', '.join(map(str, space.uniform_widths()))}")
        values = starting_points.point_values(starting_points.uniform(value), choices, bits_of)
        budget = model.cost(hp_cost.layer_bits_of(values, choices, bits_of))
    elif kind == "fraction":
        budget = value * model.cost(starting_points.uniform(space.objective.ref_bits))
    else:
        budget = value
    unit = UNITS[goal.type]
    most = extreme(model, choices, bits_of, filter_search, scale, end=-1)
    if goal.band * budget > most:
        raise ConfigError(f"{where}: {budget:.6g} {unit} x band {goal.band:g} is above the "
                          f"costliest configuration the limit allows ({most:.6g} {unit}): no "
                          "configuration lies in the band; lower the budget or the band")
    least = extreme(model, choices, bits_of, filter_search, scale)
    if budget < least:
        named = "" if kind == "cost" else f"{goal.budget_text()} = "
        raise ConfigError(f"{where}: {named}{budget:.6g} {unit} is below the "
                          f"cheapest configuration the limit allows ({least:.6g} {unit}, every "
                          "layer at its fewest bits); raise the budget or widen the limit")
    return float(budget)


def band_of(space, choices, filters, model, scale):
    """The oracles' Band (None without a budget): proposals priced without building a model."""
    from solvers.search.oracles import (
        Band,  # the oracles import TensorFlow's Keras Tuner
    )
    objective = space.objective
    if objective.budget_cost is None:
        return None
    bits_of = {**space.kernel, **space.bias, **space.activation}
    return Band(values_cost(model, choices, bits_of, filters, scale),
                objective.goal.band * objective.budget_cost, objective.budget_cost)
