"""One Keras Tuner per algorithm, with a one-line progress report per trial.

The tuner keeps its own state in results/<RUN>/tuner, so running the same RUN again continues the
search instead of starting over; TensorBoard gets one folder per trial (with HParams).
"""
import gc
import os
import time

import keras
import keras_tuner as kt
from keras_tuner.src import config as kt_config

from solvers.networks.base7 import quantizer_values
from solvers.search import evolution, oracles

# Keras Tuner prints a failed trial's whole traceback to stderr (its DEBUG flag is on by default,
# with no public switch). A failed trial is reported in one line and in trials.csv; the full
# traceback stays in results/<RUN>/tuner/trial_<id>/trial.json ("message").
kt_config.DEBUG = False

ALGORITHMS = ("random", "bayesian", "hyperband", "evolution")
HYPERBAND_FACTOR = 3
EVOLUTION_POPULATION = 4  # random trials completed before the evolution search mutates
OBJECTIVE = kt.Objective("val_score", direction="min")
# Trials that raised (a bug, out of memory) in a row before the search stops: Keras Tuner's
# default. A trial whose loss diverged (FailedTrialError) is a result, not a fault: never counted.
MAX_CONSECUTIVE_ERRORS = 3


class SearchStopped(Exception):
    """The search stopped because MAX_CONSECUTIVE_ERRORS trials in a row raised (the message: the
    last exception's last line and where its full traceback is), or because no proposal could be
    brought into the cost band (oracles.py); one line."""


def diverged(trial):
    """Whether a failed trial failed by a loss that became NaN/inf (MyHyperModel.fit raises
    FailedTrialError for that; any other exception is an error)."""
    lines = (trial.message or "").strip().splitlines()
    return bool(lines) and "FailedTrialError" in lines[-1].split(":", 1)[0]


def last_line(trial):
    lines = (trial.message or "").strip().splitlines()
    return lines[-1] if lines else "no reason given"


class _Recording:
    """Mixin for the oracle (the chief's in a distributed search, where workers' trials end):
    calls `on_trial_recorded(oracle)` after every finished trial (trials.csv is rewritten there),
    and stops the search after MAX_CONSECUTIVE_ERRORS trials in a row raised. Keras Tuner's own
    limit counts diverged trials too and raises inside the chief's gRPC thread, where it cannot
    stop anything; this one hands every tuner a STOPPED trial instead, so the workers and the
    chief end, and `stop_reason` says why. It is not saved: a resumed run tries again."""

    on_trial_recorded = None
    stop_reason = None
    starting_points = ()  # [(label, hyperparameter values)]: the first trials (search/starting_points.py)

    def next_starting_point(self):
        """The values of the first starting point no trial has run yet (None: all have). Starting
        points are matched against the trials on record, so a resumed or distributed search runs
        each once."""
        for label, values in self.starting_points:
            if not any(all(trial.hyperparameters.values.get(k) == v for k, v in values.items())
                       for trial in self.trials.values()):
                return dict(values)
        return None

    def _random_values(self):
        """The next starting point, else Keras Tuner's random values (in the band: oracles.py).
        Every oracle draws its first (Bayesian: initial; Hyperband: each bracket's new;
        evolution: its population's) trials here."""
        values = self.next_starting_point()
        return values if values is not None else super()._random_values()

    def start_label(self, values):
        """The label of the starting point these values are (None: a trial the search chose)."""
        return next((label for label, point in self.starting_points
                     if all(values.get(k) == v for k, v in point.items())), None)

    def _check_consecutive_failures(self):
        in_a_row, last = 0, None
        for trial in (self.trials[t] for t in self.end_order):
            if trial.status == "FAILED" and not diverged(trial):
                in_a_row, last = in_a_row + 1, trial
            else:  # a trial that trained, even to a diverged loss, shows the code runs
                in_a_row = 0
        if in_a_row >= MAX_CONSECUTIVE_ERRORS and self.stop_reason is None:
            where = os.path.join(self._project_dir, f"trial_{last.trial_id}", "trial.json")
            self.stop_reason = (f"the search stopped: {in_a_row} trials in a row raised an error; "
                                f"the last: {last_line(last)} (full traceback: {where})")

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        finally:
            if self.on_trial_recorded is not None:
                self.on_trial_recorded(self)

    def create_trial(self, tuner_id):
        if self.stop_reason is None:
            return super().create_trial(tuner_id)
        self.tuner_ids.discard(tuner_id)  # lets a distributed chief end once every worker asked
        return kt.engine.trial.Trial(self.hyperparameters.copy(), status="STOPPED")


