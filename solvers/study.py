"""make study: at a budget the user names, does the search find a better model than every layer
at one width, the hand rules and the sensitivity table's exact allocation at that cost?

For each seed, into <out>/seed<N>/:
  searches/<goal>_<budget>_<algo>/  one budgeted search per goal, budget and algorithm (autoq.py
      --goal --budget --no-hand-rules, the sensitivity table given, so the exact allocation at the
      budget is among its starting points; its finalists retrained to the full budget, trial epochs
      + retrain epochs). Its winner is the study's pick, scored on the test images by autoq.py
      itself (summary.yaml: test.psnr), not trained again.
  points.csv, models/  the references, each trained from scratch for the same budget (trial
      epochs + retrain epochs, the retrain's learning-rate schedule, the same initial state), its
      best epoch chosen on the validation images, scored once on the test images: uniform 2, 3,
      4, 8-bit (and the width of every uniformN budget), float32, the hand rules k8-2 a3 and
      k8-2 a4, and the exact allocation alone at each goal and budget (the configuration its
      searches started from, read from their trials.csv). One set per seed, shared by its rows.
Then <out>/study.md and study.png (solvers/report/study_md.py), over every finished search of
these seeds in <out>. A killed study continues where it stopped: a finished search is kept, a
point already in points.csv is kept. Bad input is one `error:` line, exit 2, nothing written.
"""
import os
import re
import subprocess
import sys
import time

from solvers import files
from solvers.config import ArgumentParser, ConfigError
from solvers.report.study_rows import ALGOS, exact_label, widths_text
from solvers.search.starting_points import EXACT_ALLOCATION as EXACT_START

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINT_COLUMNS = ("seed", "label", "kind", "goal", "budget", "width", "size_bits", "bits", "bops",
                 "energy_pj", "cost", "val_psnr", "test_psnr", "test_loss", "best_epoch", "epochs",
                 "model", "layer_bits")
GOALS = ("bits", "bops", "energy")
# EXACT_START: the exact allocation's label in a search's trials.csv `start` column.

# Sizing of the default `make study` (3 seeds x 1 goal x 2 budgets x 2 algorithms = 12 searches,
# 3 x 9 references), measured on the 2-core machine, quick profile: one epoch (100 steps of 16
# 32-pixel patches + validation) takes 3.8-4.2 s with the machine otherwise idle (load 1), 6-7 s
# at load 2-3, 7-9 s at load 4-5; a model's first epoch (tracing) and a trial's bookkeeping add
# about 10 s. So, idle: a search is about 30 s + TRIALS x (4 x EPOCHS + 10 s) + FINALISTS x
# (4 x RETRAIN_EPOCHS + 8 s), 270 s with these values (measured: 363 s at load 2-3), and a
# reference 4 x (EPOCHS + RETRAIN_EPOCHS) + 8 s = 44 s: 3 x (4 x 270 + 9 x 44) s = 74 min idle,
# about 100 min at load 2-3, plus 11 min on a clean clone for the float model and the sensitivity
# table. Two more trials per search would cost 9 min idle, 12 at load 2-3: over two hours.
TRIALS, EPOCHS, RETRAIN_EPOCHS, FINALISTS = 8, 3, 6, 2


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m solvers.study", description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--goals", nargs="+", default=["bops"], help="bits, bops and/or energy")
    p.add_argument("--budgets", nargs="+", default=["uniform3", "uniform4"],
                   help="uniformN, P%% of the reference cost, or a cost in the goal's unit")
    p.add_argument("--algos", nargs="+", default=["random", "evolution"], help=", ".join(ALGOS))
    p.add_argument("--profile", choices=("quick", "paper"), default="quick")
    p.add_argument("--trials", type=int, default=TRIALS)
    p.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of a trial")
    p.add_argument("--retrain-epochs", type=int, default=RETRAIN_EPOCHS,
                   help="more epochs for each finalist; the references get epochs + these")
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


def autoq_argv(args, seed, goal=None, budget=None, algo="random"):
    """autoq.py's options of one search (parsed without goal and budget: the points' settings)."""
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


