"""Steady-state evolution under a cost band (oracles.py's Band and _Banded): each trial a child of
one of the best completed trials.

The moves, drawn from the proposal's seeded RNG (so a seed gives the same children, resumed or
not). Without a band every child is a `step`. With one, a child should land just under the
budget: one that falls below it spends less than it may (a mutation of a configuration at the
budget that goes over and is stepped back down usually does), and with ~4 mutations per search
every child counts.
  swap (SWAP_SHARE of the children): one hyperparameter k >= 1 options up, another j >= 1 down;
      the raised one and k at random (among those some partner fits), the partner and j those
      whose child, in the band and untried, costs most: nearest the budget from below. It trades
      cost rather than adding it, so it lands at the budget where a +1 step goes over; and it is
      the only move that jumps several options at once: from uniform 3-bit (base7's BOPs),
      conv_0's kernel to 7 bits paid for by one middle layer at 2, in one child.
  step (the rest): the original move, one or two hyperparameters one option down or up; local,
      and with fill a one-down-several-up trade. A step out of the band is redrawn (a new move),
      MUTATIONS times; then the nearest are repaired (oracles.py) and filled.
  fill (after either move, and after a repair): random hyperparameters raised one option at a
      time while the cost stays within the budget, never one the move lowered (that would undo
      it: a step down filled back up is its parent). It ends maximal: no allowed raise fits, so
      the gap to the budget is below the cheapest allowed raise; it only raises, so a child in
      the band stays in it. Random order rather than cheapest raise first: the guarantee is
      the same, but cheapest-first raises the same cheap layers in every child and, once they
      are at their top, has only dear raises left. On base7's BOPs at uniform 3-bit's budget,
      from 300 random points of the band: 0.39 % of the budget left on average against 0.58 %;
      50 fills of uniform 2-bit: 50 different children against 1.
A child tried already is never proposed: a filled one tried is redrawn; where no filled child is
new, an unfilled one in the band is taken, else a random draw.
"""
import keras_tuner as kt
import numpy as np
from keras_tuner.src.engine import hyperparameters as hp_module

from solvers.search.oracles import REPAIRS, RUNNING, STOPPED, _Banded, _plain, ladder

MUTATIONS = 50  # children tried (already tried, or out of the band) before repairs
SWAP_SHARE = 0.5  # of the children (with a band) that are swaps; the rest are steps


