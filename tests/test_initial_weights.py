"""A trial's initial weights depend on (seed, its hyperparameter values) only (DESIGN.md,
"Conventions"): MyHyperModel seeds Keras from them at the top of build, so the models built and
the random numbers drawn before it (the sensitivity-derived starting points build dozens of
models to cost them) change nothing."""
import keras
import keras_tuner as kt
import numpy as np
import pytest

from conftest import REPO
from solvers.config import load_search_space
from solvers.networks.base7 import MyHyperModel, base7, layer_names
from solvers.search.space import search_choices


@pytest.fixture(scope="module")
def choices():
    conv, act = layer_names()
    return search_choices(load_search_space(str(REPO / "quantization_config.yaml")), conv, act)


def _initial_weights(choices, seed, **values):
    """The weights MyHyperModel.build gives a trial with these values (the rest at defaults)."""
    hypermodel = MyHyperModel(choices, compile_fn=lambda model: None, fit_fn=None, seed=seed)
    hp = kt.HyperParameters()
    hypermodel.build(hp)  # registers every hyperparameter at its default
    hp.values.update(values)
    return hypermodel.build(hp).get_weights()


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_same_values_get_the_same_weights_whatever_ran_before(choices):
    first = _initial_weights(choices, 1, conv_3_kernel_bits=4)
    base7(scale=3)  # what computing the starting points does: build models, draw numbers
    base7(scale=3, quantizers={"conv_0": {"kernel": "quantized_bits(2,0,alpha=1.0)",
                                          "bias": None}})
    keras.random.uniform((3,))
    np.random.rand(5)
    keras.utils.set_random_seed(1234)
    assert _same(first, _initial_weights(choices, 1, conv_3_kernel_bits=4))


def test_other_values_or_another_seed_get_other_weights(choices):
    reference = _initial_weights(choices, 1, conv_3_kernel_bits=4)
    for other in (_initial_weights(choices, 1, conv_3_kernel_bits=2),
                  _initial_weights(choices, 2, conv_3_kernel_bits=4)):
        assert not np.array_equal(reference[0], other[0])  # conv_0's kernel: every layer differs


def test_the_seed_of_a_trial_is_the_same_in_every_process(choices, monkeypatch):
    """sha256 of (seed, values), not Python's hash() (salted per process): fixed here, since a
    change of it changes every run's trials."""
    seeds = []
    monkeypatch.setattr(keras.utils, "set_random_seed", seeds.append)
    _initial_weights(choices, 1, conv_3_kernel_bits=4)
    assert seeds[-1] == 2302865914
