"""One run, top to bottom: settings → data → (float model | search → retrain → report files)."""
import dataclasses
import functools
import os
import time

import keras
import tensorflow as tf
import yaml

from solvers import files, run_folder, run_lock, train
from solvers.config import PROFILES, ConfigError, load_search_space, with_goal_options
from solvers.data import pipeline, sources
from solvers.networks import float_model
from solvers.networks.base7 import MyHyperModel, base7, layer_names, quantizer_values
from solvers.report import pareto, records, report_md
from solvers.search import baselines, budget, distributed, finalists, starting_points, tuners
from solvers.search import sensitivity_provenance as provenance
from solvers.search.space import filter_search, search_choices

# Each trial is a new model, so tf.function traces anew; TensorFlow's retracing warning is expected.
tf.get_logger().setLevel("ERROR")


def profile_settings(args):
    """The profile's values with every command-line override applied."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PROFILES[args.profile])
                 if getattr(args, f.name, None) is not None}
    return dataclasses.replace(PROFILES[args.profile], **overrides)


def datasets(args, profile):
    """(train, validation, test) pipelines of a run (pipeline.datasets)."""
    return pipeline.datasets(sources.data_options(args), args.scale, profile.patch_size,
                             profile.batch_size, args.seed)


def train_float(args):
    """Trains the float32 base7 for the profile's whole epoch budget; keeps the best val_psnr."""
    profile = profile_settings(args)
    train_ds, val_ds, _ = datasets(args, profile)  # the float model is a starting point, not a claim
    keras.utils.set_random_seed(args.seed)
    run_lock.hold(args.float_model)  # two trainings of one file would interleave its checkpoints
    os.makedirs(os.path.dirname(os.path.abspath(args.float_model)), exist_ok=True)
    model = train.compile_model(base7(scale=args.scale), args.learning_rate, border=args.scale,
                                xla=args.xla)
    tmp_path = args.float_model + ".partial.keras"  # renamed once complete
    callbacks = [keras.callbacks.ModelCheckpoint(tmp_path, monitor="val_psnr", mode="max",
                                                 save_best_only=True),
                 keras.callbacks.TensorBoard(os.path.join(args.tb_dir, args.run or "float"),
                                             profile_batch=0)]
    epochs = profile.epochs + profile.retrain_epochs
    print(f"training the float32 base7 for {epochs} epochs × {profile.steps_per_epoch} steps")
    train.fit(model, train_ds, val_ds, epochs=epochs, steps_per_epoch=profile.steps_per_epoch,
              callbacks=callbacks)
    os.replace(tmp_path, args.float_model)
    best = keras.models.load_model(args.float_model).evaluate(val_ds, return_dict=True, verbose=0)
    print(f"float32 model: {args.float_model}, val PSNR {best['psnr']:.2f} dB")
    return 0


def run_settings(args, run_name, profile, space, choices, filters=None):
    """Everything that defines a search, as written to results/<RUN>/run.yaml. `filters` (a
    FilterSearch, None for tune_filters: none) adds its hyperparameters to search_space (so a
    continuation with other ones is refused) and a tune_filters record; none adds nothing, so
    run.yaml stays as it was before filter search existed. A sensitivity table the starting points
    use adds its provenance (`sensitivity`); one that does not fit the run is refused here, before
    anything is written."""
    import keras_tuner
    import qkeras
    tuned = {} if filters is None else {"tune_filters": {
        "mode": filters.mode, "multipliers": list(filters.multipliers),
        "exceptions": space.tune_filters_exceptions, "layers": dict(filters.base)}}
    table = sensitivity_table(args, space)  # a mismatch is refused here, before run.yaml exists
    return {
        "run": run_name, "algo": args.algo, "profile": args.profile,
        "settings": dataclasses.asdict(profile), "seed": args.seed, "scale": args.scale,
        "learning_rate": args.learning_rate, "config": args.config, "float_model": args.float_model,
        "data": {**{k: getattr(args, k, None) for k in ("data", "lr_data", "div2k_root",
                                                         "train_images", "val_images",
                                                         "test_images")},
                 "split": sources.SPLIT_VERSION},  # a run.yaml without it: older images
        "objective": dataclasses.asdict(space.objective),
        "search_space": {**{name: list(c.options) for name, c in choices.items()},
                         **(filters.choices() if filters else {})}, **tuned,
        "quantizers": baselines.quantizer_maps(space),  # matched against baselines.yaml
        **({"sensitivity": table.record} if table else {}),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "keras_tuner": keras_tuner.__version__, "qkeras": qkeras.__version__},
    }


