"""make study: at a budget the user names, does the search find a better model than every layer
at one width, the hand rules and the sensitivity table's exact allocation at that cost?

For each seed, into <out>/seed<N>/:
  searches/<goal>_<budget>_<algo>/  one budgeted search per goal, budget and algorithm (autoq.py
      --goal --budget --no-hand-rules, the sensitivity table given, so the exact allocation at the
      budget is among its starting points; its finalists retrained to the full budget, trial epochs
      + retrain epochs). Its winner (best_config.yaml) is the study's pick. Algorithm gradient:
      autoq.py --algo gradient, the same options, its learned widths the pick (no trials).
  points.csv, models/  every point trained from scratch for the same budget (trial epochs +
      retrain epochs, the retrain's learning-rate schedule, the same initial state and data
      order: baselines.train_point), its best epoch chosen on the validation images, scored once
      on the test images: the references, uniform 2, 3, 4, 8-bit (and the width of every
      uniformN budget) as the limit leaves them (the shipped one keeps biases at 8 bits: the
      configuration a uniformN budget prices), float32, the hand rules k8-2 a3 and k8-2 a4, and
      the exact allocation alone at each goal and budget (the configuration its searches started
      from, read from their trials.csv); then each search's pick ("pick <search folder>"), so a
      pick and a reference of one seed differ in their configuration only. A point with the bits
      of one trained already (a pick at uniform 3-bit) is that point's row, not trained again.
The study compares the picks so trained with the references; the search's own retrained model
(summary.yaml: test.psnr) is reported beside them. Then <out>/study.md and study.png
(solvers/report/study_md.py), over every finished search of these seeds in <out>. Options,
checks and plan: solvers/study_plan.py. A killed study continues where it stopped: a finished
search is kept, a point already in points.csv is kept (trained again when its configuration
changed, e.g. a search run again). Bad input is one `error:` line, exit 2, nothing written.
"""
import os
import subprocess
import sys
import time