class _Progress:
    """Mixin for a Keras Tuner: one line per trial start and end, elapsed time and an estimate of
    what remains (in place of Keras Tuner's multi-line hyperparameter table). Works on a worker of
    a distributed search too, where self.oracle is a client of the chief's oracle."""

    def on_search_begin(self):
        super().on_search_begin()
        self._started, self._done_now, self._highest = time.time(), 0, 0
        # A worker's OracleClient wraps a local copy of the oracle, which knows the settings.
        self._settings = getattr(self.oracle, "_oracle", self.oracle)

    def total_trials(self):
        oracle = self._settings
        if isinstance(oracle, kt.oracles.HyperbandOracle):  # its count follows from its brackets
            return oracle.hyperband_iterations * sum(
                oracle._get_size(b, r) for b in range(oracle._get_num_brackets())
                for r in range(b + 1))
        return oracle.max_trials

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        # Keras Tuner numbers trials 0, 1, ... in the order it creates them (a retried trial
        # keeps its number), so the id says how far the search is, on any worker.
        self._trial_number = int(trial.trial_id) + 1
        self._highest = max(self._highest, self._trial_number)
        with open(os.path.join(self.get_trial_dir(trial.trial_id), "worker.txt"), "w") as f:
            f.write(self.tuner_id)  # trials.csv's worker column
        epochs = trial.hyperparameters.values.get("tuner/epochs")
        extra = f", {epochs} epochs" if epochs else ""
        values = trial.hyperparameters.values
        choices = getattr(self.hypermodel, "choices", None)  # shared choices: per layer
        values = {**values, **(quantizer_values(choices, values) if choices else {})}
        print(f"\ntrial {self._trial_number}/{self.total_trials()} (id {trial.trial_id}{extra}): "
              f"{describe(values, self.bits_of)}", flush=True)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._done_now += 1
        elapsed = time.time() - self._started
        left = max(0, self.total_trials() - self._highest)  # not started yet
        eta = elapsed / self._done_now * left
        if trial.status in ("INVALID", "FAILED"):
            score = f"FAILED ({last_line(trial)})"
        else:
            # On a worker the chief scores the trial: ask the oracle (a gRPC call there).
            score = self.oracle.get_trial(trial.trial_id).score
            score = f"val_score {score:.4f}" if score is not None else "completed"
        print(f"trial {self._trial_number}/{self.total_trials()} done: {score} | "
              f"elapsed {hms(elapsed)}, about {hms(eta)} left for {left} trial(s)", flush=True)


def hms(seconds):
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def describe(values, bits_of):
    """One line of per-layer bits: 'conv_0 4/8 r3 | ...' (kernel/bias bits, then ReLU bits), from
    hyperparameter values: widths (conv_0_kernel_bits) or quantizer strings (conv_0_kernel, looked
    up in `bits_of`)."""
    def bits(key):
        return values[f"{key}_bits"] if f"{key}_bits" in values else bits_of[values[key]]

    def has(key):
        return key in values or f"{key}_bits" in values

    parts, layer = [], 0
    while has(f"conv_{layer}_kernel"):
        text = f"conv_{layer} {bits(f'conv_{layer}_kernel')}/{bits(f'conv_{layer}_bias')}"
        if has(f"act_{layer}_activation"):
            text += f" r{bits(f'act_{layer}_activation')}"
        parts.append(text)
        layer += 1
    return " | ".join(parts)


