"""autoq solvers: configuration, data, network, cost, objective, training and search.

Importing the package imports TensorFlow quietly and registers everything saved models need
(qkeras' layers and quantizers, base7's layers, the PSNR metric), so
`import solvers; keras.models.load_model(path)` works for every .keras file this tool writes.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up lines (absl notice, oneDNN notice, CUDA probing
    on a machine without a GPU) sent to /dev/null, so stderr carries only what matters: a user
    error is then exactly one line. The descriptor is restored before any exception propagates,
    so a failed import still shows."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_tensorflow_quietly()

from solvers import train  # noqa: E402,F401  (the PSNR metric)
from solvers.networks import base7  # noqa: E402,F401  (qkeras, DepthToSpace, ClipPixels)
