"""A trial retrained: rebuilt at its best epoch, trained on to the whole epoch budget, resumable
after a kill (<its folder>/retrain_backup/), its best checkpoint kept (finalists.py retrains each
finalist so).

A kill can land while Keras writes a file in place (the backup, the best checkpoint): such a file
is discarded only when reading it proves it cut short. Any other error while reading or training
(out of memory, a bug, a full disk) propagates and nothing is deleted.
"""
import json
import os
import shutil
import warnings
import zipfile

import h5py
import keras

from solvers import files, train

WEIGHTS, METADATA = "latest.weights.h5", "training_metadata.json"  # BackupAndRestore's files
PREVIOUS = ".bkp"  # its copies of the epoch before (double_checkpoint=True)


def _remove(*paths):
    """Deletes files and folders that exist."""
    for path in paths:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def cut_short(path):
    """Why the file Keras wrote at `path` cannot be read to its end (a .keras zip, an HDF5
    weights file, a JSON file; the kind from the name, a .bkp copy's from the name it copies), or
    None when every byte of it reads back."""
    kind = os.path.splitext(path.removesuffix(PREVIOUS))[1]
    if kind == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()  # reads every member and checks its CRC
        except zipfile.BadZipFile as e:
            return f"{path}: {e}"
        return f"{path}: member {bad} is damaged" if bad else None
    if kind == ".h5":
        if not h5py.is_hdf5(path):
            return f"{path}: not an HDF5 file"
        try:
            with h5py.File(path, "r") as f:
                f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
        except (OSError, KeyError) as e:  # h5py's errors for a truncated file or a missing block
            if getattr(e, "errno", None) is not None:  # a real I/O error (permissions...), not damage
                raise
            return f"{path}: {e}"
        return None
    try:
        with open(path) as f:
            json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return f"{path}: {e}"
    return None


def _damage(paths):
    return next((reason for path in paths if os.path.exists(path) and (reason := cut_short(path))),
                None)


def repair_backup(backup_dir):
    """Makes Keras' backup readable: the last epoch's files if they read back, else the copies of
    the epoch before; returns a note of what was done (None: nothing to do), or "discarded" when
    neither reads back and the folder was removed (the retrain starts over)."""
    latest = [os.path.join(backup_dir, name) for name in (WEIGHTS, METADATA)]
    previous = [path + PREVIOUS for path in latest]
    damage = _damage(latest)
    if damage is None:
        return None
    if os.path.exists(previous[0]) and _damage(previous) is None:
        for old, path in zip(previous, latest):
            if os.path.exists(old):
                shutil.copyfile(old, path)
        return f"the last backup was cut short ({damage}); resuming from the epoch before"
    _remove(backup_dir)
    return f"discarded: the retrain's backup was cut short ({damage})"


def lr_schedule(epochs):
    """The retrain's learning-rate schedule: halved when val_loss has not improved for a tenth of
    the epochs (at least 2). A study trains every point it compares with it (baselines.train_point)."""
    return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                             patience=max(2, epochs // 10), min_lr=1e-5)


def retrain_model(model, train_ds, val_ds, epochs, total_epochs, steps_per_epoch, objective,
                  out_dir, tb_dir):
    """Saves `model` (a trial's best epoch, after `epochs` epochs) as out_dir/best_model.keras,
    then trains it on to `total_epochs`, keeping the checkpoint with the best val_psnr (the
    starting model included) as out_dir/best_model_retrained.keras. Returns (val metrics
    before, val metrics after)."""
    retrain_epochs = total_epochs - epochs
    os.makedirs(out_dir, exist_ok=True)
    before_path = os.path.join(out_dir, "best_model.keras")
    after_path = os.path.join(out_dir, "best_model_retrained.keras")
    # The checkpoint is written under a temporary name and renamed once the retrain is over, so
    # a kill never leaves a half-written model under a final name, nor an older run's model.
    partial_path = os.path.join(out_dir, "retrain_checkpoint.partial.keras")
    # Keras' BackupAndRestore keeps the last epoch's weights, optimizer state and epoch number
    # here while the retrain runs: a retrain that was killed resumes from there, not from epoch 0.
    backup_dir = os.path.join(out_dir, "retrain_backup")
    files.save_model(model, before_path)
    before = model.evaluate(val_ds, return_dict=True, verbose=0)
    best_psnr = before["psnr"]
    if os.path.isdir(backup_dir) and retrain_epochs > 0:
        print("\nresuming the interrupted retrain from its last finished epoch", flush=True)
        # The best checkpoint so far must not be lost: it sets the bar the retrain must beat.
        if os.path.exists(partial_path) and (damage := cut_short(partial_path)):
            print(f"discarding the retrain's best checkpoint, cut short ({damage})", flush=True)
            os.remove(partial_path)
        elif os.path.exists(partial_path):
            best_psnr = max(best_psnr, keras.models.load_model(partial_path).evaluate(
                val_ds, return_dict=True, verbose=0)["psnr"])
        note = repair_backup(backup_dir)
        if note:
            print(note + ("; retraining from the searched weights" if note.startswith("discarded")
                          else ""), flush=True)
    else:
        _remove(after_path, partial_path, backup_dir)
    if retrain_epochs > 0:
        print(f"\nretraining for {retrain_epochs} epochs (epochs {epochs + 1}-{total_epochs})",
              flush=True)
        callbacks = [
            # double_checkpoint: the epoch before's files are kept too, for a kill mid-write.
            keras.callbacks.BackupAndRestore(backup_dir, double_checkpoint=True),
            lr_schedule(retrain_epochs),
            keras.callbacks.ModelCheckpoint(partial_path, monitor="val_psnr", mode="max",
                                            save_best_only=True, initial_value_threshold=best_psnr),
            keras.callbacks.TensorBoard(log_dir=tb_dir, profile_batch=0),
        ]
        train.fit(model, train_ds, val_ds, epochs=total_epochs,
                  steps_per_epoch=steps_per_epoch, initial_epoch=epochs, callbacks=callbacks,
                  objective=objective)
    if os.path.exists(partial_path):
        os.replace(partial_path, after_path)
    else:  # the retrain never beat the searched weights
        files.copy(before_path, after_path)
    with warnings.catch_warnings():  # only the weights matter here, not the optimizer state
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        after = keras.models.load_model(after_path).evaluate(val_ds, return_dict=True, verbose=0)
    return before, after
