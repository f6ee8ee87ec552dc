"""Exact bit allocation from a sensitivity table under a cost budget.

The additive sensitivity model: a configuration {(layer, kind): bits} loses Σ drop(layer, kind,
bits) dB (each layer's kind measured alone, sensitivity.py). `exact` returns the configuration that
loses least among those whose cost lies in [low, budget]; ties go to the lower cost, then to the
wider configuration (more bits in total).

The cost is hp_cost.CostModel's decomposition along base7's chain
    conv_0 → act_0 → conv_1 → act_1 → … → act_{m+1} → conv_{m+2}
    cost = fixed() + Σ_i conv_term(i, b_in_i, b_kernel_i, b_bias_i) + Σ_j act_term(j, b_j),
b_in_0 = the goal's input_bits, b_in_i = the bits of act_{i-1}. A convolution's term may depend on
the ReLU before it (bops: b_a·b_w), so a dynamic programme walks the chain with the previous
ReLU's bits as its state. Per state it keeps every (cost so far, drop so far) pair that some
completion could still need; both are sums of per-step terms, so a pair beaten by another of the
same state under every completion can go (below), and the answer is exact. For bits and size_bits
nothing couples (a multiple-choice knapsack); for energy the terms are the cost model's per-layer
linearised table: the same programme either way.

Pruning: a partial pair (c, d) can still end in [low, budget] for completion costs r in
W = [low - c, budget - c] ∩ [r_min, r_max] (the cheapest and dearest completion from its state).
A dominates B when W(A) ⊇ W(B) and A is no worse in (drop, cost, -width): every completion that
keeps B in the band keeps A there and ranks A+R before B+R. Without a lower bound this is the
usual Pareto front (lower cost and lower drop), all pairs that overshoot budget - r_min gone.
A two-sided band prunes far less (near its edges only pairs of equal cost), so `exact` first
solves each side alone and adds branch and bound only when neither optimum lies in the band.

Measured (2 shared cores, base7, 7 widths for all 20 kinds, synthetic tables, bits and bops):
at most ~0.2 s under a budget alone, ~0.4 s for the worst two-sided band; with biases fixed at
8 bits (the shipped limit) at most ~0.05 s.
"""
import numpy as np

from solvers.networks.layout import layer_names

FLOAT_BITS = 32  # a (layer, kind) missing from `options` stays float, as in the cost model
# Costs are sums of floats taken in different orders here and in CostModel.cost: a configuration
# exactly at the budget must not fall out by a rounding error (real cost steps are ~1e-6 relative).
TOLERANCE = 1e-9


def _slack(low, budget):
    """The rounding allowed on either side of [low, budget] (either bound may be infinite)."""
    return TOLERANCE * max([abs(x) for x in (low, budget) if np.isfinite(x)] + [1.0])


def within(cost, low, budget):
    """Whether `cost` lies in [low, budget], up to TOLERANCE (relative)."""
    slack = _slack(low, budget)
    return low - slack <= cost <= budget + slack


def drop_at(drops, layer, kind, bits):
    """dB lost by (layer, kind) at `bits`: the table's value where measured; between two measured
    widths (5 and 7 with the default widths 2 3 4 6 8) linear between them; outside the measured
    range the nearest measured width's drop (e.g. 1 bit counts as 2); 0 for a (layer, kind) the
    table does not have."""
    measured = sorted(b for (name, k, b) in drops if name == layer and k == kind)
    if not measured:
        return 0.0
    if bits in measured:
        return drops[layer, kind, bits]
    if bits <= measured[0] or bits >= measured[-1]:
        return drops[layer, kind, measured[0] if bits <= measured[0] else measured[-1]]
    upper = next(b for b in measured if b > bits)
    lower = max(b for b in measured if b < bits)
    t = (bits - lower) / (upper - lower)
    return (1 - t) * drops[layer, kind, lower] + t * drops[layer, kind, upper]


