"""The first trials of every search: the configurations already known to be good.

A search that starts from random points rarely meets "every layer at b bits" (one layer at 2 bits
among 20 random choices is almost certain), so its Pareto front could lie below the uniform one.
Here the uniform configurations (every width the space offers), the hand rules (first and last
kernels at 8 bits, the rest at 2: the edges of an SR network carry the image) and, when a
sensitivity table exists, the allocations derived from it at the cost of uniform 2, 3 and 4 bits,
enter as the first trials (tuners.make_tuner: `starting_points`). The search's front on the validation
images then holds the uniform configurations (as the limit leaves them: the shipped one keeps
biases at 8 bits); the rest of the budget explores.

A starting point is {(layer, kind): bits}; point_values maps it onto the hyperparameters (the nearest width a
layer's limit leaves it, a shared choice taking its first layer's bits), with the filter search's
defaults (base7's widths).
"""
from solvers.networks.base7 import base7, layer_names

# The budget point of post-training mixed precision (issue 13: Sony MCT loses 0.83 dB there):
# kernels at 4 bits, biases and activations at 8.
KERNELS_4_ACTIVATIONS_8 = "kernels 4-bit, activations 8-bit"
# label: (edge kernels, middle kernels, biases, activations): the edges of an SR network carry the
# image. make study sets the a3 rule against uniform 3-bit on held-out images (docs/study.md).
HAND_RULES = {"hand rule k8-2 a3": (8, 2, 8, 3), "hand rule k8-2 a4": (8, 2, 8, 4)}
SENSITIVITY_BUDGETS = (2, 3, 4)  # derived allocations at the cost of uniform 2, 3, 4 bits


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


def allocate(drops, cost_of, start, budget, options):
    """Greedy bit allocation from a sensitivity table: from `start` ({(layer, kind): bits}), lower
    one layer's kind to its next narrower width at a time, each time the step that loses the
    fewest dB per unit of cost saved, until the cost is at most `budget`. drops: {(layer, kind,
    bits): dB lost}; options: {(layer, kind): widths the search may give it} (a kind the limit
    fixes never moves); cost_of(layer_bits) -> cost. None when even the narrowest cost more."""
    current, now = dict(start), cost_of(start)
    while now > budget:
        steps = []
        for key, bits in current.items():
            lower = [w for w in options.get(key, ()) if w < bits and (*key, w) in drops]
            if not lower:
                continue
            trial = {**current, key: max(lower)}
            saved = now - cost_of(trial)
            if saved > 0:
                lost = drops[(*key, max(lower))] - drops.get((*key, bits), 0.0)
                steps.append((max(lost, 0.0) / saved, trial))
        if not steps:
            return None
        current = min(steps, key=lambda step: step[0])[1]
        now = cost_of(current)
    return current


def starting_configs(space, widths, scale=3, drops=None, goal_cost=None, options=None):
    """[(label, {(layer, kind): bits})]: uniform at each width, the hand rules, and, given a
    sensitivity table (`drops`) and goal_cost(model) -> cost, the derived allocation at the cost
    of uniform 2, 3 and 4 bits, each layer's kind within `options` ({(layer, kind): widths}, the
    search's choices after the limit; default: `widths` for all)."""
    configs = [(f"uniform {b}-bit", uniform(b)) for b in widths]
    configs += [(label, hand_rule(*rule)) for label, rule in HAND_RULES.items()]
    configs.append((KERNELS_4_ACTIVATIONS_8, hand_rule(4, 4, 8, 8)))
    # A rule whose widths the space lacks would run as something else under its label.
    configs = [(label, bits) for label, bits in configs if offers(space, bits)]
    if drops and goal_cost is not None:
        cache = {}

        def cost_of(layer_bits):
            key = tuple(sorted(layer_bits.items()))
            if key not in cache:
                cache[key] = goal_cost(base7(scale=scale, quantizers=quantizers_of(layer_bits,
                                                                                   space)))
            return cache[key]
        for b in SENSITIVITY_BUDGETS:
            if b in widths:
                options = options or {key: widths for key in uniform(b)}
                start = {key: max(allowed) for key, allowed in options.items()}
                derived = allocate(drops, cost_of, start, cost_of(uniform(b)), options)
                if derived is not None:
                    configs.append((f"sensitivity at uniform {b}-bit cost", derived))
    return configs


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


def for_search(space, choices, filters, scale, sensitivity_csv=None):
    """The starting points of a search ([(label, values)]): starting_configs over the widths every
    kind offers, with the derived allocations when `sensitivity_csv` (make sensitivity's table at this
    scale) is given."""
    from solvers.search import cost, sensitivity
    drops = sensitivity.read_table(sensitivity_csv) if sensitivity_csv else None
    goal = space.objective.goal
    measure = {"bits": cost.bits, "bops": cost.bops, "energy": cost.energy_pj}[goal.type]
    bits_of = {**space.kernel, **space.bias, **space.activation}
    options = {(layer, c.kind): [o if c.by_bits else bits_of[o] for o in c.options]
               for c in choices.values() for layer in c.layers}
    found = starting_configs(space, space.uniform_widths(), scale, drops,
                             lambda model: measure(model, goal), options)
    return as_trials(found, choices, bits_of, filters)
