"""make bench, section 5: a tiny random search wired as run.py wires it, timed call by call.

Kept apart from solvers/bench/speed.py, which turns these per-run numbers into its statistics.
"""
import contextlib
import functools
import io
import os
import statistics
import tempfile
import time

import solvers  # noqa: F401  (first: TensorFlow, when imported, starts quietly)
import keras

from solvers import train
from solvers.search import tuners
from solvers.config import load_search_space
from solvers.search.space import search_choices
from solvers.networks.base7 import MyHyperModel, layer_names


class StepTimer(keras.callbacks.Callback):
    """Every call of the train function (it runs train.execution_steps steps) as (seconds, steps,
    first call of its fit?), and the seconds spent validating, over every fit it is given to.
    The first call of a fit also traces the new model's train function."""

    def __init__(self):
        super().__init__()
        self.calls, self.validation = [], 0.0
        self._start, self._last_batch, self._first = 0.0, -1, True

    def on_train_begin(self, logs=None):
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        self._last_batch = -1  # Keras numbers batches from 0 in every epoch

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the last step of this call: the call ran batch - last_batch steps.
        self.calls.append((time.perf_counter() - self._start, batch - self._last_batch, self._first))
        self._last_batch, self._first = batch, False

    def on_test_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.validation += time.perf_counter() - self._start


def run_tiny_search(train_ds, val_ds, trials, epochs, steps, scale, seed):
    """One random search as run.py wires it, in a temporary folder; returns (wall s, StepTimer)."""
    convs, acts = layer_names()
    space = load_search_space("quantization_config.yaml", convs + acts)
    timer = StepTimer()
    base_fit = functools.partial(train.fit, objective=space.objective)

    def fit_fn(model, *args, callbacks=(), **kwargs):
        return base_fit(model, *args, callbacks=[*callbacks, timer], **kwargs)
    hypermodel = MyHyperModel(search_choices(space, convs, acts),
                              functools.partial(train.compile_model, border=scale), fit_fn, scale)
    bits_of = {**space.kernel, **space.bias, **space.activation}
    keras.utils.set_random_seed(seed)
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        tuner = tuners.make_tuner("random", hypermodel, bits_of, trials, epochs, seed, tmp)
        start = time.perf_counter()  # the tuner is made once per run, not per trial
        tuners.run_search(tuner, train_ds, val_ds, epochs, steps, os.path.join(tmp, "tb"))
        wall = time.perf_counter() - start
    return wall, timer


def overhead_parts(wall, timer, trials, fallback_step, quick_steps):
    """One tiny search's seconds: the step time (median per step of its calls after the first of
    each fit; fallback_step if every fit made only one call), the overhead per trial (wall minus
    every step at that time), split into tracing (each fit's first call beyond its steps),
    validation and the rest; and a quick-profile trial's training (quick_steps x the step time)."""
    later = [s / n for s, n, first in timer.calls if not first]
    step = statistics.median(later) if later else fallback_step
    overhead = wall - sum(n for _, n, _ in timer.calls) * step
    tracing = sum(s - n * step for s, n, first in timer.calls if first)
    return {"step": step, "overhead_per_trial": overhead / trials,
            "overhead_tracing_per_trial": tracing / trials,
            "overhead_validation_per_trial": timer.validation / trials,
            "overhead_other_per_trial": (overhead - tracing - timer.validation) / trials,
            "quick_trial_training": quick_steps * step}
