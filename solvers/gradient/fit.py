"""Learning base7's bit widths under a cost budget: train.fit on the learned base7 (model.py) with

    training loss = L1 + β · cost(widths) / budget

(cost.GradientCost: the rounded model's cost, with a gradient at the real widths), β steered by
controller.BetaPID from the rounded cost, then integer widths that fit the budget (final_bits).

Choices, measured on the quick profile (32-pixel patches, batch 16, 100 steps an epoch, the
default photos, ×3, BOPs, budget uniform 3-bit, band 0.9, 4 epochs; "float" = from a quick float
model, "random" = from Keras' initializers):
  initial widths: every kernel and ReLU at the middle (b - 0.5) of the smallest uniform width b
      whose cost exceeds the budget (initial_widths): the cost starts one width step over the
      budget (uniform 4: 1.39 x uniform 3's BOPs) and each width is half a step from either
      integer. From the space's 8 bits, 4.5 bits at 0.02 a step would take 2 of 4 epochs.
  β·cost/budget: β is dimensionless (the same for bits, BOPs and pJ); at the budget the penalty
      is β, on the L1 loss's scale (8.5 on [0, 255] pixels).
  init β (calibrated_beta): the median over widths of |∂L1/∂f| / ∂(cost/budget)/∂f at the
      start, the β at which half the widths are pulled down. It was 6.0 from float, 0.56 from
      random (bits: 16 and 2.7), and β settled at 2.2-3.0 (float) and 1.4 (random): over a
      30x spread of starts and goals, one constant would leave most of the way to the integral.
      (From float at BOPs a fixed 2.0 did as well: β rose to 6.3 itself, under budget after 8
      updates, against 9 calibrated, the same 30.9 dB at epoch 4.)
  gains p 1, i 1 (GAINS): with i 0.3 the cost went under budget after 9 updates but stayed at
      0.85-0.87 of it (below the band) for 3 epochs while β decayed; i 1 was in the band by
      epoch 3 (uniform 4's budget: 0.96 of it, against 0.94 with i 0.3); i 3 overshot (β 6 → 19
      → 2.6 within 10 updates, the cost down to 0.75). p 1 is HGQ2's.
  widths learn at WIDTH_LEARNING_RATE (WidthAdam), not the weights' 1e-3: Adam moves a variable
      by about its rate per step whatever the gradient's scale, so 1e-3 moves a width 0.4 bits in
      a 4-epoch run. 0.02 (one bit in 50 steps, 5 β updates): first under budget after 9
      updates; 0.01 after 16; 0.05 after 4, but the cost then swung 0.75-0.94 within an epoch.
  β is updated after every execution (train.fit's steps_per_execution steps, 10 an epoch here),
      not every epoch: a short run has 4-16 epochs, too few updates for the integral to find β.
      Not every step either: the rounded cost only changes when a width crosses an integer.
"""
import keras
import numpy as np
import tensorflow as tf

from solvers import train
from solvers.gradient.controller import BetaPID
from solvers.gradient.model import learned_widths, rounded_bits, width_ranges

GAINS = {"p": 1.0, "i": 1.0, "d": 0.0}  # BetaPID's, on log10(cost / budget) (module docstring)
BETA_RANGE = (1e-4, 1e4)  # β's bounds: far outside the 0.5-20 measured, against a runaway
INIT_BETA = 1.0           # when calibration has nothing to go by (no width's cost grows)
CALIBRATION_BATCHES = 4   # batches calibrated_beta averages (one batch's ∂L1/∂f: ±5-30 %)
WIDTH_LEARNING_RATE = 0.02


def _keys(gradient_cost):
    return ([(c, "kernel") for c in gradient_cost.convs]
            + [(a, "activation") for a in gradient_cost.acts])


def rounded_cost(gradient_cost, bits):
    """The goal's cost (float) of integer widths {(layer, kind): bits}, biases at their width."""
    layer_bits = {**bits, **{(c, "bias"): b for c, b in gradient_cost.bias_bits.items()}}
    return gradient_cost.cost_model.cost(layer_bits, gradient_cost.filters)


def initial_widths(gradient_cost, budget, lo=None, hi=None):
    """{(layer, kind): b - 0.5} for every kernel and ReLU, b the smallest uniform width in
    [lo, hi] (default the cost's range) whose cost exceeds the budget (hi if none does).
    ValueError when every width at lo already costs more than the budget."""
    lo = gradient_cost.lo if lo is None else lo
    hi = gradient_cost.hi if hi is None else hi
    keys = _keys(gradient_cost)
    over = [b for b in range(lo, hi + 1)
            if rounded_cost(gradient_cost, dict.fromkeys(keys, b)) > budget]
    if over and over[0] == lo:
        raise ValueError(f"budget {budget:.6g}: every width at {lo} bits costs more")
    start = over[0] if over else hi
    return dict.fromkeys(keys, start - 0.5)


