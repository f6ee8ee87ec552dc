"""make gradient: base7's bit widths learned by gradient descent under the budget, then the
search's own retrain, files and report, so that make export and make eval take the result as
they take a search's.

    settings (run.search_setup: the same budget, goal, data and run.yaml as a search)
    → learned base7 (model.py), trained `gradient epochs` with β·cost steered to the budget (fit.py)
    → integer widths ≤ budget (fit.final_bits), as the YAML's quantizer strings
    → a plain QKeras base7 with the learned weights (best_model.keras), retrained for the
      profile's retrain epochs (retrain.retrain_model: best_model_retrained.keras)
    → best_config.yaml, summary.yaml (winner source "gradient"), trajectory.csv, report.md.

The gradient phase lasts as long as the retrain (--gradient-epochs, default the profile's
retrain epochs): widths are learned over as many epochs as a search's finalist is retrained,
and the whole job trains 2 x retrain epochs, against trials x epochs + finalists x retrain
epochs for a search (make study: 12 epochs against 36).
A run killed during the gradient phase starts that phase again; one killed during the retrain
continues it (gradient.yaml and learned_model.keras hold the learned result).
"""
import os
import time

import keras

from solvers import files, run, run_folder, run_lock, train
from solvers.config import load_search_space
from solvers.gradient import check, fit, model
from solvers.gradient.cost import GradientCost
from solvers.networks import float_model
from solvers.networks.base7 import quantizer_values, quantizers_from_hp
from solvers.networks.layout import layer_names
from solvers.report import gradient_md, records
from solvers.search import retrain

DEFAULT_BUDGET = "uniform4"  # without one named: the budget make study's upper row uses
LEARNED_MODEL, RECORD = "learned_model.keras", "gradient.yaml"


def hp_values(bits, choices):
    """{hyperparameter name: width} of integer widths {(layer, kind): bits} (biases: the one
    width the limit leaves), the form a search's winner has."""
    values = {}
    for name, choice in choices.items():
        layer = choice.layers[0]
        values[name] = choice.options[0] if choice.kind == "bias" else bits[layer, choice.kind]
    return values


def copy_float(net, float_weights):
    """The float model's kernels and biases into the learned layers (same names and shapes; the
    widths keep their initial values)."""
    for name, (kernel, bias) in float_weights.items():
        layer = net.get_layer(name)
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)


def with_biases(bits, learnable):
    """Integer kernel and activation widths plus the fixed biases: what CostModel.cost prices."""
    return {**bits, **{(conv, "bias"): b for conv, b in learnable.bias_bits.items()}}


def _learn(args, profile, space, learnable, cost_fn, data, run_dir, tb_dir, epochs):
    """The gradient phase: (learned model, record), both kept in run_dir for a continuation."""
    record_path, model_path = (os.path.join(run_dir, f) for f in (RECORD, LEARNED_MODEL))
    record = files.read_yaml(record_path, missing=None)
    if record is not None and os.path.exists(model_path):
        print(f"gradient phase already done ({record_path}): continuing with the retrain",
              flush=True)
        return keras.models.load_model(model_path, compile=False), record
    train_ds, val_ds = data
    budget = space.objective.budget_cost
    init = fit.initial_widths(cost_fn, budget, learnable.lo, learnable.hi)
    net = model.learned_base7(args.scale, init, learnable.bias_quantizers,
                              width_range=(learnable.lo, learnable.hi))
    if args.float_model:
        copy_float(net, float_model.load_float_weights(args.float_model, args.scale))
    print(f"gradient phase: {epochs} epochs x {profile.steps_per_epoch} steps, widths from "
          f"{sorted(set(init.values()))}, budget {space.objective.goal.budget_text()} = "
          f"{budget:.6g}", flush=True)
    rows = fit.train_widths(net, cost_fn, budget, space.objective.goal.band, train_ds, val_ds,
                            epochs, profile.steps_per_epoch, learning_rate=args.learning_rate,
                            border=args.scale, tb_dir=os.path.join(tb_dir, "gradient"))
    columns = list(rows[0]) if rows else []
    files.write_csv(os.path.join(run_dir, gradient_md.TRAJECTORY), columns, rows)
    learned = model.rounded_bits(net)
    bits, repaired = fit.final_bits(net, cost_fn, budget)
    record = {"epochs": epochs, "initial_widths": sorted(set(init.values())),
              "learned_bits": {f"{layer}_{kind}": b for (layer, kind), b in learned.items()},
              "learned_fraction": cost_fn.cost_model.cost(with_biases(learned, learnable)) / budget,
              "bits": {f"{layer}_{kind}": b for (layer, kind), b in bits.items()},
              "repaired_steps": int(repaired), "final_beta": float(rows[-1]["beta"])}
    files.save_model(net, model_path)
    files.write_yaml(record_path, record)
    return net, record


