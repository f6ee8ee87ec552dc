"""The blended score the search minimizes, and the callback that writes it and every cost into each
epoch's logs.

AutoQKeras' "forgiving factor", made correct for a loss (lower is better):

    reference = the goal's cost of the network at base7's designed widths (whatever widths a filter
                search chose: AutoQKeras' reference is the original model, so wider layers cost
                more than it and narrower ones less) with every quantizer at ref_bits
    trial     = the goal's cost of this model (cost.costs: bits, bops or energy, `goal:` in the YAML)
    i         = log(reference · stress / trial) / log(rate)      # halvings of cost vs the reference
    delta     = i · delta_p / 100   if i >= 0   else   i · delta_n / 100
    val_score = val_loss / (1 + delta)

Each halving of cost (rate 2) forgives delta_p % of loss; each doubling costs delta_n %. AutoQKeras
maximized accuracy × (1 + delta); applying that product to a loss would reward a worse model.

With a budget (goal: {budget: ...}, resolved into params.budget_cost) the question is another one:
the best validation PSNR at cost <= budget. Then val_score = -val_psnr (dB), so that the tuner,
which minimizes val_score, keeps the best PSNR; the budget itself is kept by the oracles (a
proposal over it is never a trial) and by the trials' fit (run._fit_fn refuses to train one).
"""
import math

import keras

from solvers.networks.base7 import base7, base_filters, layer_filters
from solvers.objective_settings import ObjectiveParams
from solvers.search import cost


def blended_score(val_loss, trial_cost, reference_cost, params=ObjectiveParams()):
    """val_loss / (1 + delta); see the module docstring. Lower is better."""
    i = math.log(reference_cost * params.stress / trial_cost) / math.log(params.rate)
    delta = i * (params.delta_p if i >= 0 else params.delta_n) / 100.0
    # A model so much costlier than the reference that 1 + delta <= 0 (only possible with a large
    # delta_n) scores worst, not negative.
    return val_loss / (1.0 + delta) if 1.0 + delta > 0 else math.inf


_reference_costs = {}  # (architecture, goal, ref_bits) -> cost: every trial of a search shares it


def _designed(model):
    """`model`, or base7 at its designed widths when `model` is a base7 with other widths (a
    filter search's choice): the network the reference cost is taken of."""
    m = sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) - 3
    scale = cost._scale(model)  # the DepthToSpace block size
    try:
        widths = layer_filters(model, m)
    except ValueError:  # not base7: no designed widths to go back to
        return model
    return model if widths == base_filters(scale, m=m) else base7(scale=scale, m=m)


def reference_cost(model, params):
    """The goal's cost of `model`'s architecture at base7's designed widths with every quantizer
    at ref_bits (cached)."""
    model = _designed(model)
    shape = tuple((layer.name, tuple(w.shape)) for layer in model.layers for w in layer.weights
                  if "kernel" in w.path)
    key = (shape, params.goal, params.ref_bits)
    if key not in _reference_costs:
        _reference_costs[key] = cost.costs(cost.reference_model(model, params.ref_bits),
                                           params.goal)["cost"]
    return _reference_costs[key]


class ScoreCallback(keras.callbacks.Callback):
    """Adds every cost (cost.COST_COLUMNS and `cost`, the goal's) and val_score to the epoch logs,
    before the tuner, TensorBoard and the progress bar read them (it must come first in the
    callback list): Keras Tuner records them as the trial's metrics and TensorBoard plots them."""

    def __init__(self, objective=ObjectiveParams()):
        super().__init__()
        self.objective = objective  # not `params`: Keras sets that to the fit parameters

    def on_train_begin(self, logs=None):
        self.costs = {k: float(v) for k, v in cost.costs(self.model, self.objective.goal).items()}
        self.reference = reference_cost(self.model, self.objective)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or "val_loss" not in logs:
            return
        logs.update(self.costs)
        if self.objective.budget_cost is not None and "val_psnr" in logs:
            logs["val_score"] = -float(logs["val_psnr"])
        else:
            logs["val_score"] = blended_score(logs["val_loss"], self.costs["cost"],
                                              self.reference, self.objective)