def _stages(drops, options, m):
    """The chain as stages: [(kind, index, choices)], choices [(bits tuple, drop, width sum)],
    conv stages ("conv", i) over (kernel, bias) pairs, ReLU stages ("act", j) over widths."""
    convs, acts = layer_names(m)

    def widths(layer, kind):
        if (layer, kind) not in options:
            return [(FLOAT_BITS, 0.0)]  # float: the reference the drops are measured from
        return [(b, drop_at(drops, layer, kind, b)) for b in sorted(set(options[layer, kind]))]
    stages = []
    for i, conv in enumerate(convs):
        stages.append(("conv", i, [((k, b), dk + db, k + b) for k, dk in widths(conv, "kernel")
                                   for b, db in widths(conv, "bias")]))
        if i < len(acts):
            stages.append(("act", i, [((a,), da, a) for a, da in widths(acts[i], "activation")]))
    return stages


def _term_table(stages, cost_model, filters, input_bits):
    """Per stage, {state: costs of its choices (array)}: the state is the bits entering a
    convolution (the previous ReLU's), None where the cost does not depend on it (ReLUs)."""
    tables, states = [], [input_bits]
    for kind, index, choices in stages:
        if kind == "conv":
            tables.append({s: np.array([cost_model.conv_term(index, s, k, b, filters=filters)
                                        for (k, b), _, _ in choices]) for s in states})
        else:
            tables.append({None: np.array([cost_model.act_term(index, a, filters=filters)
                                           for (a,), _, _ in choices])})
            states = [a for (a,), _, _ in choices]
    return tables


def _completion_bounds(stages, tables):
    """bounds[k][state] = (cheapest, dearest) cost of stages k.. entered in `state` (the bits
    leaving the previous ReLU; None after a convolution)."""
    bounds = [None] * len(stages) + [{None: (0.0, 0.0)}]
    for k in range(len(stages) - 1, -1, -1):
        kind, _, choices = stages[k]
        if kind == "conv":
            rest = bounds[k + 1][None]
            bounds[k] = {s: (costs.min() + rest[0], costs.max() + rest[1])
                         for s, costs in tables[k].items()}
        else:
            costs = tables[k][None]
            after = [bounds[k + 1][a] for (a,), _, _ in choices]
            bounds[k] = {None: (min(c + r[0] for c, r in zip(costs, after)),
                                max(c + r[1] for c, r in zip(costs, after)))}
    return bounds


def _front(c, d, mirrored):
    """(costs ascending, drops) of the pairs no other beats: plain, the least drop at cost <= x;
    mirrored, the least drop at cost >= x."""
    order = np.lexsort((d, -c if mirrored else c))
    c, d = c[order], d[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(d)[:-1]])
    keep = d < best_before
    c, d = c[keep], d[keep]
    return (c[::-1], d[::-1]) if mirrored else (c, d)


def _completions(stages, tables, mirrored):
    """fronts[k][state]: _front of the completions, stages k.., entered in `state`."""
    fronts = [None] * len(stages) + [{None: (np.zeros(1), np.zeros(1))}]
    for k in range(len(stages) - 1, -1, -1):
        kind, _, choices = stages[k]
        drop = np.array([x[1] for x in choices])
        if kind == "conv":
            rc, rd = fronts[k + 1][None]
            fronts[k] = {s: _front((costs[:, None] + rc).ravel(), (drop[:, None] + rd).ravel(),
                                   mirrored) for s, costs in tables[k].items()}
        else:
            parts = [(tables[k][None][n] + fronts[k + 1][a][0], drop[n] + fronts[k + 1][a][1])
                     for n, ((a,), _, _) in enumerate(choices)]
            fronts[k] = {None: _front(*(np.concatenate(p) for p in zip(*parts)), mirrored)}
    return fronts


