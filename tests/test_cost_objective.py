"""Quantized size (cost.py) and the blended score (objective.py)."""
import math

import keras
import numpy as np
import pytest
from qkeras import QConv2D

from solvers import train
from solvers.search import cost
from solvers.networks.base7 import base7, layer_names, quantizers_from_hp
from solvers.search import objective
from solvers.search.objective import ObjectiveParams, blended_score


def test_size_on_a_hand_worked_example():
    # QConv2D 3x3, 2 → 4 channels: 72 weights at 3 bits + 4 biases at 5 bits = 216 + 20 = 236
    # Conv2D 1x1, 4 → 1 channel (float): (4 weights + 1 bias) at 32 bits       = 160
    inputs = keras.Input((8, 8, 2))
    x = QConv2D(4, 3, kernel_quantizer="quantized_bits(3,0,alpha=1.0)",
                bias_quantizer="quantized_bits(5,0,alpha=1.0)", name="q")(inputs)
    x = keras.layers.Conv2D(1, 1, name="f")(x)
    model = keras.Model(inputs, x)
    sizes = {s.name: s for s in cost.layer_sizes(model)}
    assert (sizes["q"].weights, sizes["q"].biases, sizes["q"].bits) == (72, 4, 236)
    assert (sizes["f"].kernel_bits, sizes["f"].bias_bits, sizes["f"].bits) == (32, 32, 160)
    assert cost.size_bits(model) == 396
    assert cost.uniform_size_bits(model, 8) == (76 + 5) * 8


def test_uniform_quantized_base7_size_equals_uniform_reference():
    conv, act = layer_names()
    q4 = {c: {"kernel": "quantized_bits(4,0,alpha=1.0)", "bias": "quantized_bits(4,0,alpha=1.0)"}
          for c in conv}
    model = base7(quantizers=q4)
    assert cost.size_bits(model) == cost.uniform_size_bits(model, 4) == 42539 * 4
    assert cost.size_bits(base7()) == 42539 * 32


def test_a_model_far_costlier_than_the_reference_scores_worst_not_negative():
    p = ObjectiveParams(delta_n=60)  # 1 + delta = 1 - 2 halvings * 0.6 < 0
    assert blended_score(1.0, 4000, 1000, p) == math.inf


def test_score_against_its_formula():
    p = ObjectiveParams(delta_p=10, delta_n=5, rate=2, stress=1, ref_bits=8)
    # a quarter of the reference size: i = 2 halvings, delta = 2 * 10 % = 0.2
    assert blended_score(3.0, 250, 1000, p) == pytest.approx(3.0 / 1.2)
    # twice the reference size: i = -1, delta = -1 * 5 % = -0.05
    assert blended_score(3.0, 2000, 1000, p) == pytest.approx(3.0 / 0.95)
    # stress 0.5 and rate 4: i = log(1000 * 0.5 / 125) / log 4 = 1, delta = 0.1
    p2 = ObjectiveParams(delta_p=10, delta_n=5, rate=4, stress=0.5)
    assert blended_score(2.0, 125, 1000, p2) == pytest.approx(2.0 / 1.1)
    assert blended_score(2.0, 1000, 1000) == 2.0  # at the reference size, the score is the loss


@pytest.mark.parametrize("size", [100, 1000, 4000, 32000])
def test_at_equal_size_a_lower_loss_scores_better(size):
    assert blended_score(1.0, size, 8000) < blended_score(1.1, size, 8000)


@pytest.mark.parametrize("loss", [0.5, 5.0, 50.0])
def test_at_equal_loss_a_smaller_model_scores_better(loss):
    sizes = [500, 1000, 4000, 8000, 9000, 16000, 32000]  # both sides of the 8000-bit reference
    scores = [blended_score(loss, s, 8000) for s in sizes]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_fit_logs_size_and_score_every_epoch():
    model = train.compile_model(base7())
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    hr = rng.uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    val = tf.data.Dataset.from_tensors((lr, hr))
    history = train.fit(model, ds, val, epochs=2, steps_per_epoch=2, verbose=0)
    logs = history.history
    assert logs["size_bits"] == [42539 * 32.0] * 2
    # The default goal is bits: the score weighs them against the same net at 8 bits.
    bits, reference = cost.bits(model), cost.bits(cost.reference_model(model, 8))
    assert logs["bits"] == logs["cost"] == [bits] * 2 and reference < bits
    assert logs["bops"] == [cost.bops(model)] * 2 and len(logs["energy_pj"]) == 2
    for loss, score in zip(logs["val_loss"], logs["val_score"]):
        assert score == pytest.approx(loss / (1 + math.log(reference / bits, 2) * 0.03))  # delta 3
    assert len(logs["val_psnr"]) == 2 and all(0 < v < 60 for v in logs["val_psnr"])


def test_psnr_metric_is_capped_and_scores_the_8bit_y_output():
    import tensorflow as tf
    truth = tf.fill((2, 12, 12, 3), 100.0)
    metric = train.PSNR(border=3)
    metric.update_state(truth, truth + 0.4)  # rounds back to 100: exact, capped instead of inf
    assert float(metric.result()) == train.PSNR_CAP
    metric = train.PSNR(border=3)
    metric.update_state(truth, truth + 5)  # Y moves by 5 * (65.481 + 128.553 + 24.966) / 255
    d = 5 * 219.0 / 255
    assert float(metric.result()) == pytest.approx(20 * math.log10(255 / d), abs=1e-3)
    restored = train.PSNR.from_config(metric.get_config())
    assert (restored.border, restored.y_only, restored.name) == (3, True, "psnr")

CONV, ACT = layer_names()
Q4 = {**{f"{c}_kernel": 'quantized_bits(4,0,alpha="auto_po2")' for c in CONV},
      **{f"{c}_bias": "quantized_bits(4,0,alpha=1.0)" for c in CONV},
      **{f"{a}_activation": "quantized_relu(4,8)" for a in ACT}}


def test_reference_is_the_designed_network_whatever_the_widths():
    params = objective.ObjectiveParams()
    designed = objective.reference_cost(base7(quantizers=quantizers_from_hp(Q4)), params)
    assert designed == cost.bits(cost.reference_model(base7(), 8))
    wide = base7(quantizers=quantizers_from_hp(Q4), filters={c: 56 for c in CONV[:5]})
    narrow = base7(quantizers=quantizers_from_hp(Q4), filters={c: 14 for c in CONV[:5]})
    assert objective.reference_cost(wide, params) == objective.reference_cost(narrow, params) == designed
    # At equal loss the wider model (same bits) scores worse, the narrower one better.
    scores = [objective.blended_score(10.0, cost.bits(m), designed, params)
              for m in (narrow, base7(quantizers=quantizers_from_hp(Q4)), wide)]
    assert scores == sorted(scores) and len(set(scores)) == 3