from solvers import files
from solvers.config import ConfigError
from solvers.report.study_rows import widths_text
from solvers.search.starting_points import EXACT_ALLOCATION as EXACT_START
from solvers.study_plan import (
    autoq_argv,
    check,
    check_kept,
    parse_args,
    picks,
    plan,
    search_dir,
    search_name,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POINT_COLUMNS = ("seed", "label", "kind", "goal", "budget", "width", "size_bits", "bits", "bops",
                 "energy_pj", "cost", "val_psnr", "test_psnr", "test_loss", "best_epoch", "epochs",
                 "model", "layer_bits")
# EXACT_START: the exact allocation's label in a search's trials.csv `start` column.


def run_search(args, seed, goal, budget, algo, name):
    """One search in its own process (a fresh TensorFlow per search); a finished one is kept."""
    searches_dir = os.path.join(args.out, f"seed{seed}", "searches")
    folder = os.path.join(searches_dir, name)
    if os.path.exists(os.path.join(folder, "summary.yaml")):
        print(f"seed {seed}: search {name} already done", flush=True)
        return folder
    command = [sys.executable, os.path.join(REPO, "autoq.py"),
               *autoq_argv(args, seed, goal, budget, algo), "--run", name,
               "--results-dir", searches_dir, "--tb-dir", os.path.join(args.tb_dir, f"seed{seed}")]
    print(f"seed {seed}: search: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise ConfigError(f"{folder}: the search failed (its output is above)")
    return folder


def layer_bits(quantizers, filters=None):
    """'k 8.2.2.2.2.2.8 b 8.… a 3.…' (kernel, bias, activation bits per layer), or float32;
    with filters (other than base7's) ' f 28.…' after them."""
    from solvers.report.pareto import bits_of
    text = "float32" if not quantizers else \
        widths_text(lambda layer, kind: bits_of(quantizers[layer][kind]))
    return text + (f" f {'.'.join(str(n) for n in filters.values())}" if filters else "")


def exact_quantizers(args, seed, goal, budget):
    """base7's quantizers of the exact allocation at this goal and budget, from a trials.csv of
    the seed's searches there (its `start` label); None when none of them has it."""
    from solvers.networks.base7 import quantizers_from_hp
    from solvers.report import pareto
    for algo in args.algos:
        path = os.path.join(search_dir(args.out, seed, search_name(goal, budget, algo)),
                            "trials.csv")
        rows = pareto.read_csv(path)[1] if os.path.exists(path) else []
        row = next((r for r in rows if r.get("start") == EXACT_START), None)
        if row is not None:
            return quantizers_from_hp(row)
    return None


def uniform_quantizers(args, space, bits):
    """base7's quantizers of "every layer at `bits`" as the limit leaves it, as a search's
    starting point and a uniformN budget have it (starting_points.point_values: the shipped
    limit keeps biases at 8 bits); None for a width some kind lacks."""
    from solvers.networks.base7 import quantizer_values, quantizers_from_hp
    from solvers.networks.layout import layer_names
    from solvers.search import starting_points
    from solvers.search.space import search_choices
    if bits not in space.uniform_widths():
        return None
    choices = search_choices(space, *layer_names(), args.config)
    bits_of = {**space.kernel, **space.bias, **space.activation}
    values = starting_points.point_values(starting_points.uniform(bits), choices, bits_of)
    return quantizers_from_hp(quantizer_values(choices, values))


def pick_config(args, seed, label):
    """(quantizers, filters or None for base7's) of a pick: its search's best_config.yaml;
    None when there is none."""
    from solvers.networks.layout import base_filters
    name = label.split(" ", 1)[1]
    document = files.read_yaml(os.path.join(search_dir(args.out, seed, name), "best_config.yaml"),
                               missing=None)
    if not document:
        return None
    network = document.get("network") or {}
    filters = document.get("filters")
    designed = base_filters(network.get("scale", args.scale), m=network.get("m", 4))
    return document["quantizers"], (None if not filters or filters == designed else filters)


def point_config(args, seed, space, label, kind, goal, budget):
    """(base7's quantizers (None: float32), filters (None: base7's)) of a point; False when
    the space lacks it (or, for the exact allocation and a pick, its search has not written it)."""
    from solvers.search import starting_points
    if kind == "uniform":
        quantizers = uniform_quantizers(args, space, int(label.split()[1].split("-")[0]))
        return (quantizers, None) if quantizers else False
    if kind == "hand rule":
        rule = starting_points.hand_rule(*starting_points.HAND_RULES[label])
        return (starting_points.quantizers_of(rule, space), None) \
            if starting_points.offers(space, rule) else False
    if kind == "exact allocation":
        quantizers = exact_quantizers(args, seed, goal, budget)
        return (quantizers, None) if quantizers else False
    if kind == "pick":
        return pick_config(args, seed, label) or False
    return None, None


def train_points(args, seed, points):
    """Trains every point of the seed ([(label, kind, goal, budget)]: plan's references, then
    picks) not yet in points.csv with its configuration; returns all its rows. A point with the
    bits of a row already there takes that row (the same seed, data order and epochs train the
    same model)."""
    from solvers.config import load_search_space
    from solvers.networks.layout import layer_names
    from solvers.report import pareto
    seed_dir = os.path.join(args.out, f"seed{seed}")
    points_csv = os.path.join(seed_dir, "points.csv")
    rows = pareto.read_csv(points_csv)[1] if os.path.exists(points_csv) else []
    space = load_search_space(args.config, [n for names in layer_names() for n in names])
    configs = {p[0]: point_config(args, seed, space, *p) for p in points}
    wanted = {label: layer_bits(*c) for label, c in configs.items() if c is not False}
    stale = [r for r in rows if r["label"] in wanted and r["layer_bits"] != wanted[r["label"]]]
    for row in stale:
        print(f"seed {seed}: {row['label']} was trained as {row['layer_bits']}, now "
              f"{wanted[row['label']]}: trained again", flush=True)
    rows = [r for r in rows if r not in stale]
    todo = [p for p in points if p[0] not in {row["label"] for row in rows}]
    if not todo:
        return rows
    import autoq  # TensorFlow's datasets, only when something is to be trained
    from solvers import run
    from solvers.search import baselines
    search_args = autoq.parse_args(autoq_argv(args, seed))
    profile = run.profile_settings(search_args)
    train_ds, val_ds, test_ds = run.datasets(search_args, profile)
    budget = baselines.Budget(profile.epochs + profile.retrain_epochs, profile.steps_per_epoch,
                              search_args.scale, search_args.learning_rate, seed, space.objective)
    data = baselines.Data(train_ds, val_ds, test_ds)
    for label, kind, goal, at in todo:
        if configs[label] is False:
            print(f"\nseed {seed}: no {label}: the search space lacks its widths, no trials.csv "
                  f"of its searches has a trial labelled {EXACT_START!r}, or its search wrote "
                  "no best_config.yaml", flush=True)
            continue
        quantizers, filters = configs[label]
        # The same configuration trained again gives the same model (same seed, data order).
        same = next((r for r in rows if r["layer_bits"] == wanted[label]), None)
        if same is not None:
            print(f"\nseed {seed}: {label} = {same['label']} (same bits)", flush=True)
            row = dict(same)
        else:
            print(f"\nseed {seed}: {label} ({budget.epochs} epochs from scratch)", flush=True)
            row = baselines.train_point(label, quantizers, data, budget, seed_dir,
                                        os.path.join(args.tb_dir, f"seed{seed}", "points"),
                                        filters=filters, schedule=True)
        rows.append({**row, "label": label, "seed": seed, "kind": kind, "goal": goal,
                     "budget": at, "layer_bits": wanted[label]})
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
            train_points(args, seed, references + picks(searches, seed))
        path = study_md.write_study(args.out, args.seeds, vars(args), time.time() - started)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"study: {path} ({time.strftime('%H:%M:%S', time.gmtime(time.time() - started))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
