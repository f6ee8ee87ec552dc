"""Cost-band proposals for every Keras Tuner oracle (which has no constraints); evolution.py's
oracle builds on them. With a `Band`, `_Banded` (mixed in by `banded`) redraws a random proposal
outside [low, high] up to REDRAWS times, then repairs it by stepping random hyperparameters one
option down (while over) or up (while under, never over); what nothing brings into the band ends
the search (`stop_reason`, a STOPPED trial), untrained. Bayesian optimisation maximises its
acquisition over the band only; Hyperband's new trials are random draws, so banded. Steps follow
the options: an ordered Choice's sorted values, a non-ordered one's as given (space.py lists
quantizer strings fewest bits first), Int and stepped Float ranges. Flat spaces only (no
conditions), as base7's.
"""
import random
from dataclasses import dataclass

import keras_tuner as kt
import numpy as np
from keras_tuner.src.engine import hyperparameters as hp_module

RUNNING, STOPPED = kt.engine.trial.TrialStatus.RUNNING, kt.engine.trial.TrialStatus.STOPPED
REDRAWS = 200  # random draws tried before repairing one: a draw and its cost take microseconds
REPAIRS = 20  # proposals repaired (nearest the band first) before giving up
CANDIDATES = 2000  # random points the Gaussian process scores per proposal
LOCAL = 5  # best trials whose neighbours (one step, or one up and one down) are candidates too


@dataclass(frozen=True)
class Band:
    """The cost interval proposals must fall in: band * budget <= cost_of(values) <= budget."""
    cost_of: callable  # hyperparameter values dict -> goal cost (fast, pure Python)
    low: float
    high: float

    def holds(self, values):
        return self.low <= self.cost_of(values) <= self.high


def ladder(hp):
    """(options in step order, whether that order is meaningful) of a hyperparameter; None for
    one that cannot be stepped (Fixed, a Float without step)."""
    if isinstance(hp, hp_module.Choice):
        return (sorted(hp.values) if hp.ordered else list(hp.values)), hp.ordered
    if isinstance(hp, hp_module.Boolean):
        return [False, True], True
    if isinstance(hp, hp_module.Int):
        return (list(range(hp.min_value, hp.max_value + 1)) if hp.step is None
                else sorted(int(v) for v in hp.values)), True
    if isinstance(hp, hp_module.Float) and hp.step is not None:
        return sorted(hp.values), True
    return None


def _plain(values):
    """The hyperparameters of a proposal, without Hyperband's tuner/* bookkeeping."""
    return {k: v for k, v in values.items() if not k.startswith("tuner/")}


class _Banded:
    """Mixin for a kt.Oracle: proposals inside `band` (None: Keras Tuner's own behaviour), and
    their redrawn/repaired counts in the saved state. Randomness comes from the oracle's saved
    seed state, so a seed gives the same proposals, resumed or not."""

    band = None
    stop_reason = None  # _Recording's, when mixed in: a one-line reason the search ended

    def proposal_counts(self):
        """{"redrawn": proposals taken after out-of-band draws, "repaired": proposals repaired}."""
        return dict(getattr(self, "_counts", {"redrawn": 0, "repaired": 0}))

    def _count(self, kind):  # a new dict each time: never the class default's
        self._counts = {**self.proposal_counts(), kind: self.proposal_counts()[kind] + 1}

    def get_state(self):
        return {**super().get_state(), "proposal_counts": self.proposal_counts()}

    def set_state(self, state):
        super().set_state(state)
        self._counts = {"redrawn": 0, "repaired": 0, **state.get("proposal_counts", {})}

    def _rng(self):
        """A random.Random of its own for each use, from the saved seed state (then advanced)."""
        self._seed_state += 1
        return random.Random(f"{self.seed}/{self._seed_state}")

    def _holds(self, values):
        return self.band is None or self.band.holds(_plain(values))

    def _distance(self, values):  # of the cost to the band
        return max(self.band.low - (c := self.band.cost_of(_plain(values))), c - self.band.high, 0)

    def _ladders(self):
        return {hp.name: steps[0] for hp in self.hyperparameters.space
                if (steps := ladder(hp)) is not None and len(steps[0]) > 1}

    def _repair(self, values, rng):
        """`values` stepped into the band, one option of a random hyperparameter at a time: down
        while over, up while under (never over again, so it ends); None where that gets stuck."""
        ladders, cost_of, values = self._ladders(), self.band.cost_of, _plain(values)
        at = {n: steps.index(values[n]) for n, steps in ladders.items() if values.get(n) in steps}
        while not self.band.low <= (cost := cost_of(values)) <= self.band.high:
            moves = [(n, -1) for n, i in at.items() if i > 0] if cost > self.band.high else [
                (n, 1) for n, i in at.items() if i + 1 < len(ladders[n])
                and cost_of({**values, n: ladders[n][i + 1]}) <= self.band.high]
            if not moves:
                return None
            name, step = rng.choice(moves)
            at[name] += step
            values[name] = ladders[name][at[name]]
        return values

    def _repaired(self, proposals, stop=True):
        """The first of `proposals` (nearest the band first) whose repair lands in the band on
        values not tried yet. None where every repair lands on tried values (the band's space is
        exhausted: Keras Tuner's None), or gets stuck: then, if `stop`, the search ends."""
        rng, reached = self._rng(), False
        for values in sorted(proposals, key=self._distance)[:REPAIRS]:
            fixed = self._repair(values, rng)
            reached = reached or fixed is not None
            if fixed is not None and not self._duplicate(fixed):
                self._count("repaired")
                return fixed
        if stop and not reached:
            near = min(proposals, key=self._distance)
            self.stop_reason = (
                f"the search stopped: no configuration within the cost band "
                f"[{self.band.low:g}, {self.band.high:g}] was reached ({len(proposals)} draws, "
                f"then stepping options down/up; nearest cost {self.band.cost_of(_plain(near)):g})")
        return None

    def _random_values(self):
        """Keras Tuner's random values, redrawn until in the band (then repaired); None when the
        space is exhausted or the band unreachable."""
        if self.band is None:
            return super()._random_values()
        draws = []
        for _ in range(REDRAWS):
            values = super()._random_values()
            if values is None:
                return None  # Keras Tuner's: too many draws collided with tried values
            if self._holds(values):
                if draws:
                    self._count("redrawn")
                return values
            draws.append(values)
        return self._repaired(draws)

    def _guard(self, response):
        """The last check of every proposal: out of the band (the algorithm's own, not a starting
        point or a Hyperband trial trained on) it is repaired, or the search ends."""
        if self.stop_reason is not None:
            return {"status": STOPPED, "values": None}
        values = response.get("values")
        if (self.band is None or response["status"] != RUNNING or not values
                or "tuner/trial_id" in values or self._holds(values)
                or getattr(self, "start_label", lambda v: None)(values) is not None):
            return response
        fixed = self._repaired([values])  # None: the search ends
        return {"status": STOPPED if fixed is None else RUNNING,
                "values": None if fixed is None else {**values, **fixed}}

    def populate_space(self, trial_id):
        return self._guard(super().populate_space(trial_id))


