"""The oracles with a cost band (oracles.py, through tuners.make_oracle), driven directly as Keras
Tuner's own oracle tests do: create_trial, then end_trial with a fake score; no model is built.

A toy space: 8 widths h0..h7 in 2..8 (ordered), cost the sum of the widths (16..64)."""
import random
import statistics
import warnings

import keras_tuner as kt
import pytest

from solvers.search import evolution, oracles, tuners

NAMES = [f"h{i}" for i in range(8)]
WEIGHTS = [1, -1, 2, -2, 1, -1, 2, -2]
NARROW = oracles.Band(lambda v: float(sum(v[n] for n in NAMES)), 30, 32)  # ~7% of draws
CORNER = oracles.Band(NARROW.cost_of, 17, 18)  # 44 of 5.8 million: never drawn, only repaired


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence warnings (bayesian)
        yield


def space():
    hps = kt.HyperParameters()
    for name in NAMES:
        hps.Choice(name, [2, 3, 4, 5, 6, 7, 8], ordered=True)
    return hps


def score(values):
    """A fake val_score: a simple function of the widths (its minimum in NARROW is -28)."""
    return float(sum(w * values[n] for w, n in zip(WEIGHTS, NAMES)))


def plain(values):
    return {n: values[n] for n in NAMES}


def make(algo, tmp_path, band=None, seed=1, trials=30, name="p"):
    oracle = tuners.make_oracle(algo, trials, 9, seed, band=band, hyperparameters=space())
    oracle._set_project_dir(str(tmp_path), name)
    return oracle


