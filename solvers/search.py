"""The search: one Keras Tuner per algorithm, trial progress, then the winner retrained.

The tuner keeps its own state in results/<RUN>/tuner, so running the same RUN again continues the
search instead of starting over; TensorBoard gets one folder per trial (with HParams) and one for
the retrain.
"""
import gc
import os
import shutil
import time
import warnings

import keras
import keras_tuner as kt

from solvers import train

from keras_tuner.src import config as kt_config

# Keras Tuner prints a failed trial's whole traceback to stderr (its DEBUG flag is on by default,
# with no public switch). A failed trial is expected and reported in one line and trials.csv; the
# full traceback stays in results/<RUN>/tuner/trial_<id>/trial.json ("message").
kt_config.DEBUG = False

ALGORITHMS = ("random", "bayesian", "hyperband")
HYPERBAND_FACTOR = 3
OBJECTIVE = kt.Objective("val_score", direction="min")


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
        print(f"\ntrial {self._trial_number}/{self.total_trials()} (id {trial.trial_id}{extra}): "
              f"{describe(trial.hyperparameters.values, self.bits_of)}", flush=True)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self._done_now += 1
        elapsed = time.time() - self._started
        left = max(0, self.total_trials() - self._highest)  # not started yet
        eta = elapsed / self._done_now * left
        if trial.status in ("INVALID", "FAILED"):
            lines = (trial.message or "").strip().splitlines()
            score = f"FAILED ({lines[-1] if lines else 'no reason given'})"
        else:
            # On a worker the chief scores the trial: ask the oracle (a gRPC call there).
            score = self.oracle.get_trial(trial.trial_id).score
            score = f"val_score {score:.4f}" if score is not None else "completed"
        print(f"trial {self._trial_number}/{self.total_trials()} done: {score} | "
              f"elapsed {_hms(elapsed)}, about {_hms(eta)} left for {left} trial(s)", flush=True)


def _hms(seconds):
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def describe(values, bits_of):
    """One line of per-layer bits: 'conv_0 4/8 r3 | ...' (kernel/bias bits, then ReLU bits)."""
    parts, layer = [], 0
    while f"conv_{layer}_kernel" in values:
        text = (f"conv_{layer} {bits_of[values[f'conv_{layer}_kernel']]}/"
                f"{bits_of[values[f'conv_{layer}_bias']]}")
        if f"act_{layer}_activation" in values:
            text += f" r{bits_of[values[f'act_{layer}_activation']]}"
        parts.append(text)
        layer += 1
    return " | ".join(parts)


