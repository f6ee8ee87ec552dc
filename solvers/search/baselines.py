"""Uniform baselines: base7 with every layer at the same width (each width of the search space, and
float32), trained like one search trial, so a search's result can be judged against them.

Written to results/baselines/<NAME>/ (NAME: --run, else default_name): baselines.csv (columns:
label, width, size_bits, bits, bops, energy_pj, cost, val_loss, val_psnr, val_score, epochs
trained, best_epoch), the metrics
taken at the epoch with the best val_score, as for trials; and baselines.yaml, the settings that
define the set (set_settings: data, scale, seed, quantizer space, training budget, learning rate).
A run's report compares with a set only when these equal the run's own (run_settings_key), so a
search on other data, at another scale or seed, in another search space or with another budget per
trial is never judged against it.
"""
import dataclasses
import os
import re

import keras

from solvers import files, run_folder, train
from solvers.search import cost
from solvers.config import ConfigError
from solvers.networks.base7 import base7, layer_names

# width: every layer's bits (32: float32); the costs are cost.COST_COLUMNS and the goal's `cost`.
METRICS = (*cost.COST_COLUMNS, "cost", "val_loss", "val_psnr", "val_score")
COLUMNS = ("label", "width", *METRICS, "epochs", "best_epoch")
DATA_KEYS = ("data", "lr_data", "div2k_root", "train_images", "val_images")  # run.yaml's `data`
# What must be equal for a run to be compared with a set (and for a set to be rebuilt in its
# folder), in the order a difference is named. The budget is the one of a search trial.
MATCH_KEYS = ("data", "scale", "seed", "quantizers", "budget", "learning_rate", "goal")
BUDGET_KEYS = ("epochs", "steps_per_epoch", "batch_size", "patch_size")
DEFAULTS = {"seed": 1, "scale": 3, "learning_rate": 1e-3,  # autoq.py's defaults
            "config": "quantization_config.yaml"}


def quantizer_maps(space):
    """The search space's quantizers, {kind: {quantizer string: bits}}, as run.yaml and
    baselines.yaml record them (the limit only narrows a search, not the baselines)."""
    return {kind: dict(getattr(space, kind)) for kind in ("kernel", "bias", "activation")}


def set_settings(data, scale, seed, learning_rate, epochs, profile, space):
    """What defines a baseline set (MATCH_KEYS), for baselines.yaml: `data` holds DATA_KEYS
    (load_pairs' options, as in run.yaml), `epochs` those each baseline is trained for, the rest of
    the budget comes from the profile."""
    return {"data": {k: data.get(k) for k in DATA_KEYS}, "scale": scale, "seed": seed,
            "quantizers": quantizer_maps(space),
            "budget": {"epochs": epochs, **{k: getattr(profile, k) for k in BUDGET_KEYS[1:]}},
            "learning_rate": learning_rate,
            # The goal's parameters (reference input size, input bits, energy model) set the costs.
            "goal": dataclasses.asdict(space.objective.goal)}


def run_settings_key(run):
    """The same settings for a search, from its run.yaml (a dict): its trials' budget (epochs per
    trial, steps, batch, patch) is the one its baselines must have been trained with. quantizers
    is None for runs from before run.yaml recorded them: such a run matches no set."""
    budget = run.get("settings") or {}
    return {"data": run.get("data"), "scale": run.get("scale"), "seed": run.get("seed"),
            "quantizers": run.get("quantizers"),
            "budget": {k: budget.get(k) for k in BUDGET_KEYS},
            "learning_rate": run.get("learning_rate"), "goal": (run.get("objective") or {}).get("goal")}


def differences(saved, wanted, keys=MATCH_KEYS):
    """run_folder.differences over MATCH_KEYS: [] when a set matches."""
    return run_folder.differences(saved, wanted, keys)


def default_name(profile_name, profile, settings, config=DEFAULTS["config"]):
    """The folder under results/baselines/ when --run names none. The default set keeps the
    profile's name (results/baselines/quick); otherwise each setting that differs from its default
    is added, in this order: the data (its folder's name or div2k, then lr-<LR folder's name>,
    train<n>, val<n>), seed<n> (default 1), x<scale> (3), the config file's stem (default
    quantization_config.yaml), e<epochs>, steps<n>, batch<n>, patch<n> (the profile's), lr<rate>
    (0.001); e.g. quick_div2k_seed2_x4 or paper_photos_e8. So sets with different settings get
    different folders, except two data folders with one name or an edited config file: their
    baselines.yaml then refuses the second set (make baselines RUN=name gives it a folder)."""
    def tag(path):
        return re.sub(r"[^A-Za-z0-9.+-]+", "-", os.path.basename(os.path.normpath(str(path))))
    data, budget = settings["data"], settings["budget"]
    parts = [profile_name]
    if data.get("data"):
        parts.append(tag(data["data"]))
    if data.get("lr_data"):
        parts.append("lr-" + tag(data["lr_data"]))
    parts += [f"{word}{data[k]}" for word, k in (("train", "train_images"), ("val", "val_images"))
              if data.get(k)]
    parts += [f"{word}{settings[k]}" for word, k in (("seed", "seed"), ("x", "scale"))
              if settings[k] != DEFAULTS[k]]
    if os.path.basename(str(config)) != DEFAULTS["config"]:
        parts.append(tag(os.path.splitext(os.path.basename(str(config)))[0]))
    parts += [f"{word}{budget[k]}" for word, k in zip(("e", "steps", "batch", "patch"), BUDGET_KEYS)
              if budget[k] != getattr(profile, k)]
    if settings["learning_rate"] != DEFAULTS["learning_rate"]:
        parts.append(f"lr{settings['learning_rate']:g}")
    return "_".join(parts)


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
    return {k: float(history.history[k][best]) for k in METRICS}, best + 1


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
        # base7's own widths, whatever tune_filters says: a baseline is the designed network at
        # one bit width, the yardstick a search (rebalanced or not) is judged against.
        model = train.compile_model(base7(scale=scale, quantizers=quantizers), learning_rate,
                                    border=scale)
        tensorboard = keras.callbacks.TensorBoard(
            os.path.join(tb_dir, label.replace(" ", "_")), profile_batch=0)
        history = train.fit(model, train_ds, val_ds, epochs=epochs,
                            steps_per_epoch=steps_per_epoch, callbacks=[tensorboard],
                            objective=space.objective)
        metrics, best = best_epoch_row(history)
        rows.append({"label": label, "width": bits, **metrics, "epochs": epochs,
                     "best_epoch": best})
        write_csv(os.path.join(out_dir, "baselines.csv"), rows)  # a kill keeps finished ones
    return rows
