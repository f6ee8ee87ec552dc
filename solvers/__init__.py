"""autoq solvers: configuration, data, network, cost, objective, training and search.

Importing the package loads no TensorFlow (parsing options and the YAML config must answer at
once); it arranges that TensorFlow, whichever module first imports it, is imported quietly: its
C++ start-up lines (absl, oneDNN, CUDA probing) go to a captured file instead of stderr, so stderr
carries only what matters and a user error is exactly one line. A module that loads saved models
imports what registers their layers (solvers.networks.base7, and solvers.train for the metric).
"""
import contextlib
import importlib.abc
import importlib.util
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


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` the usual way, the first time anything imports it, and runs its module
    code inside c_stderr_silenced, with the device listing (where CUDA is probed) in the same
    block. Removes itself after that one import."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:  # not installed: the import fails as usual
            return spec
        exec_module = spec.loader.exec_module

        def exec_quietly(module):
            with c_stderr_silenced():
                exec_module(module)
                module.config.list_physical_devices()
        spec.loader.exec_module = exec_quietly
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport)
                                               for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())