def _fit_fn(objective, patience=0):
    """train.fit for the trials, stopping a trial whose val_score has not improved for
    `patience` epochs (0: never). Under a budget, a model that costs more is refused before its
    first step (the oracles never propose one: this is the guarantee, measured on the model)."""
    def fit(model, *args, callbacks=(), **kwargs):
        if objective.budget_cost is not None:
            from solvers.search import cost
            spent = cost.costs(model, objective.goal)["cost"]
            if spent > objective.budget_cost * (1 + 1e-9):
                import keras_tuner
                raise keras_tuner.errors.FailedTrialError(
                    f"over budget: costs {spent:.6g}, budget {objective.budget_cost:.6g}")
        if patience:
            stop = keras.callbacks.EarlyStopping(monitor="val_score", mode="min", patience=patience)
            callbacks = [*callbacks, stop]
        return train.fit(model, *args, callbacks=callbacks, objective=objective, **kwargs)
    return fit


def sensitivity_table(args, space):
    """make sensitivity's table for this search's starting points, checked against the search
    (sensitivity_provenance: scale, data, quantizers, float model, the csv's hash): a
    provenance.Table, or None (--sensitivity none, --no-starting-points, a worker, or no
    --sensitivity and no results/sensitivity/sensitivity.csv). A table that does not fit is a
    ConfigError, the default one and a named one alike: a silent mismatch would steer every search
    with another run's numbers. Only a table the user names, with --allow-sensitivity-mismatch, is
    used anyway, its differences in the Table (a warning each, and run.yaml)."""
    if args.no_starting_points or args.role == "worker" or args.sensitivity == "none":
        return None
    path = args.sensitivity or os.path.join(args.results_dir, "sensitivity", "sensitivity.csv")
    if not os.path.isfile(path):
        if args.sensitivity:
            raise ConfigError(f"--sensitivity: {path}: no such file (make sensitivity writes it)")
        return None
    record = provenance.read_record(path)
    data = {**sources.data_options(args), "split": sources.SPLIT_VERSION}
    found = provenance.differences(path, record, args.scale, data, space, args.float_model)
    if found and not args.allow_sensitivity_mismatch:
        raise provenance.refusal(found)
    return provenance.Table(path, provenance.run_record(path, record, found), found)


def starting_points_of(args, space, choices, filters, model=None):
    """The first trials (search/starting_points.py), printed; none with --no-starting-points, and
    none on a worker: the chief's oracle hands them out."""
    if args.no_starting_points or args.role == "worker":
        return []
    table = sensitivity_table(args, space)
    for difference in table.accepted if table else ():
        print(f"warning: {table.path}: used although {provenance.describe(difference)} "
              "(--allow-sensitivity-mismatch)", flush=True)
    goal, budget_cost = space.objective.goal, space.objective.budget_cost
    found = starting_points.plan(space, choices, filters, args.scale, table.path if table else None,
                                 cost_model=model, budget=budget_cost, band=goal.band,
                                 hand_rules=not args.no_hand_rules)
    trials = found.points
    print(f"starting points ({len(trials)}, first): {', '.join(label for label, _ in trials)}"
          + (f" (sensitivity: {table.path})" if table else ""), flush=True)
    if found.dropped:  # trained, they would cost more than the budget or far less
        print(f"left out, outside [{goal.band:g} x budget, budget] = [{goal.band * budget_cost:.6g}, "
              f"{budget_cost:.6g}]: " + ", ".join(f"{label} ({c / budget_cost:.0%} of it)"
                                                  for label, c in found.dropped), flush=True)
    return trials