class _BandedBayesian(_Banded):
    """Bayesian optimisation whose upper confidence bound is minimised (Keras Tuner frames the
    objective as a minimisation) over untried points of the band, in place of L-BFGS over the
    whole cube: random draws, and neighbours of the best trials, scored by the fitted GP."""

    def populate_space(self, trial_id):
        completed = [t for t in self.trials.values() if t.status == "COMPLETED"]
        initial = self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)
        if self.band is None or len(completed) < initial:
            return super().populate_space(trial_id)  # Keras Tuner's (its draws: banded)
        x, y = self._vectorize_trials()
        self.gpr.fit(np.nan_to_num(x, posinf=0, neginf=0), np.nan_to_num(y, posinf=0, neginf=0))
        candidates = self._candidates(completed)
        if not candidates:  # none untried: a random draw (redrawn, repaired) or the end
            return self._guard(self._random_populate_space())
        space = self._nonfixed_space()
        vectors = np.array([[hp.value_to_prob(v[hp.name]) for hp in space] for v in candidates])
        mu, sigma = self.gpr.predict(vectors, return_std=True)
        best = int(np.argmin(np.ravel(mu) - self.beta * np.ravel(sigma)))
        return self._guard({"status": RUNNING, "values": candidates[best]})

    def _candidates(self, completed):
        """Untried values in the band: random draws, and neighbours of the best trials."""
        generator = np.random.default_rng(self._rng().getrandbits(64))
        columns = {}  # uniform over each hyperparameter's options, as Keras Tuner's draws
        for hp in self.hyperparameters.space:
            steps = ladder(hp)
            columns[hp.name] = (
                [hp.value] * CANDIDATES if isinstance(hp, hp_module.Fixed)
                else [hp.prob_to_value(p) for p in generator.random(CANDIDATES)] if steps is None
                else [steps[0][i] for i in generator.integers(len(steps[0]), size=CANDIDATES)])
        candidates = [dict(zip(columns, row)) for row in zip(*columns.values())]
        # Where few random points fit a narrow band, the best trials' swaps (one option up,
        # another down) keep their cost and still fit; and they are the GP's local search.
        best = sorted(completed, key=lambda t: t.score,
                      reverse=self.objective.direction == "max")[:LOCAL]
        candidates += [v for t in best for v in self._neighbours(_plain(t.hyperparameters.values))]
        untried = {}  # hash: values, the first of each
        for values in candidates:
            if self._holds(values):
                untried.setdefault(self._compute_values_hash(values), values)
        return [v for key, v in untried.items() if key not in self._tried_so_far]

    def _neighbours(self, values):
        """Values one option up or down in one hyperparameter, or up in one and down in another."""
        at = {n: (s, s.index(values[n])) for n, s in self._ladders().items() if values.get(n) in s}
        downs = [{n: s[i - 1]} for n, (s, i) in at.items() if i > 0]
        ups = [{n: s[i + 1]} for n, (s, i) in at.items() if i + 1 < len(s)]
        swaps = [{**u, **d} for u in ups for d in downs if u.keys() != d.keys()]
        return [{**values, **m} for m in downs + ups + swaps]


def banded(oracle_class):
    """`oracle_class` with band-aware proposals mixed in (evolution.py's oracle has them
    already)."""
    if issubclass(oracle_class, _Banded):
        return oracle_class
    mixin = (_BandedBayesian if issubclass(oracle_class, kt.oracles.BayesianOptimizationOracle)
             else _Banded)
    return type(f"Banded{oracle_class.__name__}", (mixin, oracle_class), {})
