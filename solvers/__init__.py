"""autoq solvers: configuration, data, network, cost, objective, training and search.

Importing the package imports TensorFlow quietly and registers everything saved models need
(qkeras' layers and quantizers, base7's layers, the PSNR metric), so
`import solvers; keras.models.load_model(path)` works for every .keras file this tool writes.
"""
import contextlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def c_stderr_silenced():
    """Captures file descriptor 2 in a temporary file: TensorFlow's and xprof's C++ log lines
    (absl notices, oneDNN notices, CUDA probing on a machine without a GPU) go there instead of
    stderr, so stderr carries only what matters and a user error is exactly one line. If the
    block raises (a failed TensorFlow import, say), what was captured is written to stderr
    before the exception propagates: it usually holds the reason. (A crash that kills the
    process outright, an abort in C++, runs no Python and loses it.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _import_tensorflow_quietly():
    with c_stderr_silenced():
        import tensorflow as tf
        tf.config.list_physical_devices()


_import_tensorflow_quietly()

from solvers import train  # noqa: E402,F401  (the PSNR metric)
from solvers.networks import base7  # noqa: E402,F401  (qkeras, DepthToSpace, ClipPixels)
