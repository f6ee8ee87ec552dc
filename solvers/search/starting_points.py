"""The first trials of every search: the configurations already known to be good.

A search that starts from random points rarely meets "every layer at b bits" (one layer at 2 bits
among 20 random choices is almost certain), so its Pareto front could lie below the uniform one.
Here the uniform configurations (every width the space offers), the hand rules (first and last
kernels at 8 bits, the rest at 2: the edges of an SR network carry the image) and, when a
sensitivity table exists, the allocations that lose least under it (allocation.exact) at the
cost of uniform 2, 3 and 4 bits, enter as the first trials (tuners.make_tuner: `starting_points`).
The search's front on the validation images then holds the uniform configurations (as the limit
leaves them: the shipped one keeps biases at 8 bits); the rest of the budget explores. Under a
budget only the points that cost within [band * budget, budget] enter (the others would train
over the budget or far below it), with the exact allocation at the budget and, with a filter
search, every layer at the widest uniform width that fits at each filter multiplier
(rebalanced). Costs come from hp_cost.CostModel: no model is built.

A starting point is {(layer, kind): bits}; point_values maps it onto the hyperparameters (the nearest width a
layer's limit leaves it, a shared choice taking its first layer's bits), with the filter search's
defaults (base7's widths).
"""
import math
from typing import NamedTuple

from solvers.networks.layout import hp_name, layer_names, scaled_filters

# The budget point of post-training mixed precision (issue 13: Sony MCT loses 0.83 dB there):
# kernels at 4 bits, biases and activations at 8.
KERNELS_4_ACTIVATIONS_8 = "kernels 4-bit, activations 8-bit"
# label: (edge kernels, middle kernels, biases, activations): the edges of an SR network carry the
# image. make study sets the a3 rule against uniform 3-bit on held-out images (docs/study.md).
HAND_RULES = {"hand rule k8-2 a3": (8, 2, 8, 3), "hand rule k8-2 a4": (8, 2, 8, 4)}
SENSITIVITY_BUDGETS = (2, 3, 4)  # derived allocations at the cost of uniform 2, 3, 4 bits
EXACT_ALLOCATION = "exact allocation at the budget"  # its label (trials.csv `start`)


def _layers(m=4):
    conv_names, act_names = layer_names(m)
    return ([(c, k) for c in conv_names for k in ("kernel", "bias")]
            + [(a, "activation") for a in act_names])


def uniform(bits, m=4):
    """Every kernel, bias and activation at `bits`."""
    return {key: bits for key in _layers(m)}


def hand_rule(edge, middle, bias, activation, m=4):
    """First and last kernels at `edge` bits, the others at `middle`; biases and activations one
    width each."""
    conv_names, _ = layer_names(m)
    edges = {conv_names[0], conv_names[-1]}
    return {(layer, kind): (bias if kind == "bias" else activation if kind == "activation"
                            else edge if layer in edges else middle)
            for layer, kind in _layers(m)}


def _nearest(options, widths, wanted):
    """The option whose width is nearest `wanted` (ties: the wider one)."""
    return min(options, key=lambda o: (abs(widths[o] - wanted), -widths[o]))


def point_values(layer_bits, choices, bits_of, filters=None):
    """Hyperparameter values for a starting point: each choice at the width nearest its (first) layer's."""
    values = {}
    for choice in choices.values():
        widths = {o: (o if choice.by_bits else bits_of[o]) for o in choice.options}
        values[choice.name] = _nearest(choice.options, widths,
                                       layer_bits[choice.layers[0], choice.kind])
    if filters is not None:
        values.update({name: filters.default(name) for name in filters.choices()})
    return values


def offers(space, layer_bits):
    """Whether the search space has a quantizer of every width the point asks for."""
    return all(bits in getattr(space, kind).values() for (_, kind), bits in layer_bits.items())


