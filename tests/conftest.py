"""Shared test set-up: quiet TensorFlow, fixed seeds, and helpers to run autoq.py."""
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

# What a saved model needs registered before keras.models.load_model (README: Outputs): qkeras'
# and base7's layers, and the PSNR metric of compiled models.
import solvers.networks.base7  # noqa: E402,F401
import solvers.train  # noqa: E402,F401

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def run_autoq(*args, cwd=None, timeout=600):
    """Runs autoq.py in a fresh process; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, str(REPO / "autoq.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def write_images(folder, count=3, size=(60, 72), seed=0):
    """`count` random-but-smooth RGB PNGs in `folder` (created), as a tiny HR data set."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        small = rng.integers(0, 256, (size[0] // 4, size[1] // 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size[::-1], Image.BICUBIC).save(folder / f"img{i:02d}.png")
    return folder


def run_autoq_patched(prelude, *args, timeout=600):
    """Runs autoq.py in a fresh process after the Python code `prelude` (e.g. one replacing
    solvers.train.fit to inject a failure), so tests inject faults without a production option."""
    script = str(REPO / "autoq.py")
    code = "\n".join([f"import sys; sys.path.insert(0, {str(REPO)!r})", prelude, "import runpy",
                      f"sys.argv = [{script!r}, *{list(map(str, args))!r}]",
                      f"runpy.run_path({script!r}, run_name='__main__')"])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)


def wrap_fit(body):
    """A run_autoq_patched prelude replacing solvers.train.fit: `body` runs before each call, with
    `n` the call's number from 0 (trials first, in the order they run), `model` the model and `k`
    the keyword arguments."""
    return "\n".join([  # a closure, so that two preludes wrap each other
        "import solvers.train as _train", "def _wrap(fit, calls=[0]):",
        "    def patched(model, *a, **k):", "        n = calls[0]; calls[0] += 1",
        *("        " + line for line in body.splitlines()), "        return fit(model, *a, **k)",
        "    return patched", "_train.fit = _wrap(_train.fit)"])
