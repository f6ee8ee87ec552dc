"""autoq solvers: configuration, data, network, cost, objective, training and search.

Importing the package imports TensorFlow quietly and registers everything saved models need
(qkeras' layers and quantizers, base7's layers, the PSNR metric), so
`import solvers; keras.models.load_model(path)` works for every .keras file this tool writes.
"""
import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def c_stderr_silenced():
    """Sends file descriptor 2 to /dev/null: TensorFlow's and xprof's C++ log lines (absl notices,
    oneDNN notices, CUDA probing on a machine without a GPU) go there instead of stderr, so stderr
    carries only what matters and a user error is exactly one line. The descriptor is restored
    before any exception propagates, so a failure still shows."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_tensorflow_quietly():
    with c_stderr_silenced():
        import tensorflow as tf
        tf.config.list_physical_devices()


_import_tensorflow_quietly()

from solvers import train  # noqa: E402,F401  (the PSNR metric)
from solvers.networks import base7  # noqa: E402,F401  (qkeras, DepthToSpace, ClipPixels)