def search_setup(args):
    """(profile, space, choices, filters, cost model, settings) of a search: what run.yaml
    records. The space's objective carries the budget resolved in the goal's unit."""
    profile = profile_settings(args)
    conv_names, act_names = layer_names()
    space = with_goal_options(load_search_space(args.config, conv_names + act_names),
                              args.goal, args.budget, args.band)
    choices = search_choices(space, conv_names, act_names, args.config)
    filters = filter_search(space, args.scale, path=args.config)  # None: tune_filters none
    model = budget.cost_model(space, args.scale, choices)
    where = "--budget" if args.budget is not None else f"{args.config}: goal: budget"
    budget_cost = budget.resolve(space, args.scale, choices, model, filters, where)
    space = dataclasses.replace(space, objective=dataclasses.replace(space.objective,
                                                                     budget_cost=budget_cost))
    settings = run_settings(args, run_folder.run_name(args), profile, space, choices, filters)
    return profile, space, choices, filters, model, settings


def search_and_retrain(args):
    """The main job: search the quantizers, retrain the winner, write the run's files."""
    started = time.time()
    profile, space, choices, filters, model, settings = search_setup(args)
    float_weights = float_model.load_float_weights(args.float_model, args.scale) if args.float_model else None
    train_ds, val_ds, test_ds = datasets(args, profile)
    run_name = run_folder.run_name(args)
    run_dir = os.path.join(args.results_dir, run_name)
    tb_dir = os.path.join(args.tb_dir, run_name)
    worker = args.role == "worker"
    if args.role:  # Keras Tuner's distributed mode reads its role from the environment
        os.environ.update(distributed.tuner_env(args.role, args.oracle, args.worker_id))
    if worker:
        run_folder.check_worker_settings(run_dir, settings)  # the chief owns run.yaml and the outputs
    else:  # one chief or standalone process per RUN, before anything is written or moved aside
        run_lock.hold(run_dir)  # held until the process ends: search, retrain and report
        run_folder.prepare_run_dir(run_dir, tb_dir, settings, fresh=args.fresh)
    keras.utils.set_random_seed(args.seed)

    bits_of = {**space.kernel, **space.bias, **space.activation}
    hypermodel = MyHyperModel(
        choices, compile_fn=functools.partial(train.compile_model, learning_rate=args.learning_rate,
                                              border=args.scale, xla=args.xla),
        fit_fn=_fit_fn(space.objective, profile.patience), scale=args.scale,
        float_weights=float_weights, filter_search=filters, seed=args.seed)
    names = list(choices) + list(filters.choices() if filters else {})  # the hyperparameters
    columns = records.trial_columns(names, choices)  # and each layer's quantizer string

    def write_trials_csv(oracle, finals=None):  # after every trial, and with the finalists
        rows = records.trial_rows(oracle, names, os.path.join(run_dir, "tuner"), choices, finals)
        records.write_trials_csv(os.path.join(run_dir, "trials.csv"), rows, columns)
    tuner = tuners.make_tuner(args.algo, hypermodel, bits_of, profile.trials, profile.epochs,
                              args.seed, run_dir, on_trial_recorded=write_trials_csv,
                              starting_points=starting_points_of(args, space, choices, filters,
                                                                 model),
                              band=budget.band_of(space, choices, filters, model, args.scale))
    print(f"run {run_name}: {args.algo} search, profile {args.profile} ({profile}), "
          f"{'from ' + args.float_model if args.float_model else 'from scratch'}", flush=True)
    if args.role == "chief":
        print(f"chief: serving the oracle at {args.oracle} to the workers", flush=True)
    tuners.run_search(tuner, train_ds, val_ds, profile.epochs, profile.steps_per_epoch, tb_dir)
    if worker:
        print(f"worker tuner{args.worker_id}: no trials left; the chief retrains the winner")
        return 0
    write_trials_csv(tuner.oracle)  # also for a resumed search that had no trial left to run
    if not any(t.status == "COMPLETED" for t in tuner.oracle.trials.values()):
        raise ConfigError(f"{run_dir}: every trial failed; see trials.csv")
    count = args.finalists if profile.retrain_epochs > 0 else 1  # nothing to tell them apart
    values, before, after, picked = finalists.pick(
        tuner, count, profile, space.objective, (train_ds, val_ds), run_dir, tb_dir,
        write_trials_csv)
    # The winner on the held-out test images: it was chosen on validation, so only these figures
    # are free of the selection's optimism. The retrained model (as retrain kept it) gives psnr and
    # loss; the searched one (best_model.keras, one trial's budget) psnr_search and loss_search,
    # what the report sets against uniform baselines trained like one trial. Compiled as in
    # training (L1 loss, Y-PSNR with the scale's border); the optimizer state is not needed.
    test = train.held_out_scores(run_dir, test_ds, args.scale)
    values = {**values, **quantizer_values(choices, values)}  # widths → quantizer strings
    records.write_best_config(os.path.join(run_dir, "best_config.yaml"), values, args.scale,
                              filters=hypermodel.filters_of(values))
    best = records.load_best_config(os.path.join(run_dir, "best_config.yaml"))
    files.write_yaml(os.path.join(run_dir, "summary.yaml"), {**records.summary_record(
        best, picked["winner"]["trial_id"], values, before, after,
        space.objective.goal, test=test, val_images=int(val_ds.cardinality())), **picked,
        "elapsed_s": round(time.time() - started, 1)})
    print("\n" + records.summary(best, values, before, after, test=test))
    report_path = report_md.make_report(run_dir, tb_dir=tb_dir)  # baselines: a matching set
    print(f"report: {report_path}")
    print(f"outputs: {run_dir}/ (trials.csv, best_config.yaml, best_model.keras, "
          f"best_model_retrained.keras), TensorBoard: {tb_dir}/ | "
          f"total time {tuners.hms(time.time() - started)}")
    return 0


