"""make study's options, their checks and its plan (solvers/study.py runs it): which searches
run, which points each seed trains, and how autoq.py is called. No TensorFlow: bad input is
answered before anything is loaded or written.
"""
import os
import re

from solvers import files
from solvers.config import ArgumentParser, ConfigError
from solvers.report.study_rows import ALGOS, exact_label, pick_label

DESCRIPTION = ("make study: at a budget the user names, does the search find a better model than "
               "every layer at one width, the hand rules and the sensitivity table's exact "
               "allocation at that cost?")
GOALS = ("bits", "bops", "energy")

# Sizing of the default `make study` (3 seeds x 1 goal x 2 budgets x 2 algorithms = 12 searches,
# 3 x 9 references), measured on the 2-core machine, quick profile: one epoch (100 steps of 16
# 32-pixel patches + validation) takes 3.8-4.2 s with the machine otherwise idle (load 1), 6-7 s
# at load 2-3, 7-9 s at load 4-5; a model's first epoch (tracing) and a trial's bookkeeping add
# about 10 s. So, idle: a search is about 30 s + TRIALS x (4 x EPOCHS + 10 s) + FINALISTS x
# (4 x RETRAIN_EPOCHS + 8 s), 270 s with these values (measured: 363 s at load 2-3), and a
# reference 4 x (EPOCHS + RETRAIN_EPOCHS) + 8 s = 44 s: 3 x (4 x 270 + 9 x 44) s = 74 min idle,
# about 100 min at load 2-3, plus 11 min on a clean clone for the float model and the sensitivity
# table. Two more trials per search would cost 9 min idle, 12 at load 2-3: over two hours. Each
# search's pick is trained from scratch as a point too (44 s), unless it has the bits of a point
# already trained (a uniform width, the exact allocation, another algorithm's pick): at most
# 12 x 44 s = 9 min more.
TRIALS, EPOCHS, RETRAIN_EPOCHS, FINALISTS = 8, 3, 6, 2


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m solvers.study", description=DESCRIPTION)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--goals", nargs="+", default=["bops"], help="bits, bops and/or energy")
    p.add_argument("--budgets", nargs="+", default=["uniform3", "uniform4"],
                   help="uniformN, P%% of the reference cost, or a cost in the goal's unit")
    p.add_argument("--algos", nargs="+", default=["random", "evolution"],
                   help=", ".join(ALGOS) + " (gradient: autoq.py --algo gradient, not a search)")
    p.add_argument("--profile", choices=("quick", "paper"), default="quick")
    p.add_argument("--trials", type=int, default=TRIALS)
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of a trial")
    p.add_argument("--retrain-epochs", type=int, default=RETRAIN_EPOCHS,
                   help="more epochs for each finalist; every point gets epochs + these")
    p.add_argument("--finalists", type=int, default=FINALISTS)
    p.add_argument("--band", type=float, help="autoq.py --band (default: the config's)")
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--uniform-widths", type=int, nargs="+", default=[2, 3, 4, 8],
                   help="uniform references (the width of every uniformN budget is added)")
    p.add_argument("--config", default="quantization_config.yaml")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=3)
    p.add_argument("--out", default="results/study")
    p.add_argument("--tb-dir", default="tb_logs/study")
    p.add_argument("--sensitivity", default="results/sensitivity/sensitivity.csv",
                   help="make sensitivity's table (the exact allocation), or none")
    p.add_argument("--search-args", default="", help="more autoq.py options, one string "
                   "(e.g. --patch-size 8 --batch-size 4 for a tiny run)")
    return p.parse_args(argv)


def _unique(items):
    return list(dict.fromkeys(items))