class WidthAdam(keras.optimizers.Adam):
    """Adam whose width variables step at width_learning_rate, every other at learning_rate."""

    def __init__(self, width_variables, width_learning_rate, **kwargs):
        super().__init__(**kwargs)
        self.width_learning_rate = float(width_learning_rate)
        self._width_keys = {self._var_key(v) for v in width_variables}

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._width_keys:
            learning_rate = self.width_learning_rate
        super().update_step(gradient, variable, learning_rate)


class CostedModel(keras.Model):
    """A learned base7 in training: its loss plus β·cost/budget in training steps (validation's
    loss stays the L1 loss, comparable across epochs while β moves); β is a non-trainable
    variable a callback assigns; compiled (train.compile_model), its Adam becomes a WidthAdam."""

    def __init__(self, network, gradient_cost, budget, init_beta, width_learning_rate):
        super().__init__(name=f"costed_{network.name}")
        self.network = network
        self.gradient_cost, self.budget = gradient_cost, float(budget)
        self.width_learning_rate = float(width_learning_rate)
        self.beta = keras.Variable(float(init_beta), trainable=False, dtype="float32", name="beta")

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def compile(self, optimizer="adam", **kwargs):
        """compile with `optimizer`'s Adam settings (train.compile_model's), the widths at
        width_learning_rate: the loss, metrics and weights' optimizer stay compile_model's."""
        adam = keras.optimizers.get(optimizer)
        if type(adam) is not keras.optimizers.Adam:
            raise TypeError(f"CostedModel: an Adam optimizer to split, got {type(adam).__name__}")
        widths = list(learned_widths(self.network).values())
        super().compile(optimizer=WidthAdam(widths, self.width_learning_rate, **adam.get_config()),
                        **kwargs)

    def penalty(self):
        """β·cost/budget (float32): the cost's value at the integer widths, its gradient at the
        real ones."""
        fraction = self.gradient_cost(learned_widths(self.network)) / self.budget
        return self.beta * tf.cast(fraction, tf.float32)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return loss + self.penalty() if training else loss


def calibrated_beta(costed, batches):
    """The β at which the cost's pull on a width equals the loss's, for the median width:
    median of |∂loss/∂f| / ∂(cost/budget)/∂f over the widths whose cost grows with them, the
    gradients averaged over `batches` ((x, y) pairs) of the compiled loss without the penalty;
    INIT_BETA when no width's cost grows (a flat energy table)."""
    widths = list(learned_widths(costed.network).values())
    loss_grads = []
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = costed.compute_loss(x, y, costed(x, training=True), training=False)
        loss_grads.append([float(g) for g in tape.gradient(loss, widths)])
    with tf.GradientTape() as tape:
        fraction = costed.gradient_cost(learned_widths(costed.network)) / costed.budget
    cost_grads = np.array([float(g) for g in tape.gradient(fraction, widths)])
    pulls = np.abs(np.mean(loss_grads, axis=0))
    grows = cost_grads > 0
    if not grows.any():
        return INIT_BETA
    beta = float(np.median(pulls[grows] / cost_grads[grows]))
    return min(max(beta, BETA_RANGE[0]), BETA_RANGE[1])


def width_row(network):
    """{<layer>_<kind>_width: real width, <layer>_<kind>_bits: integer width} of every width."""
    row = {}
    bits = rounded_bits(network)
    for (layer, kind), f in learned_widths(network).items():
        row[f"{layer}_{kind}_width"] = float(np.asarray(f))
        row[f"{layer}_{kind}_bits"] = bits[layer, kind]
    return row