def _least_completion(c, low, budget, below, above):
    """A lower bound on the drop any completion adds to pairs of cost c that ends in [low,
    budget]: the least drop of a completion no dearer than budget - c (`below`, a plain front)
    and of one no cheaper than low - c (`above`, mirrored); inf where none is."""
    slack = _slack(low, budget)
    i = np.searchsorted(below[0], budget - c + slack, side="right") - 1
    least = np.where(i >= 0, below[1][np.maximum(i, 0)], np.inf)
    j = np.searchsorted(above[0], low - c - slack, side="left")
    return np.maximum(least, np.where(j < above[0].size,
                                      above[1][np.minimum(j, above[0].size - 1)], np.inf))


def _keep(c, d, w, low, budget, r_min, r_max):
    """Indices of the pairs no other pair of the same state dominates, and that can still end in
    [low, budget] (module docstring). A dominates B iff key(A) <= key(B), key = (drop, cost,
    -width), and c_A lies in [min(c_B, L), max(c_B, U)], L = low - r_min, U = budget - r_max."""
    slack = _slack(low, budget)
    alive = np.flatnonzero((c + r_min <= budget + slack) & (c + r_max >= low - slack))
    if alive.size <= 1:
        return alive
    order = alive[np.lexsort((-w[alive], c[alive], d[alive]))]  # best key first
    cs = c[order]
    lo_line, up_line = low - r_min, budget - r_max
    # The least cost >= L, and the greatest <= U, among the pairs before each (better keys).
    above = np.minimum.accumulate(np.where(cs >= lo_line, cs, np.inf))
    above = np.concatenate([[np.inf], above[:-1]])
    below = np.maximum.accumulate(np.where(cs <= up_line, cs, -np.inf))
    below = np.concatenate([[-np.inf], below[:-1]])
    # An earlier pair with cost in [L, max(c, U)] dominates a pair of cost c >= L;
    beaten = (cs >= lo_line) & (above < np.inf) & (above <= np.maximum(cs, up_line))
    # one with cost in [c, U] dominates a pair of cost c < min(L, U).
    beaten |= (cs < lo_line) & (cs < up_line) & (below > -np.inf) & (below >= cs)
    # An earlier pair of the same cost: the same window (the only case left, U <= c < L).
    by_cost = np.argsort(cs, kind="stable")
    repeat = np.zeros(cs.size, bool)
    repeat[by_cost[1:]] = cs[by_cost[1:]] == cs[by_cost[:-1]]
    return np.sort(order[~(beaten | repeat)])


def exact(drops, cost_model, options, budget, low=0.0, filters=None):
    """The allocation that loses least under the additive sensitivity model with cost in
    [low, budget]; ties: lower cost, then more bits in total.

    drops: {(layer, kind, bits): dB lost} (sensitivity.read_table); widths it lacks are
        interpolated (drop_at), a (layer, kind) it lacks loses 0.
    cost_model: hp_cost.CostModel (fixed, conv_term, act_term; goal.input_bits feeds conv_0;
        m, base7's middle layers, names the chain).
    options: {(layer, kind): widths allowed} (one width: fixed); a (layer, kind) missing stays
        float (32 bits, no drop) and is not in the answer.
    budget, low: absolute costs in the goal's unit (low 0: no lower bound).
    filters: passed to the cost model's terms (None: the designed filter counts).
    Returns {(layer, kind): bits} over `options`' keys, or None when nothing lies in the band.
    """
    if low > budget + _slack(low, budget):
        return None
    m = cost_model.m
    stages = _stages(drops, options, m)
    tables = _term_table(stages, cost_model, filters, cost_model.goal.input_bits)
    bounds = _completion_bounds(stages, tables)
    start = (float(cost_model.fixed(filters=filters)), cost_model.goal.input_bits)

    def solve(lower, upper, limit=np.inf, fronts=None):
        found = _solve(stages, tables, bounds, start, (lower, upper), m, limit, fronts)
        return found and (*found[:2], {key: b for key, b in found[2].items() if key in options})
    # The optimum under the budget alone, or above `low` alone, is the band's when it lies in the
    # band; both are quick (one-sided pruning is the plain Pareto front).
    below = solve(-np.inf, budget)
    if below is None or within(below[0], low, budget):
        return below and below[2]
    above = solve(low, np.inf)
    if above is None or within(above[0], low, budget):
        return above and above[2]
    # Else the band's optimum is beaten from both sides, and a pair that may still end either side
    # of the band prunes only pairs of its own cost: too many stay. Branch and bound: keep the
    # pairs whose drop plus the least their completion could add stays within a limit, raised
    # from the least the answer can lose (max of the two) until a pass finds one; a pass whose
    # limit prunes nothing has searched all.
    fronts = (_completions(stages, tables, False), _completions(stages, tables, True))
    worst = sum(max(x[1] for x in choices) for _, _, choices in stages)
    floor, step = max(below[1], above[1]), 0.01
    while True:
        found = solve(low, budget, floor + step, fronts)
        if found or floor + step > worst:
            return found and found[2]
        step *= 4