def uniform_baselines(args):
    """make baselines: every uniform width of the search space and float32, trained like one
    search trial (or, with --baseline-epochs, for that many epochs), into results/baselines/<RUN,
    else a name from the settings (baselines.default_name)>/, with baselines.yaml. Refuses a
    folder whose baselines.yaml holds other settings; moves aside a baselines.csv without one."""
    profile = profile_settings(args)
    conv_names, act_names = layer_names()
    space = load_search_space(args.config, conv_names + act_names)
    epochs = args.baseline_epochs or profile.epochs
    wanted = baselines.set_settings(vars(args), args.scale, args.seed, args.learning_rate, epochs,
                                    profile, space)
    name = args.run or baselines.default_name(args.profile, PROFILES[args.profile], wanted,
                                              args.config)
    out_dir = os.path.join(args.results_dir, "baselines", name)
    yaml_path, csv_path = (os.path.join(out_dir, f) for f in ("baselines.yaml", "baselines.csv"))
    if os.path.exists(yaml_path):
        diff = baselines.differences(files.read_yaml(yaml_path),
                                     yaml.safe_load(yaml.safe_dump(wanted)))
        if diff:
            key, old, new = diff[0]
            raise ConfigError(f"{yaml_path}: these baselines were trained with {key} = "
                              f"{run_folder.short(old)}, now {run_folder.short(new)}; use another "
                              "RUN=name")
    train_ds, val_ds, test_ds = datasets(args, profile)
    run_lock.hold(out_dir)  # one process per set: two would both rewrite baselines.csv
    os.makedirs(out_dir, exist_ok=True)
    if os.path.exists(csv_path) and not os.path.exists(yaml_path):  # from before baselines.yaml
        aside = f"{csv_path}.old-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(csv_path, aside)
        print(f"moved {csv_path} (settings unknown: no baselines.yaml) to {aside}")
    files.write_yaml(yaml_path, {"name": name, "profile": args.profile, "config": args.config,
                                 **wanted})
    rows = baselines.run_baselines(
        space, baselines.Data(train_ds, val_ds, test_ds),
        baselines.Budget(epochs, profile.steps_per_epoch, args.scale, args.learning_rate,
                         args.seed, space.objective),
        out_dir, os.path.join(args.tb_dir, f"baselines_{name}"))
    goal = space.objective.goal.type
    print(f"\n{'baseline':<20}{'size KiB':>10}{'goal: ' + goal:>16}{'val PSNR':>10}"
          f"{'test PSNR':>11}{'val_score':>11}")
    for row in rows:
        print(f"{row['label']:<20}{row['size_bits'] / 8192:>10.2f}"
              f"{pareto.in_units(row['cost'], pareto.GOAL_COLUMNS[goal]):>16}"
              f"{row['val_psnr']:>10.2f}{row.get('test_psnr', float('nan')):>11.2f}"
              f"{row['val_score']:>11.4f}")
    print(f"outputs: {out_dir}/baselines.csv, baselines.yaml and models/ (each row's .keras)")
    return 0