def check(args):
    """The arguments checked before anything is written (ConfigError, one line); returns
    args with goals, budgets, algos and seeds without repeats."""
    from solvers.config import load_search_space
    from solvers.config_objective import check_band, parse_budget
    from solvers.networks.layout import layer_names
    args.goals, args.budgets = _unique(args.goals), _unique(args.budgets)
    args.algos, args.seeds = _unique(args.algos), _unique(args.seeds)
    for name, given, allowed in (("--goals", args.goals, GOALS), ("--algos", args.algos, ALGOS)):
        for value in given:
            if value not in allowed:
                raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    for name in ("trials", "epochs", "finalists"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be at least 1")
    if args.retrain_epochs < 0:
        raise ConfigError("--retrain-epochs: must be at least 0")
    space = load_search_space(args.config, [n for names in layer_names() for n in names])
    if args.band is not None:
        check_band("--band", args.band)
    for budget in args.budgets:
        kind, value = parse_budget("--budgets", budget)
        if kind == "uniform" and value not in space.uniform_widths():
            raise ConfigError(f"--budgets: {budget}: the search space has no {value}-bit "
                              "quantizer of every kind; widths offered: "
                              f"{', '.join(map(str, space.uniform_widths()))}")
    if args.sensitivity != "none" and not os.path.isfile(args.sensitivity):
        raise ConfigError(f"--sensitivity: {args.sensitivity}: no such file (make sensitivity "
                          "writes it; or --sensitivity none: no exact allocation)")
    return args


def slug(text):
    """A folder-name form of a budget: uniform3, 35pct, 1.5e9."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text.replace("%", "pct")).strip("_")


def search_name(goal, budget, algo):
    return f"{goal}_{slug(budget)}_{algo}"


def search_dir(out, seed, name):
    return os.path.join(out, f"seed{seed}", "searches", name)


def uniform_widths(args):
    """The uniform references' widths: --uniform-widths and every uniformN budget's N."""
    from solvers.config_objective import parse_budget
    widths = set(args.uniform_widths)
    for budget in args.budgets:
        kind, value = parse_budget("--budgets", budget)
        if kind == "uniform":
            widths.add(int(value))
    return sorted(widths)


def plan(args):
    """(searches, references): searches [(seed, goal, budget, algo, folder name)], every goal,
    budget and algorithm per seed; references [(label, kind, goal, budget)], the same for every
    seed, shared by its searches: one exact allocation per goal and budget, not per algorithm.
    Uniform widths and hand rules the space lacks are dropped when training (train_points)."""
    from solvers.search import starting_points
    searches = [(seed, goal, budget, algo, search_name(goal, budget, algo))
                for seed in args.seeds for goal in args.goals for budget in args.budgets
                for algo in args.algos]
    references = [(f"uniform {b}-bit", "uniform", "", "") for b in uniform_widths(args)]
    references.append(("float32", "float", "", ""))
    references += [(label, "hand rule", "", "") for label in starting_points.HAND_RULES]
    if args.sensitivity != "none":
        references += [(exact_label(goal, budget), "exact allocation", goal, budget)
                       for goal in args.goals for budget in args.budgets]
    return searches, references


def picks(searches, seed):
    """The points of a seed's picks, [(label, "pick", goal, budget)], one per search (its
    best_config.yaml, trained after its references: a pick with a reference's bits is that
    reference's row)."""
    return [(pick_label(name), "pick", goal, budget)
            for s, goal, budget, _, name in searches if s == seed]


def autoq_argv(args, seed, goal=None, budget=None, algo="random"):
    """autoq.py's options of one search (parsed without goal and budget: the points' settings).
    A gradient run gets the same options (autoq.py ignores those of a search it has no use for)."""
    argv = ["--algo", algo, "--profile", args.profile, "--seed", str(seed),
            "--scale", str(args.scale), "--config", args.config,
            "--trials", str(args.trials), "--epochs", str(args.epochs),
            "--retrain-epochs", str(args.retrain_epochs), *args.search_args.split()]
    if args.steps_per_epoch is not None:
        argv += ["--steps-per-epoch", str(args.steps_per_epoch)]
    if goal is not None:
        argv += ["--goal", goal, "--budget", budget, "--no-hand-rules",
                 "--finalists", str(args.finalists), "--sensitivity", args.sensitivity]
        if args.band is not None:
            argv += ["--band", str(args.band)]
    return argv


def check_kept(args, searches):
    """A finished search or a trained point is kept only if trained as this study asks:
    ConfigError otherwise (before anything runs). A setting run.yaml does not record (a gradient
    run has no trials) is not compared."""
    from solvers.report import pareto
    epochs = args.epochs + args.retrain_epochs
    for seed in args.seeds:
        path = os.path.join(args.out, f"seed{seed}", "points.csv")
        trained = {r["epochs"] for r in pareto.read_csv(path)[1]} if os.path.exists(path) else set()
        if trained - {str(epochs)}:
            raise ConfigError(f"{path}: points trained for {', '.join(sorted(trained))} epochs, "
                              f"this study trains {epochs}: another --out, or delete it")
    for seed, _, _, _, name in searches:
        folder = search_dir(args.out, seed, name)
        run = files.read_yaml(os.path.join(folder, "run.yaml"), missing=None)
        if run is None or not os.path.exists(os.path.join(folder, "summary.yaml")):
            continue  # autoq.py itself refuses to continue a search with other settings
        kept = run.get("settings") or {}
        wanted = {"trials": args.trials, "epochs": args.epochs,
                  "retrain_epochs": args.retrain_epochs}
        if args.steps_per_epoch is not None:
            wanted["steps_per_epoch"] = args.steps_per_epoch
        differ = [f"{k} {kept.get(k)} (asked: {v})" for k, v in wanted.items()
                  if k in kept and kept.get(k) != v]
        if differ:
            raise ConfigError(f"{folder}: finished with {', '.join(differ)}: another --out, or "
                              "delete it")
