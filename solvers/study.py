"""make study: does the search beat uniform quantization? Several seeds, equal training budget,
figures on test images that no selection step saw.

For each seed, into results/study/seed<N>/:
  search/        one search (autoq.py, its starting points first), without its own retrain;
  points.csv     every model the study compares, each trained from scratch for the same budget
                 (epochs per trial + retrain epochs, the retrain's learning-rate schedule), its
                 best epoch chosen on the validation images, then scored once on the test images:
                 the uniform baselines, float32, the hand rule, and the search's picks: at the
                 goal cost of uniform 2, 3 and 4 bits and of the hand rule, the trial with the best
                 validation PSNR that costs no more; and with 8-bit activations and kernels of at
                 most 4 bits on average, the same;
  models/        each point's .keras (make eval MODEL=...).
Then results/study/study.md and study.png (solvers/report/study_md.py). A killed study continues
where it stopped: a finished search is not run again, a point already in points.csv is kept.
"""
import argparse
import dataclasses
import os
import subprocess
import sys
import time

from solvers import files
from solvers.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINT_COLUMNS = ("seed", "label", "kind", "budget", "trial_id", "width", "size_bits", "bits",
                 "bops", "energy_pj", "cost", "val_psnr", "test_psnr", "test_loss", "best_epoch",
                 "epochs", "model", "layer_bits")
BUDGETS = ("uniform 2-bit", "uniform 3-bit", "uniform 4-bit", "hand rule k8-2 a3")
K4A8 = "8-bit activations, kernels <= 4 bits"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--algo", choices=("random", "bayesian", "hyperband"), default="random")
    p.add_argument("--profile", choices=("quick", "paper"), default="quick")
    # Measured choice (README, "Study"): 20 trials (12 of them starting points when the
    # sensitivity table exists) and every compared model trained 4 + 8 epochs keep 3 seeds near an
    # hour on 2 cores.
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--retrain-epochs", type=int, default=8)
    for name in ("epochs", "steps-per-epoch"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--uniform-widths", type=int, nargs="+", default=[2, 3, 4, 8],
                   help="uniform baselines to train (the targets need 2, 3, 4 and 8)")
    p.add_argument("--config", default="quantization_config.yaml")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=3)
    p.add_argument("--out", default="results/study")
    p.add_argument("--tb-dir", default="tb_logs/study")
    p.add_argument("--sensitivity", default="results/sensitivity/sensitivity.csv",
                   help="make sensitivity's table, for the searches' derived starting points (when "
                        "the file exists)")
    p.add_argument("--search-args", default="", help="more autoq.py options, one string "
                   "(e.g. --patch-size 8 --batch-size 4 for a tiny run)")
    return p.parse_args(argv)


def autoq_argv(args, seed):
    """autoq.py's options for this seed's search (and, parsed, the settings of its points)."""
    argv = ["--algo", args.algo, "--profile", args.profile, "--seed", str(seed),
            "--scale", str(args.scale),
            "--config", args.config, *args.search_args.split()]
    if args.sensitivity and os.path.isfile(args.sensitivity):
        argv += ["--sensitivity", args.sensitivity]
    for name in ("trials", "epochs", "steps_per_epoch"):
        if getattr(args, name) is not None:
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return argv