def make_tuner(algo, hypermodel, bits_of, max_trials, epochs, seed, directory):
    """A Keras Tuner for `algo` (random, bayesian, hyperband) that minimizes val_score.

    Hyperband chooses its own number of trials from `epochs` (its max epochs per trial).
    `bits_of` maps quantizer strings to bits, for the progress lines.
    """
    common = dict(hypermodel=hypermodel, objective=OBJECTIVE, seed=seed, directory=directory,
                  project_name="tuner", overwrite=False,
                  # Failed trials never stop the search; a run where all fail ends with one line.
                  max_consecutive_failed_trials=10**9)
    if algo == "random":
        base, extra = kt.RandomSearch, dict(max_trials=max_trials)
    elif algo == "bayesian":
        # Keras Tuner starts with 3 random trials per hyperparameter (60 here): a search shorter
        # than that would be random search. A third of the trials explore at random, the rest
        # follow the Gaussian process.
        base, extra = kt.BayesianOptimization, dict(max_trials=max_trials,
                                                    num_initial_points=max(2, max_trials // 3))
    elif algo == "hyperband":
        base, extra = kt.Hyperband, dict(max_epochs=epochs, factor=HYPERBAND_FACTOR)
    else:
        raise ValueError(f"unknown algorithm {algo!r}")
    tuner_class = type(f"{base.__name__}WithProgress", (_Progress, base), {"bits_of": bits_of})
    tuner = tuner_class(**common, **extra)
    tuner.oracle.verbose = 0  # our one-line progress replaces the hyperparameter table
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


def _remove(*paths):
    """Deletes files and folders that exist."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def save_atomic(model, path):
    """model.save through a temporary file and a rename (a kill never leaves half a model)."""
    tmp = path[: -len(".keras")] + ".tmp.keras"  # Keras wants the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)


def retrain_best(tuner, train_ds, val_ds, epochs, retrain_epochs, steps_per_epoch, objective,
                 run_dir, tb_dir):
    """Rebuilds the best trial with its best-epoch weights, saves it, then trains it on to
    epochs + retrain_epochs, keeping the checkpoint with the best val_psnr (the starting model
    included). Returns (hyperparameter values, val metrics before, val metrics after)."""
    best_hp = tuner.get_best_hyperparameters(1)[0]
    with warnings.catch_warnings():  # the checkpoint holds no optimizer state; Keras warns of it
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model = tuner.get_best_models(1)[0]
    before_path = os.path.join(run_dir, "best_model.keras")
    after_path = os.path.join(run_dir, "best_model_retrained.keras")
    # The checkpoint is written under a temporary name and renamed once the retrain is over, so
    # a kill never leaves a half-written model under a final name, nor an older run's model.
    partial_path = os.path.join(run_dir, "retrain_checkpoint.partial.keras")
    # Keras' BackupAndRestore keeps the last epoch's weights, optimizer state and epoch number
    # here while the retrain runs: a retrain that was killed resumes from there, not from epoch 0.
    backup_dir = os.path.join(run_dir, "retrain_backup")
    save_atomic(model, before_path)
    before = model.evaluate(val_ds, return_dict=True, verbose=0)
    best_psnr = before["psnr"]
    resuming = os.path.isdir(backup_dir) and retrain_epochs > 0
    if resuming:
        print("\nresuming the interrupted retrain from its last finished epoch", flush=True)
        if os.path.exists(partial_path):  # the best checkpoint so far must not be lost
            try:
                best_psnr = max(best_psnr, keras.models.load_model(partial_path).evaluate(
                    val_ds, return_dict=True, verbose=0)["psnr"])
            except Exception:  # killed while Keras wrote it: an unreadable file, not a result
                os.remove(partial_path)
    else:
        _remove(after_path, partial_path, backup_dir)
    if retrain_epochs > 0:
        print(f"\nretraining the best trial for {retrain_epochs} epochs "
              f"(epochs {epochs + 1}-{epochs + retrain_epochs})", flush=True)

        def retrain(model, best_psnr):
            callbacks = [
                keras.callbacks.BackupAndRestore(backup_dir),
                keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                  patience=max(2, retrain_epochs // 10),
                                                  min_lr=1e-5),
                keras.callbacks.ModelCheckpoint(partial_path, monitor="val_psnr", mode="max",
                                                save_best_only=True,
                                                initial_value_threshold=best_psnr),
                keras.callbacks.TensorBoard(log_dir=os.path.join(tb_dir, "retrain"),
                                            profile_batch=0),
            ]
            train.fit(model, train_ds, val_ds, epochs=epochs + retrain_epochs,
                      steps_per_epoch=steps_per_epoch, initial_epoch=epochs, callbacks=callbacks,
                      objective=objective)

        try:
            retrain(model, best_psnr)
        except OSError as e:
            # Keras writes its backup in place: a kill in the middle of that write leaves a file
            # it cannot read. The retrain then starts again from the searched weights.
            if not resuming:
                raise
            print(f"the retrain's backup in {backup_dir} is unreadable ({e}); retraining from the "
                  "searched weights", flush=True)
            _remove(partial_path, backup_dir)
            model = keras.models.load_model(before_path)
            retrain(model, before["psnr"])
    if os.path.exists(partial_path):
        os.replace(partial_path, after_path)
    else:  # the retrain never beat the searched weights
        shutil.copyfile(before_path, after_path + ".tmp")
        os.replace(after_path + ".tmp", after_path)
    with warnings.catch_warnings():  # only the weights matter here, not the optimizer state
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        after = keras.models.load_model(after_path).evaluate(val_ds, return_dict=True, verbose=0)
    values = {k: v for k, v in best_hp.values.items() if not k.startswith("tuner/")}
    return values, before, after