def quantizers_of(layer_bits, space):
    """base7's `quantizers` for a starting point: each layer's kind at the width of the space
    nearest the point's (ties: the wider), the width's first quantizer string (SearchSpace.quantizer)."""
    result = {}
    for (layer, kind), bits in layer_bits.items():
        offered = sorted(set(getattr(space, kind).values()))
        nearest = _nearest(offered, {b: b for b in offered}, bits)
        result.setdefault(layer, {})[kind] = space.quantizer(kind, nearest)
    return result


def starting_configs(space, widths, hand_rules=True):
    """[(label, {(layer, kind): bits})] that need no table: uniform at each of `widths`, the hand
    rules (unless hand_rules is False) and kernels 4/activations 8, each only where the space has
    quantizers of its widths (a rule whose widths the space lacks would run as something else
    under its label)."""
    configs = [(f"uniform {b}-bit", uniform(b)) for b in widths]
    if hand_rules:
        configs += [(label, hand_rule(*rule)) for label, rule in HAND_RULES.items()]
    configs.append((KERNELS_4_ACTIVATIONS_8, hand_rule(4, 4, 8, 8)))
    return [(label, bits) for label, bits in configs if offers(space, bits)]


def as_trials(configs, choices, bits_of, filters=None):
    """[(label, hyperparameter values)] without repeats (two points a limit maps onto the same
    values run once, under the first label)."""
    trials, seen = [], set()
    for label, layer_bits in configs:
        values = point_values(layer_bits, choices, bits_of, filters)
        key = tuple(sorted(values.items()))
        if key not in seen:
            seen.add(key)
            trials.append((label, values))
    return trials


def filter_values(filters, multiplier):
    """The filter search's hyperparameter values with every searched layer at `multiplier` of
    its designed filters (block: the multiplier itself; layer: each layer's count)."""
    if filters.mode == "block":
        return {name: float(multiplier) for name in filters.choices()}
    return {hp_name(layer, "filters"): scaled_filters(count, multiplier)
            for layer, count in filters.base.items()}


def rebalanced(space, choices, filters, cost_model, budget, bits_of):
    """[(label, values)] under a budget with a filter search: for each multiplier but 1, every
    layer at the widest uniform width whose cost with those filters fits the budget (none if even
    the narrowest does not). Rebalancing is half of what AutoQKeras searches: fewer filters pay
    for more bits (uniform 4-bit with the middle layers at 0.75 of their filters costs 97 % of
    uniform 3-bit's BOPs), and a random draw rarely lands on a uniform width, so these are
    where a search of the filters starts, as the uniform points are for the bits alone."""
    from solvers.search import hp_cost
    points = []
    for multiplier in sorted({float(m) for m in filters.multipliers} - {1.0}):
        fitting = None
        for width in space.uniform_widths():
            values = {**point_values(uniform(width), choices, bits_of),
                      **filter_values(filters, multiplier)}
            spent = cost_model.cost(hp_cost.layer_bits_of(values, choices, bits_of),
                                    filters.filters_of(values))
            if spent <= budget and (fitting is None or width > fitting[0]):
                fitting = (width, values)
        if fitting is not None:
            points.append((f"uniform {fitting[0]}-bit, filters x{multiplier:g}", fitting[1]))
    return points


class Plan(NamedTuple):
    """The starting points of a search and what the budget left out.

    points: [(label, hyperparameter values)], the first trials in order.
    costs: {label: the goal's cost of its values} for every point, kept or not.
    dropped: [(label, cost)] of the points outside [band * budget, budget] (empty without one).
    """
    points: list
    costs: dict
    dropped: list