def run_search(args, seed, seed_dir):
    """The seed's search, in its own process (a fresh TensorFlow per search), retrain skipped: the
    study trains its picks itself, like every other point. A finished search is kept."""
    search_dir = os.path.join(seed_dir, "search")
    if os.path.exists(os.path.join(search_dir, "summary.yaml")):
        print(f"seed {seed}: search already done ({search_dir})", flush=True)
        return search_dir
    command = [sys.executable, os.path.join(REPO, "autoq.py"), *autoq_argv(args, seed),
               "--retrain-epochs", "0", "--run", "search", "--results-dir", seed_dir,
               "--tb-dir", os.path.join(args.tb_dir, f"seed{seed}")]
    print(f"seed {seed}: search: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command).returncode != 0:
        raise ConfigError(f"{search_dir}: the search of seed {seed} failed (its output is above)")
    return search_dir


def goal_cost(quantizers, space, scale):
    """The search goal's cost of base7 with these quantizers (what trials.csv's `cost` holds)."""
    from solvers.networks.base7 import base7
    from solvers.search import cost
    return cost.costs(base7(scale=scale, quantizers=quantizers), space.objective.goal)["cost"]


def _plan(args, space, trials):
    """[(label, kind, budget, trial row or None, quantizers)] of one seed: baselines, then picks."""
    from solvers.report import study_md
    from solvers.search import baselines, starting_points
    uniform = {b: baselines.uniform_quantizers(space, b) for b in args.uniform_widths}
    plan = [(f"uniform {b}-bit", "uniform", "", None, q) for b, q in uniform.items() if q]
    plan.append(("float32", "float", "", None, None))
    label, rule = next(iter(starting_points.HAND_RULES.items()))
    if starting_points.offers(space, starting_points.hand_rule(*rule)):  # its widths in the space
        plan.append((label, "hand rule", "", None,
                     starting_points.quantizers_of(starting_points.hand_rule(*rule), space)))
    # The budgets are the baselines' own costs (a limit may have kept a starting point from being
    # exactly uniform, e.g. biases fixed at 8 bits).
    costs = {label: goal_cost(q, space, args.scale) for label, kind, _, _, q in plan
             if kind in ("uniform", "hand rule")}
    for budget in BUDGETS:
        if budget in costs:
            pick = study_md.best_within(trials, lambda row, limit=costs[budget]:
                                        float(row["cost"]) <= limit * (1 + 1e-9))
            if pick:
                plan.append((f"search at {budget} cost", "search", budget, pick, None))
    pick = study_md.best_within(trials, study_md.is_k4a8)
    if pick:
        plan.append((f"search, {K4A8}", "search", K4A8, pick, None))
    return plan


def train_points(args, seed, seed_dir, search_dir):
    """Trains every point of the seed not yet in points.csv; returns all its rows."""
    import autoq
    from solvers import run
    from solvers.config import load_search_space
    from solvers.networks.base7 import layer_names
    from solvers.report import pareto, study_md
    from solvers.search import baselines
    search_args = autoq.parse_args(autoq_argv(args, seed))
    profile = run.profile_settings(search_args)
    if args.retrain_epochs is not None:
        profile = dataclasses.replace(profile, retrain_epochs=args.retrain_epochs)
    conv, act = layer_names()
    space = load_search_space(args.config, conv + act)
    trials = [r for r in pareto.read_csv(os.path.join(search_dir, "trials.csv"))[1]
              if r["status"] == "COMPLETED"]
    points_csv = os.path.join(seed_dir, "points.csv")
    rows = pareto.read_csv(points_csv)[1] if os.path.exists(points_csv) else []
    plan = [p for p in _plan(args, space, trials)
            if p[0] not in {r["label"] for r in rows}]
    if not plan:
        return rows
    train_ds, val_ds, test_ds = run.datasets(search_args, profile)
    budget = baselines.Budget(profile.epochs + profile.retrain_epochs, profile.steps_per_epoch,
                              search_args.scale, search_args.learning_rate, seed, space.objective)
    data = baselines.Data(train_ds, val_ds, test_ds)
    for label, kind, at, trial, quantizers in plan:
        if trial is not None:
            quantizers = study_md.trial_quantizers(trial)
        bits = study_md.bits_text(quantizers)
        # The same configuration trained again would give the same model (same seed, same
        # data order): a pick that is a baseline or an earlier pick shares its row and model.
        same = next((r for r in rows if r["layer_bits"] == bits), None)
        if same is not None:
            print(f"\nseed {seed}: point {label} = {same['label']} (same bits)", flush=True)
            row = {k: v for k, v in same.items() if k not in ("label", "kind", "budget")}
        else:
            print(f"\nseed {seed}: point {label} ({budget.epochs} epochs)", flush=True)
            row = baselines.train_point(label, quantizers, data, budget, seed_dir,
                                        os.path.join(args.tb_dir, f"seed{seed}", "points"),
                                        schedule=True)
        rows.append({**row, "label": label, "seed": seed, "kind": kind, "budget": at,
                     "trial_id": trial["trial_id"] if trial else row.get("trial_id", ""),
                     "layer_bits": bits})
        files.write_csv(points_csv, POINT_COLUMNS, rows, extrasaction="ignore")
    return rows


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    try:
        from solvers.report import study_md
        for seed in args.seeds:
            seed_dir = os.path.join(args.out, f"seed{seed}")
            os.makedirs(seed_dir, exist_ok=True)
            search_dir = run_search(args, seed, seed_dir)
            train_points(args, seed, seed_dir, search_dir)
        path = study_md.write_study(args.out, args.seeds, vars(args), time.time() - started)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"study: {path} ({time.strftime('%H:%M:%S', time.gmtime(time.time() - started))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
