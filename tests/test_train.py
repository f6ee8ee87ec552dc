"""solvers.train: steps per execution, and that fit trains exactly the steps asked for."""
import numpy as np
import pytest
import tensorflow as tf

from solvers import train
from solvers.networks.base7 import base7


@pytest.mark.parametrize("steps, expected", [(1, 1), (7, 7), (20, 10), (100, 10), (1000, 10),
                                             (33, 3), (13, 1), (24, 8)])
def test_execution_steps_is_the_largest_divisor_up_to_10(steps, expected):
    assert train.execution_steps(steps) == expected


@pytest.mark.parametrize("steps_per_epoch", [7, 20, 23])
def test_fit_trains_exactly_steps_per_epoch_steps_and_validates_every_epoch(steps_per_epoch):
    x = tf.random.uniform((2, 8, 8, 3), 0, 255, seed=1)
    y = tf.random.uniform((2, 24, 24, 3), 0, 255, seed=2)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model = train.compile_model(base7(quantizers=None))
    assert model.optimizer.built  # Adam's slots exist before the first step (one trace, not two)
    history = train.fit(model, data, tf.data.Dataset.from_tensors((x, y)), epochs=2,
                        steps_per_epoch=steps_per_epoch, verbose=0)
    assert int(model.optimizer.iterations) == 2 * steps_per_epoch
    assert model.steps_per_execution == train.execution_steps(steps_per_epoch)
    assert len(history.history["val_psnr"]) == 2 and np.all(np.isfinite(history.history["loss"]))
