"""compile + fit: the one training loop shared by search trials, the float model and the retrain."""
import keras
import tensorflow as tf

from solvers.objective import ObjectiveParams, ScoreCallback

PSNR_CAP = 100.0  # dB


@keras.saving.register_keras_serializable(package="autoq")
def psnr(y_true, y_pred):
    """PSNR in dB of the output as it would be stored: rounded and clipped to 8-bit pixels.

    Capped at PSNR_CAP: an exact patch (a black sky crop, say) has infinite PSNR, and one such
    patch would make the batch mean infinite.
    """
    y_pred = tf.round(tf.clip_by_value(y_pred, 0.0, 255.0))
    return tf.minimum(tf.image.psnr(y_true, y_pred, max_val=255.0), PSNR_CAP)


def compile_model(model, learning_rate=1e-3):
    """Adam + L1 loss + PSNR, the setup of every model this tool trains."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mae", metrics=[psnr])
    return model


def fit(model, x, validation_data, epochs, steps_per_epoch, initial_epoch=0, callbacks=(),
        objective=ObjectiveParams(), verbose=2):
    """Trains `model` on batches from `x`, validating every epoch.

    The score callback comes first so that size_bits and val_score are in the epoch logs before the
    tuner, TensorBoard, checkpoints and the progress line read them. A NaN/inf loss stops at once.
    """
    callbacks = [ScoreCallback(objective), keras.callbacks.TerminateOnNaN(), *callbacks]
    return model.fit(x, validation_data=validation_data, epochs=epochs,
                     steps_per_epoch=steps_per_epoch, initial_epoch=initial_epoch,
                     callbacks=callbacks, verbose=verbose,
                     shuffle=False)  # the pipeline already draws random patches
