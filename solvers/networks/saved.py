"""A .keras file this tool wrote, loaded for inference or weights, or one error line naming it."""
import os
import zipfile

import keras

from solvers.config_base import ConfigError


def load_keras(path, option, error=ConfigError):
    """The model saved at `path` (compile=False: no optimizer state is needed), or `error` (a
    ConfigError class) naming `option` and the file: missing, not a .keras archive, or a file
    Keras cannot load, with Keras' first line as the reason."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise error(f"{option}: {path}: no such file")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        # Keras would say "File not found" for a file that exists but is not a .keras archive.
        raise error(f"{option}: {path}: not a loadable .keras model (not a zip archive)")
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001  (Keras raises many types for files that are not models)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise error(f"{option}: {path}: not a loadable .keras model ({reason})") from None
