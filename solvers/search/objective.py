"""The blended score the search minimizes, and the callback that writes it into every epoch's logs.

AutoQKeras' "forgiving factor", made correct for a loss (lower is better):

    reference = size of the network with every weight and bias at ref_bits (8)
    trial     = quantized size of this model (cost.size_bits)
    i         = log(reference · stress / trial) / log(rate)      # halvings of size vs the reference
    delta     = i · delta_p / 100   if i >= 0   else   i · delta_n / 100
    val_score = val_loss / (1 + delta)

Each halving of size (rate 2) forgives delta_p % of loss; each doubling costs delta_n %. AutoQKeras
maximized accuracy × (1 + delta); applying that product to a loss would reward a worse model.
"""
import math
from dataclasses import dataclass

import keras

from solvers.search import cost


@dataclass(frozen=True)
class ObjectiveParams:
    delta_p: float = 8.0
    delta_n: float = 8.0
    rate: float = 2.0
    stress: float = 1.0
    ref_bits: int = 8


def blended_score(val_loss, size_bits, reference_bits, params=ObjectiveParams()):
    """val_loss / (1 + delta); see the module docstring. Lower is better."""
    i = math.log(reference_bits * params.stress / size_bits) / math.log(params.rate)
    delta = i * (params.delta_p if i >= 0 else params.delta_n) / 100.0
    return val_loss / (1.0 + delta)


class ScoreCallback(keras.callbacks.Callback):
    """Adds size_bits and val_score to the epoch logs, before the tuner, TensorBoard and the
    progress bar read them (it must come first in the callback list)."""

    def __init__(self, objective=ObjectiveParams()):
        super().__init__()
        self.objective = objective  # not `params`: Keras sets that to the fit parameters

    def on_train_begin(self, logs=None):
        self.size_bits = cost.size_bits(self.model)
        self.reference_bits = cost.uniform_size_bits(self.model, self.objective.ref_bits)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "val_loss" not in logs:
            return
        logs["size_bits"] = float(self.size_bits)
        logs["val_score"] = blended_score(logs["val_loss"], self.size_bits, self.reference_bits,
                                          self.objective)
