"""The float32 base7 a pretrained search or make sensitivity starts from: its weights, checked."""
import os

import numpy as np

from solvers.config_base import ConfigError
from solvers.networks.base7 import base7, layer_names
from solvers.networks.saved import load_keras


def load_float_weights(path, scale):
    """{conv name: [kernel, bias]} from a float32 base7 saved as .keras, checked against the
    architecture at `scale` (ConfigError naming the file otherwise)."""
    if not os.path.isfile(path):
        raise ConfigError(f"--float-model: {path}: no such file (make float builds it)")
    model = load_keras(path, "--float-model")
    reference = base7(scale=scale)
    weights = {}
    for name in layer_names()[0]:
        expected = [tuple(w.shape) for w in reference.get_layer(name).get_weights()]
        try:
            found = model.get_layer(name).get_weights()
        except ValueError:
            found = []
        if [tuple(w.shape) for w in found] != expected:
            raise ConfigError(f"--float-model: {path}: not a float32 base7 at scale {scale} "
                              f"(layer {name}: expected weights {expected})")
        weights[name] = [np.asarray(w) for w in found]
    return weights