def _solve(stages, tables, bounds, start, band, m, limit=np.inf, fronts=None):
    """(cost, drop, configuration) of the best allocation with cost in band = (low, budget)
    (either may be infinite), or None: the programme of the module docstring. With `fronts`
    (plain and mirrored _completions), pairs that cannot end within `limit` dB go too."""
    low, budget = band
    # fronts: {state: (cost, drop, width, parent state, parent index, choice)} per stage
    front = {start[1]: (np.array([start[0]]), np.zeros(1), np.zeros(1, int), None, None, None)}
    history = []
    for k, (kind, _, choices) in enumerate(stages):
        drop = np.array([x[1] for x in choices])
        width = np.array([x[2] for x in choices])
        grouped = {}  # next state: list of candidate arrays
        for state, (c, d, w, *_) in front.items():
            costs = tables[k][state if kind == "conv" else None]
            # After a convolution the state is gone (None); after a ReLU it is the ReLU's bits.
            for n, nxt in ([(None, None)] if kind == "conv" else
                           [(n, x[0][0]) for n, x in enumerate(choices)]):
                pick = np.arange(len(choices)) if n is None else np.array([n])
                grouped.setdefault(nxt, []).append((
                    (c[:, None] + costs[pick]).ravel(), (d[:, None] + drop[pick]).ravel(),
                    (w[:, None] + width[pick]).ravel(),
                    np.full(c.size * pick.size, state, dtype=object),
                    np.repeat(np.arange(c.size), pick.size), np.tile(pick, c.size)))
        front = {}
        for nxt, parts in grouped.items():
            c, d, w, ps, pi, ch = (np.concatenate(p) for p in zip(*parts))
            if fronts is not None:
                least = _least_completion(c, low, budget, fronts[0][k + 1][nxt],
                                          fronts[1][k + 1][nxt])
                hope = np.flatnonzero(d + least <= limit + TOLERANCE)
                c, d, w, ps, pi, ch = (x[hope] for x in (c, d, w, ps, pi, ch))
            r_min, r_max = bounds[k + 1][nxt]  # the rest of the chain entered in this state
            keep = _keep(c, d, w, low, budget, r_min, r_max)
            if keep.size:
                front[nxt] = (c[keep], d[keep], w[keep], ps[keep], pi[keep], ch[keep])
        if not front:
            return None
        history.append(front)
    c, d, w, *_ = front[None]
    best = np.lexsort((-w, c, d))[0]
    if not within(c[best], low, budget):
        return None
    return c[best], d[best], _walk_back(stages, history, best, m)


def _walk_back(stages, history, index, m):
    """The configuration of the final front's entry `index`."""
    convs, acts = layer_names(m)
    chosen, state = {}, None
    for k in range(len(stages) - 1, -1, -1):
        kind, i, choices = stages[k]
        _, _, _, ps, pi, ch = history[k][state]
        bits = choices[ch[index]][0]
        if kind == "conv":
            chosen[convs[i], "kernel"], chosen[convs[i], "bias"] = bits
        else:
            chosen[acts[i], "activation"] = bits[0]
        state, index = ps[index], pi[index]
    return chosen