def run(oracle, count, before=None):
    """Creates and ends up to `count` new trials scored by `score`; returns the values proposed (a
    Hyperband trial trained on included). `before(oracle)` runs before each creation. A trial
    handed out again (Keras Tuner saves the oracle before it forgets the trial ended, so a
    reloaded oracle reruns its last trial) is ended, not counted."""
    proposed = []
    while len(proposed) < count:
        if before:
            before(oracle)
        known = set(oracle.trials)
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        values = trial.hyperparameters.values
        if trial.trial_id not in known:
            proposed.append(dict(values))
        oracle.update_trial(trial.trial_id, {"val_score": score(values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return proposed


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_every_algorithm_proposes_only_inside_the_band(algo, tmp_path):
    oracle = make(algo, tmp_path, NARROW)
    proposed = run(oracle, 30)
    assert len(proposed) >= 20, len(proposed)  # Hyperband runs its brackets' count (24)
    assert all(NARROW.holds(plain(v)) for v in proposed), [NARROW.cost_of(v) for v in proposed]
    assert oracle.proposal_counts()["redrawn"] > 0, oracle.proposal_counts()
    assert oracle.stop_reason is None


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_a_band_no_draw_reaches_is_repaired_into(algo, tmp_path):
    oracle = make(algo, tmp_path, CORNER, trials=8)
    proposed = run(oracle, 8)
    assert len(proposed) >= 4 and all(CORNER.holds(plain(v)) for v in proposed)
    assert oracle.proposal_counts()["repaired"] > 0, oracle.proposal_counts()


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_an_unreachable_band_stops_the_search_with_a_reason(algo, tmp_path):
    oracle = make(algo, tmp_path, oracles.Band(NARROW.cost_of, 70, 80))
    trial = oracle.create_trial("tuner0")
    assert trial.status == "STOPPED" and not oracle.trials
    assert "cost band [70, 80]" in oracle.stop_reason and "\n" not in oracle.stop_reason
    assert oracle.create_trial("tuner0").status == "STOPPED"  # every later ask too


def test_a_band_whose_every_configuration_was_tried_ends_like_an_exhausted_space(tmp_path):
    oracle = make("random", tmp_path, oracles.Band(NARROW.cost_of, 16, 16))  # all 2 bits only
    assert run(oracle, 5) == [{n: 2 for n in NAMES}]
    assert oracle.stop_reason is None  # Keras Tuner's end: no error


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_the_same_seed_gives_the_same_proposals(algo, tmp_path):
    first = run(make(algo, tmp_path, NARROW, seed=7, name="a"), 16)
    again = run(make(algo, tmp_path, NARROW, seed=7, name="b"), 16)
    other = run(make(algo, tmp_path, NARROW, seed=8, name="c"), 16)
    assert first == again and first != other


def test_without_a_band_keras_tuner_proposes_as_before(tmp_path):
    plain_oracle = kt.oracles.RandomSearchOracle(objective=tuners.OBJECTIVE, max_trials=10,
                                                 seed=3, hyperparameters=space())
    plain_oracle._set_project_dir(str(tmp_path), "kt")
    assert run(make("random", tmp_path, seed=3), 10) == run(plain_oracle, 10)


def random_feasible_scores(band, count=2000, seed=0):
    rng, scores = random.Random(seed), []
    while len(scores) < count:
        values = {n: rng.randint(2, 8) for n in NAMES}
        if band.holds(values):
            scores.append(score(values))
    return scores


def test_the_gaussian_process_picks_better_than_random_feasible_points(tmp_path):
    oracle = make("bayesian", tmp_path, NARROW, seed=2, trials=24)  # 8 initial points
    assert oracle.num_initial_points == 8
    proposed = run(oracle, 24)
    guided = [score(v) for v in proposed[8:]]
    assert len(guided) == 16 and all(NARROW.holds(plain(v)) for v in proposed)
    median_random = statistics.median(random_feasible_scores(NARROW))
    assert statistics.median(guided) < median_random - 5, (guided, median_random)
    assert min(guided) <= -24, guided  # near the optimum, -28 (random: 0.1% of the band)
    assert len({tuple(plain(v).values()) for v in proposed}) == 24  # never a tried point again


def differences(a, b):
    return sum(a[n] != b[n] for n in NAMES)


def test_evolution_mutates_one_or_two_widths_of_one_of_the_best_trials(tmp_path):
    oracle = make("evolution", tmp_path, seed=4)
    pools = []  # the best completed trials before each creation
    proposed = run(oracle, 30, before=lambda o: pools.append(
        [plain(t.hyperparameters.values) for t in o.parents()[:o.population]]))
    assert len(proposed) == 30 and oracle.population == 4
    for values, pool in zip(proposed[4:], pools[4:]):
        assert any(differences(values, p) in (1, 2) for p in pool), (values, pool)
    assert len({tuple(plain(v).values()) for v in proposed}) == 30
    assert min(score(v) for v in proposed[4:]) < min(score(v) for v in proposed[:4])


def test_evolution_ignores_failed_trials_as_parents(tmp_path):
    oracle = make("evolution", tmp_path, seed=5)
    run(oracle, 4)
    trial = oracle.create_trial("tuner0")
    trial.status = "FAILED"
    oracle.end_trial(trial)
    assert len(oracle.parents()) == 4 and trial.trial_id not in [t.trial_id for t in oracle.parents()]


def test_evolution_resumes_with_its_counts_and_no_duplicate(tmp_path):
    oracle = make("evolution", tmp_path, NARROW, seed=6, trials=40)
    first = run(oracle, 20)
    counts = oracle.proposal_counts()
    assert counts["redrawn"] > 0
    resumed = make("evolution", tmp_path, NARROW, seed=6, trials=40)
    resumed.reload()
    assert resumed.proposal_counts() == counts and len(resumed.trials) == 20
    assert resumed.population == 4 and resumed.tournament == 2
    later = run(resumed, 20)
    assert len(later) == 20 and all(NARROW.holds(plain(v)) for v in later)
    assert len({tuple(plain(v).values()) for v in first + later}) == 40
    # The saved seed state continues: the resumed search proposes what one run would have.
    whole = run(make("evolution", tmp_path, NARROW, seed=6, trials=40, name="whole"), 40)
    assert whole == first + later


# Budgets between two lattice points of the cost (it moves in whole units): no child lands on it.
HALF = oracles.Band(NARROW.cost_of, 0.9 * 31.5, 31.5)  # sums of widths: 31 is the nearest under
COSTS = [1, 2, 3, 5, 1, 2, 3, 5]  # a width's price: raises of different costs
PRICED = oracles.Band(lambda v: float(sum(c * v[n] for c, n in zip(COSTS, NAMES))), 90.45, 100.5)


def evolve(tmp_path, band, seed, trials=24):
    """(values proposed, the pool of best trials before each) of an evolution search in `band`."""
    oracle, pools = make("evolution", tmp_path, band, seed=seed, trials=trials), []
    proposed = run(oracle, trials, before=lambda o: pools.append(
        [plain(t.hyperparameters.values) for t in o.parents()[:o.population]]))
    assert len(proposed) == trials and all(band.holds(plain(v)) for v in proposed)
    assert len({tuple(plain(v).values()) for v in proposed}) == trials  # never a tried one again
    return [plain(v) for v in proposed], pools


def maximal(child, parent, band):
    """No width the child has not lowered from `parent` can rise one option within the budget."""
    return all(band.cost_of({**child, n: child[n] + 1}) > band.high
               for n in NAMES if parent[n] <= child[n] < 8)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_evolution_children_land_on_the_nearest_cost_under_the_budget(seed, tmp_path):
    proposed, _ = evolve(tmp_path, HALF, seed)
    first = [NARROW.cost_of(v) for v in proposed[:4]]  # random draws: anywhere in [28.35, 31.5]
    children = [NARROW.cost_of(v) for v in proposed[4:]]
    assert min(first) < 31 and children == [31] * 20, (first, children)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_evolution_children_are_filled_to_the_budget_but_for_what_the_move_lowered(seed, tmp_path):
    proposed, pools = evolve(tmp_path, PRICED, seed)
    for child, pool in zip(proposed[4:], pools[4:]):
        assert any(maximal(child, parent, PRICED) for parent in pool), (child, pool)
    gaps = [PRICED.high - PRICED.cost_of(v) for v in proposed]
    assert max(gaps[4:]) < 5 and sum(gaps[4:]) / 20 < sum(gaps[:4]) / 4, gaps


def test_fill_raises_only_unfrozen_widths_until_none_fits(tmp_path):
    oracle = make("evolution", tmp_path, PRICED)
    start = {n: 2 for n in NAMES}
    ends = set()
    for seed in range(30):
        end = oracle.fill(start, random.Random(seed), frozen={"h3"})
        assert end["h3"] == 2 and all(end[n] >= 2 for n in NAMES)
        assert PRICED.holds(end) and maximal(end, {**start, "h3": 9}, PRICED), end
        ends.add(tuple(end.values()))
    assert len(ends) > 20  # random order: children differ


def test_a_swap_raises_one_width_lowers_another_and_lands_nearest_the_budget(tmp_path):
    oracle, draw = make("evolution", tmp_path, PRICED), random.Random(0)
    parents = [v for v in ({n: draw.randint(2, 8) for n in NAMES} for _ in range(3000))
               if PRICED.holds(v)][:40]
    for seed, parent in enumerate(parents):
        child = oracle.swap(parent, random.Random(seed))
        up = [n for n in NAMES if child[n] > parent[n]]
        down = [n for n in NAMES if child[n] < parent[n]]
        assert len(up) == len(down) == 1 and PRICED.holds(child), (parent, child)
        # the partner and its step: the child costing most of those that raise `up` as far
        raised = {**parent, up[0]: child[up[0]]}
        others = [{**raised, n: w} for n in NAMES if n != up[0] for w in range(2, parent[n])]
        best = max(PRICED.cost_of(v) for v in others if PRICED.holds(v))
        assert PRICED.cost_of(child) == best, (parent, child, best)


def test_the_moves_mix_swaps_and_steps_and_swaps_jump_several_options(tmp_path):
    oracle = make("evolution", tmp_path, PRICED)
    parent = dict(zip(NAMES, [4, 5, 4, 4, 4, 5, 4, 4]))  # 92: in the band
    swaps, swap = [], oracle.swap
    oracle.swap = lambda values, rng: swaps.append(swap(values, rng)) or swaps[-1]
    for seed in range(60):
        oracle.child(parent, random.Random(seed))
    taken = [s for s in swaps if s is not None]
    assert abs(len(taken) / 60 - evolution.SWAP_SHARE) < 0.2, len(taken)  # the rest: steps
    assert any(max(s[n] - parent[n] for n in NAMES) > 1 for s in taken)  # jumps


def test_hyperband_trials_trained_on_keep_their_values(tmp_path):
    oracle = make("hyperband", tmp_path, NARROW)
    proposed = run(oracle, 30)
    trained_on = [v for v in proposed if v.get("tuner/trial_id")]
    assert trained_on and all(NARROW.holds(plain(v)) for v in trained_on)
    by_id = {t.trial_id: plain(t.hyperparameters.values) for t in oracle.trials.values()}
    assert all(plain(v) == by_id[v["tuner/trial_id"]] for v in trained_on)


def test_the_counts_survive_a_reload_for_keras_tuner_oracles(tmp_path):
    oracle = make("random", tmp_path, CORNER, trials=10)
    run(oracle, 5)
    resumed = make("random", tmp_path, CORNER, trials=10)
    resumed.reload()
    assert resumed.proposal_counts() == oracle.proposal_counts() != {"redrawn": 0, "repaired": 0}


class _Toy(kt.HyperModel):
    def build(self, hp):
        for name in NAMES:
            hp.Choice(name, [2, 3, 4, 5, 6, 7, 8], ordered=True)
        import keras
        return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])  # never trained


@pytest.mark.parametrize("algo", tuners.ALGORITHMS)
def test_make_tuner_bands_every_oracle_and_a_reloaded_tuner_keeps_the_counts(algo, tmp_path):
    tuner = tuners.make_tuner(algo, _Toy(), {}, 12, 9, 1, str(tmp_path), band=NARROW)
    proposed = run(tuner.oracle, 12)
    assert all(NARROW.holds(plain(v)) for v in proposed)
    counts = tuner.oracle.proposal_counts()
    assert counts["redrawn"] > 0
    tuner.save()  # as the search loop does after each trial: what makes a new tuner reload
    # The tuner reloads its oracle as it is built: the oracle's class must already be the banded
    # one then, or the counts (its own state) would be lost.
    again = tuners.make_tuner(algo, _Toy(), {}, 12, 9, 1, str(tmp_path), band=NARROW)
    assert again.oracle.proposal_counts() == counts and again.oracle.band is NARROW
