"""The winner retrained: the best trial rebuilt at its best epoch, trained on to the whole epoch
budget, resumable after a kill (results/<RUN>/retrain_backup/), its best checkpoint kept."""
import os
import shutil
import warnings

import keras

from solvers import files, train


def _remove(*paths):
    """Deletes files and folders that exist."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


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
    files.save_model(model, before_path)
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
        files.copy(before_path, after_path)
    with warnings.catch_warnings():  # only the weights matter here, not the optimizer state
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        after = keras.models.load_model(after_path).evaluate(val_ds, return_dict=True, verbose=0)
    values = {k: v for k, v in best_hp.values.items() if not k.startswith("tuner/")}
    return values, before, after
