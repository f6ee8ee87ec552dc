"""Uniform baselines: base7 with every layer at the same width (each width of the search space, and
float32), trained like one search trial, so a search's result can be judged against them.

Written to results/baselines/<PROFILE>/baselines.csv (columns: label, bits, size_bits, val_loss,
val_psnr, val_score, epochs trained, best_epoch), the metrics taken at the epoch with the best
val_score, as for trials.
"""
import os

import keras

from solvers import files, train
from solvers.search import cost
from solvers.config import ConfigError
from solvers.networks.base7 import base7, layer_names

COLUMNS = ("label", "bits", "size_bits", "val_loss", "val_psnr", "val_score", "epochs",
           "best_epoch")


def uniform_quantizers(space, bits, m=4):
    """base7's `quantizers` with every kernel, bias and activation at `bits`, picked from the
    search space (None for float32); None for a kind with no quantizer of that width."""
    by_bits = {kind: {b: q for q, b in getattr(space, kind).items()}
               for kind in ("kernel", "bias", "activation")}
    if any(bits not in options for options in by_bits.values()):
        return None
    conv_names, act_names = layer_names(m)
    quantizers = {c: {"kernel": by_bits["kernel"][bits], "bias": by_bits["bias"][bits]}
                  for c in conv_names}
    quantizers.update({a: {"activation": by_bits["activation"][bits]} for a in act_names})
    return quantizers


def widths(space):
    """The widths every kind of quantizer offers, ascending."""
    return sorted(set(space.kernel.values()) & set(space.bias.values())
                  & set(space.activation.values()))


def best_epoch_row(history):
    """The metrics of the epoch with the best (lowest) val_score, and its 1-based epoch."""
    scores = history.history["val_score"]
    best = min(range(len(scores)), key=scores.__getitem__)
    return {k: float(history.history[k][best]) for k in ("size_bits", "val_loss", "val_psnr",
                                                          "val_score")}, best + 1


def write_csv(path, rows):
    files.write_csv(path, COLUMNS, rows)


def run_baselines(space, train_ds, val_ds, epochs, steps_per_epoch, scale, learning_rate, seed,
                  out_dir, tb_dir):
    """Trains one uniform model per width and a float32 one; returns the rows written."""
    os.makedirs(out_dir, exist_ok=True)
    plan = [(f"uniform {b}-bit", b, uniform_quantizers(space, b)) for b in widths(space)]
    plan.append(("float32", cost.FLOAT_BITS, None))
    if len(plan) == 1:
        raise ConfigError("quantization_config.yaml: no width is offered by all of kernel, bias "
                          "and activation, so there is no uniform baseline to train")
    rows = []
    for label, bits, quantizers in plan:
        print(f"\nbaseline {label} ({len(rows) + 1}/{len(plan)})", flush=True)
        keras.utils.set_random_seed(seed)  # every baseline starts from the same initial state
        model = train.compile_model(base7(scale=scale, quantizers=quantizers), learning_rate,
                                    border=scale)
        tensorboard = keras.callbacks.TensorBoard(
            os.path.join(tb_dir, label.replace(" ", "_")), profile_batch=0)
        history = train.fit(model, train_ds, val_ds, epochs=epochs,
                            steps_per_epoch=steps_per_epoch, callbacks=[tensorboard],
                            objective=space.objective)
        metrics, best = best_epoch_row(history)
        rows.append({"label": label, "bits": bits, **metrics, "epochs": epochs, "best_epoch": best})
        write_csv(os.path.join(out_dir, "baselines.csv"), rows)  # a kill keeps finished ones
    return rows