def plan(space, choices, filters, scale, sensitivity_csv=None, cost_model=None, budget=None,
         band=0.9, hand_rules=True):
    """The starting points of a search and their costs (Plan); for_search's arguments.

    Without a budget: starting_configs over the widths every kind offers, and with a table the
    exact allocations (allocation.exact) at the cost of uniform 2, 3 and 4 bits as the limit
    leaves them (the shipped one keeps biases at 8 bits). With a budget: the same,
    only those whose cost lies in [band * budget, budget], and with a table, first, the exact
    allocation at the budget (in the band; if none lies there, the best one below it) and, with a
filter search, the rebalanced uniform points (rebalanced; kept below the band too). A point's
    cost is that of the values it becomes (point_values: the limit may move its widths), with
    the filter search's defaults. The allocation does not know of shared choices (limit
    `shared:`), which take their first layer's width: such a point may move, and is costed as
    it runs like every other.
    """
    from solvers.search import allocation, hp_cost, sensitivity
    cost_model = cost_model or hp_cost.CostModel(space.objective.goal, scale)
    bits_of = {**space.kernel, **space.bias, **space.activation}
    # What each layer's kind may take after the limit: the allocation chooses only among these.
    options = {(layer, c.kind): sorted({o if c.by_bits else bits_of[o] for o in c.options})
               for c in choices.values() for layer in c.layers}
    counts = None if filters is None else filters.filters_of(
        {name: filters.default(name) for name in filters.choices()})
    configs = starting_configs(space, space.uniform_widths(), hand_rules)
    drops = sensitivity.read_table(sensitivity_csv) if sensitivity_csv else None
    exempt = []  # values that may lie below the band: the allocation at the budget, rebalanced
    if drops:
        for b in SENSITIVITY_BUDGETS:
            if b in space.uniform_widths():
                # Uniform b-bit as it runs (budget.py's uniformN): the point it competes with.
                at = point_values(uniform(b), choices, bits_of)
                found = allocation.exact(drops, cost_model, options, cost_model.cost(
                    hp_cost.layer_bits_of(at, choices, bits_of), counts), filters=counts)
                if found is not None:
                    configs.append((f"sensitivity at uniform {b}-bit cost", found))
        if budget is not None:
            found = (allocation.exact(drops, cost_model, options, budget, band * budget, counts)
                     or allocation.exact(drops, cost_model, options, budget, filters=counts))
            if found is not None:
                # First, so that a point it coincides with runs under its label: make study
                # finds the allocation in trials.csv by it.
                configs.insert(0, (EXACT_ALLOCATION, found))
                exempt.append(point_values(found, choices, bits_of, filters))
    trials = as_trials(configs, choices, bits_of, filters)
    if budget is not None and filters is not None:
        known = [values for _, values in trials]
        extra = [(label, values) for label, values in rebalanced(
            space, choices, filters, cost_model, budget, bits_of) if values not in known]
        trials += extra
        exempt += [values for _, values in extra]  # uniform widths are coarse: up to a width below
    costs = {label: cost_model.cost(hp_cost.layer_bits_of(values, choices, bits_of),
                                    None if filters is None else filters.filters_of(values))
             for label, values in trials}
    if budget is None:
        return Plan(trials, costs, [])
    kept, dropped = [], []
    for label, values in trials:
        low = -math.inf if values in exempt else band * budget
        if allocation.within(costs[label], low, budget):
            kept.append((label, values))
        else:
            dropped.append((label, costs[label]))
    return Plan(kept, costs, dropped)


def for_search(space, choices, filters, scale, sensitivity_csv=None, cost_model=None,
               budget=None, band=0.9, hand_rules=True):
    """The starting points of a search: [(label, hyperparameter values)] (plan's points).

    space: config.SearchSpace; choices: space.search_choices; filters: the FilterSearch (None:
    tune_filters none); scale: base7's; sensitivity_csv: make sensitivity's table at this scale
    (None: no allocations); cost_model: hp_cost.CostModel (default: the space's goal at `scale`);
    budget: an absolute cost in the goal's unit (None: no budget); band: the fraction of the
    budget a point must cost at least; hand_rules: False leaves out HAND_RULES. Prints nothing:
    plan(...).dropped says which points the budget left out.
    """
    return plan(space, choices, filters, scale, sensitivity_csv, cost_model, budget, band,
                hand_rules).points