def run_search(args, seed, goal, budget, algo, name):
    """One search in its own process (a fresh TensorFlow per search); a finished one is kept."""
    searches_dir = os.path.join(args.out, f"seed{seed}", "searches")
    search_dir = os.path.join(searches_dir, name)
    if os.path.exists(os.path.join(search_dir, "summary.yaml")):
        print(f"seed {seed}: search {name} already done", flush=True)
        return search_dir
    command = [sys.executable, os.path.join(REPO, "autoq.py"),
               *autoq_argv(args, seed, goal, budget, algo), "--run", name,
               "--results-dir", searches_dir, "--tb-dir", os.path.join(args.tb_dir, f"seed{seed}")]
    print(f"seed {seed}: search: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise ConfigError(f"{search_dir}: the search failed (its output is above)")
    return search_dir


def check_kept(args, searches):
    """A finished search or a trained point is kept only if trained as this study asks:
    ConfigError otherwise (before anything runs)."""
    from solvers.report import pareto
    epochs = args.epochs + args.retrain_epochs
    for seed in args.seeds:
        path = os.path.join(args.out, f"seed{seed}", "points.csv")
        trained = {r["epochs"] for r in pareto.read_csv(path)[1]} if os.path.exists(path) else set()
        if trained - {str(epochs)}:
            raise ConfigError(f"{path}: points trained for {', '.join(sorted(trained))} epochs, "
                              f"this study trains {epochs}: another --out, or delete it")
    for seed, _, _, _, name in searches:
        folder = os.path.join(args.out, f"seed{seed}", "searches", name)
        run = files.read_yaml(os.path.join(folder, "run.yaml"), missing=None)
        if run is None or not os.path.exists(os.path.join(folder, "summary.yaml")):
            continue  # autoq.py itself refuses to continue a search with other settings
        kept = run.get("settings") or {}
        wanted = {"trials": args.trials, "epochs": args.epochs,
                  "retrain_epochs": args.retrain_epochs}
        if args.steps_per_epoch is not None:
            wanted["steps_per_epoch"] = args.steps_per_epoch
        differ = [f"{k} {kept.get(k)} (asked: {v})" for k, v in wanted.items() if kept.get(k) != v]
        if differ:
            raise ConfigError(f"{folder}: finished with {', '.join(differ)}: another --out, or "
                              "delete it")


def layer_bits(quantizers):
    """'k 8.2.2.2.2.2.8 b 8.… a 3.…' (kernel, bias, activation bits per layer), or float32."""
    from solvers.report.pareto import bits_of
    if not quantizers:
        return "float32"
    return widths_text(lambda layer, kind: bits_of(quantizers[layer][kind]))


def exact_quantizers(args, seed, goal, budget):
    """base7's quantizers of the exact allocation at this goal and budget, from a trials.csv of
    the seed's searches there (its `start` label); None when none of them has it."""
    from solvers.networks.base7 import quantizers_from_hp
    from solvers.report import pareto
    for algo in args.algos:
        path = os.path.join(args.out, f"seed{seed}", "searches", search_name(goal, budget, algo),
                            "trials.csv")
        rows = pareto.read_csv(path)[1] if os.path.exists(path) else []
        row = next((r for r in rows if r.get("start") == EXACT_START), None)
        if row is not None:
            return quantizers_from_hp(row)
    return None


def reference_quantizers(args, seed, space, label, kind, goal, budget):
    """base7's quantizers of a reference (None: float32); False when the space lacks it."""
    from solvers.search import baselines, starting_points
    if kind == "uniform":
        return baselines.uniform_quantizers(space, int(label.split()[1].split("-")[0])) or False
    if kind == "hand rule":
        rule = starting_points.hand_rule(*starting_points.HAND_RULES[label])
        return starting_points.quantizers_of(rule, space) if starting_points.offers(space, rule) \
            else False
    if kind == "exact allocation":
        return exact_quantizers(args, seed, goal, budget) or False
    return None


def train_points(args, seed, references):
    """Trains every reference of the seed not yet in points.csv; returns all its rows."""
    from solvers.report import pareto
    seed_dir = os.path.join(args.out, f"seed{seed}")
    points_csv = os.path.join(seed_dir, "points.csv")
    rows = pareto.read_csv(points_csv)[1] if os.path.exists(points_csv) else []
    todo = [r for r in references if r[0] not in {row["label"] for row in rows}]
    if not todo:
        return rows
    import autoq  # TensorFlow, only when something is to be trained
    from solvers import run
    from solvers.config import load_search_space
    from solvers.networks.base7 import layer_names
    from solvers.search import baselines
    search_args = autoq.parse_args(autoq_argv(args, seed))
    profile = run.profile_settings(search_args)
    conv, act = layer_names()
    space = load_search_space(args.config, conv + act)
    train_ds, val_ds, test_ds = run.datasets(search_args, profile)
    budget = baselines.Budget(profile.epochs + profile.retrain_epochs, profile.steps_per_epoch,
                              search_args.scale, search_args.learning_rate, seed, space.objective)
    data = baselines.Data(train_ds, val_ds, test_ds)
    for label, kind, goal, at in todo:
        quantizers = reference_quantizers(args, seed, space, label, kind, goal, at)
        if quantizers is False:
            print(f"\nseed {seed}: no {label}: the search space lacks its widths, or no "
                  f"trials.csv of its searches has a trial labelled {EXACT_START!r}", flush=True)
            continue
        bits = layer_bits(quantizers)
        # The same configuration trained again gives the same model (same seed, data order).
        same = next((r for r in rows if r["layer_bits"] == bits), None)
        if same is not None:
            print(f"\nseed {seed}: reference {label} = {same['label']} (same bits)", flush=True)
            row = dict(same)
        else:
            print(f"\nseed {seed}: reference {label} ({budget.epochs} epochs)", flush=True)
            row = baselines.train_point(label, quantizers, data, budget, seed_dir,
                                        os.path.join(args.tb_dir, f"seed{seed}", "points"),
                                        schedule=True)
        rows.append({**row, "label": label, "seed": seed, "kind": kind, "goal": goal,
                     "budget": at, "layer_bits": bits})
        files.write_csv(points_csv, POINT_COLUMNS, rows, extrasaction="ignore")
    return rows


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    try:
        check(args)
        searches, references = plan(args)
        check_kept(args, searches)
        from solvers.report import study_md
        for seed in args.seeds:
            for _, goal, budget, algo, name in (s for s in searches if s[0] == seed):
                run_search(args, seed, goal, budget, algo, name)
            train_points(args, seed, references)
        path = study_md.write_study(args.out, args.seeds, vars(args), time.time() - started)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"study: {path} ({time.strftime('%H:%M:%S', time.gmtime(time.time() - started))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
