"""compile + fit: the one training loop shared by search trials, the float model and the retrain."""
import os

import keras
import tensorflow as tf

from solvers import metrics
from solvers.search.objective import ObjectiveParams, ScoreCallback

PSNR_CAP = 100.0  # dB
# Train steps run per call of the compiled train function. With one step per call, a quick-profile
# step fed by data.train_dataset took 25.8 ms here, against 20.0 ms from prefetched in-memory
# tensors; with 10 per call it took 20.3 ms (50 measured the same as 10).
MOST_STEPS_PER_EXECUTION = 10


@keras.saving.register_keras_serializable(package="autoq")
class PSNR(keras.metrics.MeanMetricWrapper):
    """Mean per-image PSNR, by the protocol of solvers/metrics.py: Y channel of BT.601, `border`
    pixels cropped from each side (the scale), output rounded and clipped to 8 bits.

    Capped at PSNR_CAP: an exact patch (a black sky crop, say) has infinite PSNR, and one such
    patch would make the batch mean infinite.
    """

    def __init__(self, border=0, y_only=True, name="psnr", dtype=None):
        super().__init__(fn=_capped_psnr, name=name, dtype=dtype, border=border, y_only=y_only)
        self.border, self.y_only = border, y_only

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "border": self.border,
                "y_only": self.y_only}


def _capped_psnr(y_true, y_pred, border, y_only):
    return tf.minimum(metrics.psnr(y_true, y_pred, border, y_only), PSNR_CAP)


def compile_model(model, learning_rate=1e-3, border=3, xla=False):
    """Adam + L1 loss + Y-PSNR with `border` (the scale) cropped: every model this tool trains.

    xla compiles the train step with XLA. Off by default: on this project's CPU it makes float and
    quantized steps (with QReLU) about 1.3x slower, and each new trial pays its compile time
    (`make bench`); on a GPU it is worth measuring.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mae",
                  metrics=[PSNR(border=border)], jit_compile=bool(xla))
    # Adam's slots now rather than inside the first train step: a tf.function that creates
    # variables is traced twice, and tracing is most of a short trial's overhead (make bench).
    model.optimizer.build(model.trainable_variables)
    return model


def evaluate_saved(path, dataset, border):
    """{"loss", "psnr"} of a saved model on `dataset`, compiled as every model is trained (its
    optimizer state is not needed to score it)."""
    model = compile_model(keras.models.load_model(path, compile=False), border=border)
    return model.evaluate(dataset, return_dict=True, verbose=0)


def held_out_scores(run_dir, test_ds, scale):
    """summary.yaml's `test`: the run's two saved models on the held-out test images, psnr/loss
    of best_model_retrained.keras and psnr_search/loss_search of best_model.keras."""
    test = {"images": int(test_ds.cardinality())}
    for name, suffix in (("best_model_retrained.keras", ""), ("best_model.keras", "_search")):
        scores = evaluate_saved(os.path.join(run_dir, name), test_ds, scale)
        test.update({f"psnr{suffix}": float(scores["psnr"]), f"loss{suffix}": float(scores["loss"])})
    return test


def execution_steps(steps_per_epoch, most=MOST_STEPS_PER_EXECUTION):
    """The largest divisor of steps_per_epoch up to `most`: Keras rounds an epoch up to a whole
    number of executions, so anything else would train more steps than asked for."""
    return max(d for d in range(1, min(most, steps_per_epoch) + 1) if steps_per_epoch % d == 0)


def fit(model, x, validation_data, epochs, steps_per_epoch, initial_epoch=0, callbacks=(),
        objective=ObjectiveParams(), verbose=2):
    """Trains `model` on batches from `x`, validating every epoch.

    The score callback comes first so that size_bits and val_score are in the epoch logs before the
    tuner, TensorBoard, checkpoints and the progress line read them; objective=None leaves it out,
    for a model it cannot cost (solvers/gradient's learned-width base7). Batch-level callbacks see
    one call per execution (execution_steps): a NaN/inf loss stops training at the end of it.
    """
    per_execution = execution_steps(steps_per_epoch)
    if model.steps_per_execution != per_execution:
        model.steps_per_execution = per_execution
        model.make_train_function(force=True)
        model.make_test_function(force=True)
    score = [] if objective is None else [ScoreCallback(objective)]
    callbacks = [*score, keras.callbacks.TerminateOnNaN(), *callbacks]
    return model.fit(x, validation_data=validation_data, epochs=epochs,
                     steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                     callbacks=callbacks, verbose=verbose,
                     shuffle=False)  # the pipeline already draws random patches
