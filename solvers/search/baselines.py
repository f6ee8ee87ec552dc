"""Uniform baselines: base7 with every layer at the same width (each width of the search space, and
float32), and the hand rule (first and last kernels 8-bit, the rest 2: search/starting_points.py), trained
like one search trial, so a search's result can be judged against them.

Written to results/baselines/<NAME>/ (NAME: --run, else default_name): baselines.csv (columns:
label, width (0 for the hand rule), size_bits, bits, bops, energy_pj, cost, val_loss, val_psnr,
val_score, epochs trained, best_epoch: the metrics taken at the epoch with the best val_score, as
for trials; test_loss, test_psnr: that epoch's model on the held-out test images; model: its
.keras file, for `make eval`), models/*.keras; and baselines.yaml, the settings that
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
from solvers.search import cost, retrain, starting_points
from solvers.config import ConfigError
from solvers.data import sources
from solvers.networks.base7 import base7, layer_names

# width: every layer's bits (32: float32); the costs are cost.COST_COLUMNS and the goal's `cost`.
METRICS = (*cost.COST_COLUMNS, "cost", "val_loss", "val_psnr", "val_score")
COLUMNS = ("label", "width", *METRICS, "epochs", "best_epoch", "test_loss", "test_psnr", "model")
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
    """What defines a baseline set (MATCH_KEYS), for baselines.yaml: `data` holds sources.DATA_KEYS
    (load_pairs' options, as in run.yaml), `epochs` those each baseline is trained for, the rest of
    the budget comes from the profile."""
    return {"data": {**{k: data.get(k) for k in sources.DATA_KEYS}, "split": sources.SPLIT_VERSION},
            "scale": scale, "seed": seed,
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
    """base7's `quantizers` with every kernel, bias and activation at `bits`, each the width's first
    quantizer string of the search space (SearchSpace.quantizer); None for a width some kind lacks."""
    if bits not in space.uniform_widths():
        return None
    conv_names, act_names = layer_names(m)
    quantizers = {c: {k: space.quantizer(k, bits) for k in ("kernel", "bias")} for c in conv_names}
    quantizers.update({a: {"activation": space.quantizer("activation", bits)} for a in act_names})
    return quantizers


def best_epoch_row(history):
    """The metrics of the epoch with the best (lowest) val_score, and its 1-based epoch."""
    scores = history.history["val_score"]
    best = min(range(len(scores)), key=scores.__getitem__)
    return {k: float(history.history[k][best]) for k in METRICS}, best + 1


def write_csv(path, rows):
    files.write_csv(path, COLUMNS, rows)


def slug(label):
    """A file name for a label: "uniform 4-bit" -> uniform_4-bit."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", label).strip("_")


def plan(space, hand_rules=True):
    """[(label, width, quantizers)] of a set: uniform at each width, float32, and the hand rule
    (starting_points.HAND_RULES' first: first and last kernels 8-bit, the rest 2; width 0, it has none)
    when the search space offers its widths."""
    points = [(f"uniform {b}-bit", b, uniform_quantizers(space, b)) for b in space.uniform_widths()]
    if len(points) == 0:
        raise ConfigError("quantization_config.yaml: no width is offered by all of kernel, bias "
                          "and activation, so there is no uniform baseline to train")
    points.append(("float32", cost.FLOAT_BITS, None))
    label, rule = next(iter(starting_points.HAND_RULES.items()))
    if hand_rules and starting_points.offers(space, starting_points.hand_rule(*rule)):
        points.append((label, 0, starting_points.quantizers_of(starting_points.hand_rule(*rule), space)))
    return points


def train_point(label, quantizers, data, budget, out_dir, tb_dir, filters=None, schedule=False):
    """Trains base7 with `quantizers` (None: float32) and `filters` (None: base7's widths) from
    the same initial state as every other point (budget.seed), for budget.epochs, keeping the
    epoch with the best val_score as models/<slug>.keras; returns its row (METRICS at that epoch,
    test_loss/test_psnr on data.test when there is one, the model's path relative to out_dir).

    schedule: halve the learning rate on a val_loss plateau, as the winner's retrain does
    (retrain.lr_schedule), so that a study trains every point as it retrains a search's pick."""
    keras.utils.set_random_seed(budget.seed)
    model = train.compile_model(base7(scale=budget.scale, quantizers=quantizers, filters=filters),
                                budget.learning_rate, border=budget.scale)
    model_path = os.path.join("models", slug(label) + ".keras")
    partial = os.path.join(out_dir, model_path + ".partial.keras")  # renamed once complete
    os.makedirs(os.path.dirname(partial), exist_ok=True)
    callbacks = [keras.callbacks.ModelCheckpoint(partial, monitor="val_score", mode="min",
                                                 save_best_only=True),
                 keras.callbacks.TensorBoard(os.path.join(tb_dir, slug(label)), profile_batch=0)]
    if schedule:
        callbacks.append(retrain.lr_schedule(budget.epochs))
    history = train.fit(model, data.train, data.val, epochs=budget.epochs,
                        steps_per_epoch=budget.steps_per_epoch, callbacks=callbacks,
                        objective=budget.objective)
    metrics, best = best_epoch_row(history)
    os.replace(partial, os.path.join(out_dir, model_path))
    row = {"label": label, **metrics, "epochs": budget.epochs, "best_epoch": best,
           "model": model_path}
    if data.test is not None:
        test = train.evaluate_saved(os.path.join(out_dir, model_path), data.test, budget.scale)
        row.update(test_loss=float(test["loss"]), test_psnr=float(test["psnr"]))
    return row


@dataclasses.dataclass(frozen=True)
class Data:
    """The datasets of a set: train, val (selection: the best epoch) and test (None: none)."""
    train: object
    val: object
    test: object = None


@dataclasses.dataclass(frozen=True)
class Budget:
    """How every point of a set is trained."""
    epochs: int
    steps_per_epoch: int
    scale: int
    learning_rate: float
    seed: int
    objective: object


def run_baselines(space, data, budget, out_dir, tb_dir):
    """Trains every point of plan(space); returns the rows written to baselines.csv (after each
    point, so a kill keeps the finished ones)."""
    os.makedirs(out_dir, exist_ok=True)
    points, rows = plan(space), []
    for label, bits, quantizers in points:
        print(f"\nbaseline {label} ({len(rows) + 1}/{len(points)})", flush=True)
        # base7's own widths, whatever tune_filters says: a baseline is the designed network at
        # one bit width, the yardstick a search (rebalanced or not) is judged against.
        rows.append({**train_point(label, quantizers, data, budget, out_dir, tb_dir),
                     "width": bits})
        write_csv(os.path.join(out_dir, "baselines.csv"), rows)
    return rows