def make_oracle(algo, max_trials, epochs, seed, on_trial_recorded=None, starting_points=(),
                band=None, hyperparameters=None):
    """The oracle of `algo` (ALGORITHMS) minimizing val_score, with _Recording and the band's
    proposals (oracles.banded: None for none) mixed in. `hyperparameters`: the space, where no
    hypermodel's build fills it (tests). Arguments as make_tuner's."""
    common = dict(objective=OBJECTIVE, seed=seed, hyperparameters=hyperparameters,
                  # Keras Tuner's own limit is replaced by _Recording's (diverged trials free).
                  max_consecutive_failed_trials=10**9)
    if algo == "random":
        base, extra = kt.oracles.RandomSearchOracle, dict(max_trials=max_trials)
    elif algo == "bayesian":
        # Keras Tuner starts with 3 random trials per hyperparameter (60 here): a search shorter
        # than that would be random search. A third of the trials explore at random, the rest
        # follow the Gaussian process.
        # The starting points come first and count among the initial points.
        explore = max(0, max_trials - len(starting_points))
        base, extra = kt.oracles.BayesianOptimizationOracle, dict(
            max_trials=max_trials, num_initial_points=min(max_trials, len(starting_points)
                                                          + max(2, explore // 3)))
    elif algo == "hyperband":
        base, extra = kt.oracles.HyperbandOracle, dict(max_epochs=epochs, factor=HYPERBAND_FACTOR)
    elif algo == "evolution":  # its population: EVOLUTION_POPULATION, or the starting points
        base, extra = evolution.EvolutionOracle, dict(max_trials=max_trials,
                                                      population=EVOLUTION_POPULATION)
    else:
        raise ValueError(f"unknown algorithm {algo!r}")
    base = oracles.banded(base)
    oracle = type(f"{base.__name__}Recording", (_Recording, base), {})(**common, **extra)
    oracle.band, oracle.on_trial_recorded = band, on_trial_recorded
    oracle.starting_points = list(starting_points)
    oracle.verbose = 0  # our one-line progress replaces the hyperparameter table
    return oracle


def _given_oracle(self, **kwargs):
    """A tuner's __init__ taking its oracle: Keras Tuner's RandomSearch, Hyperband, ... build
    theirs, whose class would be wrong when the tuner reloads a saved search's state."""
    kt.Tuner.__init__(self, **kwargs)


def make_tuner(algo, hypermodel, bits_of, max_trials, epochs, seed, directory,
               on_trial_recorded=None, starting_points=(), band=None):
    """A Keras Tuner for `algo` (random, bayesian, hyperband, evolution) that minimizes val_score.

    Hyperband chooses its own number of trials from `epochs` (its max epochs per trial).
    `bits_of` maps quantizer strings to bits, for the progress lines. `on_trial_recorded(oracle)`
    runs after each trial ends (on the chief in a distributed search); see _Recording.
    `starting_points` ([(label, values)], search/starting_points.py) are the first trials of every
    algorithm. `band` (oracles.Band, None for none): every other proposal's cost lies in it;
    `tuner.oracle.proposal_counts()` says how many were redrawn or repaired to get there.
    """
    oracle = make_oracle(algo, max_trials, epochs, seed, on_trial_recorded, starting_points, band)
    base = kt.Hyperband if algo == "hyperband" else kt.Tuner  # Hyperband's: epochs, weights
    tuner_class = type(f"{type(oracle).__name__}Tuner", (_Progress, base),
                       {"bits_of": bits_of, "__init__": _given_oracle})
    tuner = tuner_class(oracle=oracle, hypermodel=hypermodel, directory=directory,
                        project_name="tuner", overwrite=False)
    tuner.oracle.verbose = 0  # on a worker, its client of the chief's oracle
    return tuner


def run_search(tuner, train_ds, val_ds, epochs, steps_per_epoch, tb_dir):
    """Runs (or continues) the search; Keras Tuner gives each trial its own TensorBoard folder."""
    tensorboard = keras.callbacks.TensorBoard(log_dir=tb_dir, profile_batch=0)
    # Keras Tuner clears the session and runs gc.collect() before every trial, which scanned
    # TensorFlow's and Keras' half-million long-lived objects each time (0.5 s a trial here).
    # Frozen, they are skipped; what each trial creates is still collected. Garbage first, so
    # that none of it is frozen with them.
    gc.collect()
    gc.freeze()
    tuner.search(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                 callbacks=[tensorboard])
    reason = getattr(tuner.oracle, "stop_reason", None)  # a worker's oracle client has none
    if reason:
        raise SearchStopped(reason)