class WidthControl(keras.callbacks.Callback):
    """Steers β from the rounded cost after every execution, and records one trajectory row per
    epoch (train_widths' rows); beta, cost_fraction and mean_width go into the epoch logs too, for
    TensorBoard and the progress line (so it must come before TensorBoard in the list)."""

    def __init__(self, costed, controller):
        super().__init__()
        self.costed, self.controller = costed, controller
        self.rows = []

    def cost(self):
        return rounded_cost(self.costed.gradient_cost, rounded_bits(self.costed.network))

    def on_train_batch_end(self, batch, logs=None):
        # train.fit calls this once per execution (steps_per_execution steps, 10 at 100 steps an
        # epoch): β follows the integer widths within an epoch, and each update costs one cost
        # evaluation in Python, not one per step.
        self.costed.beta.assign(self.controller.update(self.cost()))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        cost = self.cost()
        widths = width_row(self.costed.network)
        reals = [v for k, v in widths.items() if k.endswith("_width")]
        scalars = {"beta": float(self.costed.beta.numpy()),
                   "cost_fraction": cost / self.costed.budget,
                   "mean_width": float(np.mean(reals))}
        logs.update(scalars)
        self.rows.append({"epoch": epoch + 1, "loss": logs.get("loss"),
                          "val_loss": logs.get("val_loss"), "val_psnr": logs.get("val_psnr"),
                          "beta": scalars["beta"], "cost": cost,
                          "cost_fraction": scalars["cost_fraction"], **widths})


def train_widths(model, gradient_cost, budget, band, train_ds, val_ds, epochs, steps_per_epoch,
                 learning_rate=1e-3, border=3, tb_dir=None, width_learning_rate=None,
                 init_beta=None, verbose=2):
    """Trains a learned base7 (its weights and widths, in place) for `epochs` under the budget;
    returns the trajectory, one row per epoch: epoch (from 1), loss (L1 + β·cost/budget, the
    trained objective), val_loss (L1), val_psnr, beta, cost (the rounded model's, the goal's
    unit), cost_fraction (cost / budget), and <layer>_<kind>_width / _bits for every width.

    gradient_cost: cost.GradientCost over the model's width range; band: the goal's band (the
    controller's dead zone [band·budget, budget]); width_learning_rate: None for
    WIDTH_LEARNING_RATE; tb_dir: TensorBoard logs (the usual ones plus beta, cost_fraction,
    mean_width), or None."""
    ranges = set(width_ranges(model).values())
    if ranges != {(gradient_cost.lo, gradient_cost.hi)}:
        raise ValueError(f"width ranges {sorted(ranges)} differ from the cost's "
                         f"[{gradient_cost.lo}, {gradient_cost.hi}]")
    costed = CostedModel(model, gradient_cost, budget, init_beta or INIT_BETA,
                         width_learning_rate or WIDTH_LEARNING_RATE)
    train.compile_model(costed, learning_rate, border=border)
    if init_beta is None:
        init_beta = calibrated_beta(costed, train_ds.take(CALIBRATION_BATCHES))
        costed.beta.assign(init_beta)
    controller = BetaPID(budget, init_beta, band=band, min_beta=BETA_RANGE[0],
                         max_beta=BETA_RANGE[1], **GAINS)
    control = WidthControl(costed, controller)
    callbacks = [control]
    if tb_dir:
        callbacks.append(keras.callbacks.TensorBoard(tb_dir, profile_batch=0))
    train.fit(costed, train_ds, val_ds, epochs, steps_per_epoch, callbacks=callbacks,
              objective=None, verbose=verbose)
    return control.rows


def final_bits(model, gradient_cost, budget, repair=True):
    """(bits, repaired_steps): {(layer, kind): int} of every kernel and ReLU, their cost within
    the budget. The learned widths' integers where they fit; otherwise (repair) one width at a
    time steps down by one bit, the one that frees the most cost per unit of distance from its
    learned real width to the new integer (f - (b - 1)): the width the training was closest to
    giving up, weighed by what it saves. ValueError when over budget and repair is false, or when
    even every width at lo costs more."""
    lo, hi = gradient_cost.lo, gradient_cost.hi
    reals = {k: min(max(float(np.asarray(f)), lo), hi) for k, f in learned_widths(model).items()}
    bits = rounded_bits(model)
    cost, steps = rounded_cost(gradient_cost, bits), 0
    if cost > budget and not repair:
        raise ValueError(f"rounded widths cost {cost:.6g} > budget {budget:.6g}")
    while cost > budget:
        best = None
        for key, b in bits.items():
            if b <= lo:
                continue
            lower = {**bits, key: b - 1}
            lower_cost = rounded_cost(gradient_cost, lower)
            score = (cost - lower_cost) / max(reals[key] - (b - 1), 1e-6)
            if best is None or score > best[0]:
                best = (score, lower, lower_cost)
        if best is None:
            raise ValueError(f"budget {budget:.6g}: every width at {lo} bits costs {cost:.6g}")
        _, bits, cost = best
        steps += 1
    return bits, steps