def gradient_and_retrain(args):
    """The gradient job, top to bottom (module docstring); returns the exit status."""
    started = time.time()
    args.no_starting_points = True  # no trials: no starting points, no sensitivity table
    names = [n for group in layer_names() for n in group]
    if args.budget is None and load_search_space(args.config, names).objective.goal.budget is None:
        print(f"no budget named (BUDGET= or goal: budget in {args.config}): learning widths to "
              f"{DEFAULT_BUDGET}", flush=True)
        args.budget = DEFAULT_BUDGET
    profile, space, choices, filters, cost_model, settings = run.search_setup(args)
    learnable = check.learnable(choices, filters, args.config)  # before anything is written
    epochs = args.gradient_epochs or profile.retrain_epochs or profile.epochs
    settings["gradient"] = {"epochs": epochs}
    train_ds, val_ds, test_ds = run.datasets(args, profile)
    run_name = run_folder.run_name(args)
    run_dir, tb_dir = (os.path.join(d, run_name) for d in (args.results_dir, args.tb_dir))
    run_lock.hold(run_dir)
    run_folder.prepare_run_dir(run_dir, tb_dir, settings, fresh=args.fresh)
    keras.utils.set_random_seed(args.seed)
    cost_fn = GradientCost(cost_model, learnable.lo, learnable.hi, learnable.bias_bits)
    net, record = _learn(args, profile, space, learnable, cost_fn, (train_ds, val_ds), run_dir,
                         tb_dir, epochs)
    bits = {tuple(k.rsplit("_", 1)): b for k, b in record["bits"].items()}
    values = hp_values(bits, choices)
    strings = quantizer_values(choices, values)
    qmodel = model.to_qkeras(net, quantizers_from_hp(strings), args.scale)
    train.compile_model(qmodel, args.learning_rate, border=args.scale, xla=args.xla)
    spent = cost_model.cost(with_biases(bits, learnable))
    if spent > space.objective.budget_cost * (1 + 1e-9):  # final_bits guarantees it: a bug
        raise RuntimeError(f"rounded widths cost {spent:.6g} > budget")
    objective = space.objective
    before, after = retrain.retrain_model(
        qmodel, train_ds, val_ds, epochs, epochs + profile.retrain_epochs,
        profile.steps_per_epoch, objective, run_dir, os.path.join(tb_dir, "retrain"))
    test = train.held_out_scores(run_dir, test_ds, args.scale)
    values = {**values, **strings}
    records.write_best_config(os.path.join(run_dir, "best_config.yaml"), values, args.scale)
    best = records.load_best_config(os.path.join(run_dir, "best_config.yaml"))
    goal = objective.goal
    files.write_yaml(os.path.join(run_dir, "summary.yaml"), {
        **records.summary_record(best, None, values, before, after, goal, test=test,
                                 val_images=int(val_ds.cardinality())),
        "winner": {"trial_id": None, "start": None, "source": "gradient"},
        "budget": {"spec": goal.budget_text(), "goal": goal.type,
                   "cost": float(objective.budget_cost), "band": goal.band},
        "gradient": {**record, "retrain_epochs": profile.retrain_epochs},
        "elapsed_s": round(time.time() - started, 1)})
    print("\n" + records.summary(best, values, before, after, test=test))
    print(f"report: {gradient_md.make_report(run_dir)}")
    print(f"outputs: {run_dir}/ (trajectory.csv, best_config.yaml, best_model.keras, "
          f"best_model_retrained.keras), TensorBoard: {tb_dir}/ | total time "
          f"{time.time() - started:.0f} s")
    return 0