class EvolutionOracle(_Banded, kt.Oracle):
    """Steady-state evolution: each trial mutates a good one. Starting points first (_Recording's
    next_starting_point), then random proposals until every starting point has run and
    `population` trials completed (so the starting points, if more, are the population). Then a
    parent is the best of `tournament` draws (with replacement) from the `population` best
    completed trials in the band (failed ones never count); its child is one of the moves above.
    All state is Keras Tuner's saved state (seed state, counts too): a search resumes."""

    def __init__(self, objective=None, max_trials=10, population=4, tournament=2, band=None,
                 **kwargs):
        """kwargs: kt.Oracle's (seed, hyperparameters, max_retries_per_trial, ...)."""
        super().__init__(objective=objective, max_trials=max_trials, **kwargs)
        if population < 2 or tournament < 1:
            raise ValueError("population must be at least 2 and tournament at least 1")
        self.population, self.tournament, self.band = population, tournament, band

    def get_state(self):
        return {**super().get_state(), "population": self.population, "tournament": self.tournament}

    def set_state(self, state):
        super().set_state(state)
        self.population, self.tournament = state["population"], state["tournament"]

    def parents(self):
        """Completed trials with a finite score, in the band, best first."""
        done = [t for t in self.trials.values() if t.status == "COMPLETED"
                and t.score is not None and np.isfinite(t.score)
                and self._holds(t.hyperparameters.values)]
        return sorted(done, key=lambda t: t.score, reverse=self.objective.direction == "max")

    def populate_space(self, trial_id):
        values = self._propose()  # None: exhausted, or the band unreachable (stop_reason set)
        return self._guard({"status": STOPPED if values is None else RUNNING, "values": values})

    def _propose(self):
        parents = self.parents()
        starting = getattr(self, "next_starting_point", lambda: None)()
        if starting is not None or len(parents) < self.population:
            return self._random_values()  # the starting points first, through _Recording
        rng, out_of_band, spares = self._rng(), [], []  # spares: (new, unfilled, its count)
        pool = parents[:self.population]
        for _ in range(MUTATIONS):
            parent = min(rng.choice(range(len(pool))) for _ in range(self.tournament))
            child, unfilled = self.child(_plain(pool[parent].hyperparameters.values), rng)
            if not self._holds(child):
                out_of_band.append(child)
            elif not self._duplicate(child):
                if out_of_band:
                    self._count("redrawn")
                return child
            elif unfilled != child:
                spares.append((unfilled, "redrawn" if out_of_band else None))
        for values in sorted(out_of_band, key=self._distance)[:REPAIRS]:  # none without a band
            fixed = self._repair(values, rng)  # None: stuck
            if fixed is not None:
                spares.append((fixed, "repaired"))
                if not self._duplicate(filled := self.fill(fixed, rng)):
                    self._count("repaired")
                    return filled
        for values, kind in spares:  # no filled child is new: an unfilled one, if new
            if not self._duplicate(values):
                if kind is not None:
                    self._count(kind)
                return values
        return self._random_values()  # the parents' neighbourhood is exhausted

    def child(self, parent, rng):
        """(child, the child before fill) of `parent` (values): the move mix above. Out of the band
        only a step's: filled only in the band."""
        if self.band is None:
            child = self.mutate(parent, rng)
            return child, child
        child = self.swap(parent, rng) if rng.random() < SWAP_SHARE else None
        if child is None:  # a step, or no swap fits
            child = self.mutate(parent, rng)
        if not self.band.holds(child):
            return child, child
        ladders = self._ladders()
        lowered = {n for n, s in ladders.items() if parent.get(n) in s and child[n] in s
                   and s.index(child[n]) < s.index(parent[n])}
        return self.fill(child, rng, frozen=lowered), child

    def mutate(self, values, rng):
        """The step: `values` with one or two hyperparameters changed (each equally likely), one
        option down or up (ordered), to any other option (non-ordered, Float without step)."""
        child = dict(values)
        movable = {hp.name: (hp, ladder(hp)) for hp in self.hyperparameters.space
                   if hp.name in child and not isinstance(hp, hp_module.Fixed)
                   and (ladder(hp) is None or len(ladder(hp)[0]) > 1)}
        for name in rng.sample(list(movable), min(rng.choice((1, 2)), len(movable))):
            hp, steps = movable[name]
            if steps is None:  # a Float without step: any value
                child[name] = hp.prob_to_value(rng.random())
            elif steps[1] and child[name] in steps[0]:  # ordered: one option down or up
                at = steps[0].index(child[name])
                child[name] = steps[0][rng.choice([i for i in (at - 1, at + 1)
                                                   if 0 <= i < len(steps[0])])]
            else:
                child[name] = rng.choice([o for o in steps[0] if o != child[name]])
        return child

    def swap(self, values, rng):
        """`values` with one hyperparameter k >= 1 options up and another j >= 1 down, in the band
        and untried: the raised one and k at random among those some partner fits, the partner
        and j those whose child costs most (the first of equals). None where no swap fits."""
        ladders, band = self._ladders(), self.band
        at = {n: s.index(values[n]) for n, s in ladders.items() if values.get(n) in s}
        ups = [(n, k) for n, i in at.items() for k in range(1, len(ladders[n]) - i)]
        rng.shuffle(ups)
        for up, k in ups:
            raised, best, most = {**values, up: ladders[up][at[up] + k]}, None, None
            for name, i in at.items():
                for j in range(1, i + 1) if name != up else ():
                    child = {**raised, name: ladders[name][i - j]}
                    cost = band.cost_of(child)
                    if (band.low <= cost <= band.high and (most is None or cost > most)
                            and not self._duplicate(child)):
                        best, most = child, cost
            if best is not None:
                return best
        return None

    def fill(self, values, rng, frozen=()):
        """`values` with random hyperparameters (not in `frozen`) raised one option at a time while
        the cost stays within the budget (band.high), until no such raise fits."""
        ladders, values = self._ladders(), dict(values)
        while True:
            raises = []
            for name, steps in ladders.items():
                if name in frozen or values.get(name) not in steps:
                    continue
                i = steps.index(values[name])
                if i + 1 < len(steps) and self.band.cost_of(
                        raised := {**values, name: steps[i + 1]}) <= self.band.high:
                    raises.append(raised)
            if not raises:
                return values
            values = rng.choice(raises)
