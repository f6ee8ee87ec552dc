"""<out>/study.md and study.png from the seeds' searches and points.csv (solvers/study.py writes
them; solvers/report/study_rows.py reads and compares them): at a budget, is the search's pick
better than uniform quantization, the hand rules and the exact allocation alone at that cost?

The pick is scored as the references are: trained from scratch, same seed, epochs and schedule
(solvers/study.py), so pick and reference of one seed differ in their configuration only; the
search's own retrained model has a column of its own. Every figure is on the held-out test
images: trials were scored, finalists and best epochs chosen on the validation images.
Targets (the issue's), mean over the seeds:
  at uniform 3-bit's BOPs: >= +0.3 dB over uniform 3-bit, and above both hand rules;
  at uniform 4-bit's BOPs: >= +0.2 dB over uniform 4-bit;
  at uniform 3-bit's bits: >= +0.3 dB over uniform 3-bit (a GOALS=bits study);
  in some row, the pick is a trial the search proposed in >= 2 of 3 seeds;
  no trained trial costs more than its budget;
  (issue 21) a gradient run's wall time at most a third of one search's (the Wall time lines).
"""
import os

import numpy as np

from solvers import files
from solvers.report import pareto, study_rows
from solvers.report.study_rows import HAND_RULES, SOURCES

ALGO_MARKERS = {"random": "*", "evolution": "P", "bayesian": "X", "hyperband": "h",
                "gradient": "v"}
REFERENCE_MARKERS = {"hand rule": "^", "exact allocation": "D"}


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}" if len(values) > 1 \
        else f"{values[0]:.2f}"


def _span(fractions):
    """'97.0%–99.5%' (one value when they agree; – for none)."""
    if not fractions:
        return "–"
    low, high = f"{min(fractions):.1%}", f"{max(fractions):.1%}"
    return low if low == high else f"{low}–{high}"


def _count(n, noun):
    return f"{n} {noun}{'s' * (n != 1)}"


def _minutes(seconds):
    return f"{seconds / 60:.1f} min"


def _where(goal, budget):
    return f"{goal} at {budget}"


def targets_md(table):
    """The targets' lines: each met or not, and by how much."""
    lines = []
    for goal, budget, label, target, row, diff, met in study_rows.target_results(table):
        want = "above" if target == 0 else f">= {target:+.2f} dB"
        head = f"- {_where(goal, budget)}, pick vs {label} ({want})"
        if row is None:
            lines.append(f"{head}: not run (make study GOALS={goal} BUDGETS={budget}).")
        elif met is None:
            lines.append(f"{head}, {row.algo}: no reference of that name trained.")
        else:
            margin = diff.mean - target
            by = f"{margin:.2f} dB to spare" if met else f"{-margin:.2f} dB short"
            cost = row.ref_costs.get(label)
            lines.append(f"{head}, {row.algo}: {diff.text(noise=False)} dB over "
                         f"{len(diff.values)} seed(s): **{'met' if met else 'not met'}**, {by}"
                         + (", inside the seeds' spread" if diff.noise else "")
                         + (f" (the reference costs {cost:.1%} of the budget)" if cost else "")
                         + ".")
    met, best, count, seeds = study_rows.proposed_target(table)
    if best is None:
        lines.append("- a proposed trial as the pick in >= 2 of 3 seeds: no search.")
    else:
        lines.append(f"- a proposed trial as the pick in >= 2 of 3 seeds, in some row: "
                     f"**{'met' if met else 'not met'}** (the most: {count} of {seeds} seed(s), "
                     f"{_where(best.goal, best.budget)}, {best.algo}).")
    over = [(s, r) for row in table for s in row.picks for r in s.over_budget()]
    trained = sum(len(s.trained()) for row in table for s in row.picks)
    redrawn, repaired = (sum(int((s.summary.get("proposals") or {}).get(k) or 0)
                             for row in table for s in row.picks) for k in ("redrawn", "repaired"))
    lines.append(f"- no trained trial over its budget: **{'met' if not over else 'not met'}** "
                 f"({len(over)} of {trained} trained trials over; before training, {redrawn} "
                 f"proposals were redrawn and {repaired} repaired into the band)."
                 + "".join(f" Seed {s.seed} {_where(s.goal, s.budget['spec'])} {s.algo}: "
                           + ("its final model" if r["trial_id"] == "final"
                              else f"trial {r['trial_id']}")
                           + f" at {float(r['cost']) / float(s.budget['cost']):.2%}"
                           " of the budget." for s, r in over))
    return lines


def picks_md(table):
    """The table of rows: pick sources, test PSNR (from scratch; the search's own model),
    differences, costs, redraws, wall time."""
    refs = ["uniform at the budget", *HAND_RULES, "exact allocation alone"]
    lines = ["| goal at budget | algorithm | pick: " + " / ".join(SOURCES) + " | test PSNR, "
             "pick from scratch | search's own model | " + " | ".join(f"vs {r}" for r in refs)
             + " | pick cost / budget | redrawn / repaired | wall time per search |",
             "|---|---|---|---:|---:|" + "---:|" * len(refs) + "---:|---:|---:|"]
    for row in table:
        sources = row.sources()
        exact = study_rows.exact_label(row.goal, row.budget)
        cells = []
        for label in (row.uniform, *HAND_RULES, exact):
            diff = row.diffs.get(label)
            name = f"{label}: " if label == row.uniform and label else ""
            cells.append(f"{name}{diff.text()}" if diff and diff.values else "–")
        costs = [p.cost(row.column) / row.cost for p in row.picks
                 if p.cost(row.column) is not None]
        proposals = [p.summary.get("proposals") or {} for p in row.picks]
        elapsed = row.elapsed()
        lines.append(
            f"| {_where(row.goal, row.budget)} ({pareto.in_units(row.cost, row.column)}) | "
            f"{row.algo} | " + " / ".join(str(sources[s]) for s in SOURCES)
            + f" of {len(row.picks)} | {_mean_std(row.psnr())} | {_mean_std(row.own_psnr())} | "
            + " | ".join(cells)
            + " | " + _span(costs)
            + f" | {sum(int(p.get('redrawn') or 0) for p in proposals)} / "
            f"{sum(int(p.get('repaired') or 0) for p in proposals)} | "
            + (_minutes(np.mean(elapsed)) if elapsed else "–") + " |")
    return lines


def wall_time_md(table):
    """Per goal and budget: each algorithm's mean wall time against one search's (the mean over
    every Keras Tuner search there), as a ratio; a gradient run's against issue 21's third."""
    lines = []
    for goal, budget in dict.fromkeys((r.goal, r.budget) for r in table):
        here = [r for r in table if (r.goal, r.budget) == (goal, budget) and r.elapsed()]
        if not here:
            continue
        searches = [t for r in here if r.algo in study_rows.SEARCHES for t in r.elapsed()]
        base = float(np.mean(searches)) if searches else None
        parts = []
        for r in here:
            mean = float(np.mean(r.elapsed()))
            ratio = f" = {mean / base:.2f} × one search's" if base else ""
            third = ("" if r.algo != "gradient" or not base else
                     f" (at most a third: **{'met' if mean <= base / 3 else 'not met'}**)")
            parts.append(f"{r.algo} {_minutes(mean)}{ratio}{third}")
        head = (f"one search {_minutes(base)} (mean of {len(searches)})" if base
                else "no search")
        lines.append(f"- {_where(goal, budget)}: {head}; " + "; ".join(parts) + ".")
    return lines


def references_md(table, points, seeds):
    """Every reference: test PSNR per seed, and its cost relative to each budget."""
    budgets = list({(r.goal, r.budget): r for r in table}.values())
    lines = ["| reference | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std | "
             + " | ".join(f"cost / {_where(r.goal, r.budget)}" for r in budgets) + " | bits |",
             "|---|" + "---:|" * (len(seeds) + 1 + len(budgets)) + "---|"]
    labels = list(dict.fromkeys(p["label"] for s in seeds for p in points[s]
                                if p.get("kind") != "pick"))  # the picks: the tables above
    for label in labels:
        found = {s: next((p for p in points[s] if p["label"] == label), None) for s in seeds}
        psnr = {s: pareto.number(p["test_psnr"]) if p else None for s, p in found.items()}
        first = next(p for p in found.values() if p)
        costs = [f"{float(first[r.column]) / r.cost:.1%}"
                 if pareto.number(first.get(r.column)) is not None else "–" for r in budgets]
        lines.append(f"| {label} | " + " | ".join("–" if psnr[s] is None else f"{psnr[s]:.2f}"
                                                  for s in seeds)
                     + f" | {_mean_std(psnr.values())} | " + " | ".join(costs)
                     + f" | {first['layer_bits']} |")
    return lines


def every_pick_md(table):
    lines = [("| goal at budget | algorithm | seed | source | start | trial | cost / budget | "
              "val PSNR trial → final | test PSNR from scratch | search's own model | bits |"),
             "|---|---|---:|---|---|---:|---:|---:|---:|---:|---|"]
    for row in table:
        for p in row.picks:
            final = next((f for f in p.summary.get("finalists") or []
                          if str(f.get("trial_id")) == str(p.winner.get("trial_id"))), None)
            if final is None:  # a gradient run: as learned → after its retrain
                final = {"trial_val_psnr": p.summary.get("val_psnr_search"),
                         "final_val_psnr": p.summary.get("val_psnr_retrained")}
            cost = p.cost(row.column)
            trial = p.winner.get("trial_id")
            lines.append(
                f"| {_where(row.goal, row.budget)} | {row.algo} | {p.seed} | "
                f"{p.winner.get('source') or '–'} | {p.winner.get('start') or '–'} | "
                f"{'–' if trial is None else trial} | "
                + ("–" if cost is None else f"{cost / row.cost:.1%}") + " | "
                + f"{_num(final.get('trial_val_psnr'))} → {_num(final.get('final_val_psnr'))} | "
                f"{_num(p.scratch_psnr)} | {_num(p.test_psnr)} | {p.bits() or '–'} |")
    return lines


def _num(value):
    value = pareto.number(value)
    return "–" if value is None else f"{value:.2f}"


def plot(table, points, seeds, path):
    """Test PSNR against the goal's cost, one panel per goal: per seed (colour) the references
    (uniform curve, hand rules, exact allocations) and the picks trained from scratch (marker per
    algorithm)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    goals = list(dict.fromkeys(r.goal for r in table))
    fig, axes = plt.subplots(1, len(goals), figsize=(6.5 * len(goals), 5), layout="constrained",
                             squeeze=False)
    for ax, goal in zip(axes[0], goals):
        column = pareto.GOAL_COLUMNS[goal]
        unit, divisor, what = pareto.UNITS[column]
        for i, s in enumerate(seeds):
            color = f"C{i}"
            refs = [p for p in points[s] if p.get("kind") != "float"
                    and pareto.number(p.get(column)) and pareto.number(p.get("test_psnr"))]
            uniform = sorted((p for p in refs if p["kind"] == "uniform"),
                             key=lambda p: float(p[column]))
            ax.plot([float(p[column]) / divisor for p in uniform],
                    [float(p["test_psnr"]) for p in uniform], "s--", color=color, ms=4,
                    label=f"seed {s}: uniform")
            for kind, marker in REFERENCE_MARKERS.items():
                pts = [p for p in refs if p["kind"] == kind
                       and (kind != "exact allocation" or p.get("goal") == goal)]
                ax.scatter([float(p[column]) / divisor for p in pts],
                           [float(p["test_psnr"]) for p in pts], marker=marker, s=35,
                           color=color, alpha=0.7, label=f"seed {s}: {kind}" if pts else None)
            for row in (r for r in table if r.goal == goal):
                pick = next((p for p in row.picks if p.seed == s), None)
                cost = pick.cost(column) if pick else None
                if cost is not None and pick.scratch_psnr is not None:
                    ax.scatter([cost / divisor], [pick.scratch_psnr], s=110, color=color,
                               marker=ALGO_MARKERS.get(row.algo, "o"), edgecolor="black",
                               label=f"seed {s}: {row.algo} pick")
        for row in {r.budget: r for r in table if r.goal == goal}.values():
            ax.axvline(row.cost / divisor, color="grey", ls=":", lw=1)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=6, ncol=2)
        ax.set_xscale("log")
        ax.set_xlabel(f"{what} ({unit}, log); dotted: the budgets")
        ax.set_ylabel("test Y-PSNR (dB)")
        ax.set_title(f"goal {goal}")
        ax.grid(True, which="both", alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_study(out, seeds, settings, elapsed):
    """study.md and study.png in `out`; returns study.md's path."""
    searches = study_rows.read_searches(out, seeds)
    points = study_rows.read_points(out, seeds)
    table = study_rows.rows(searches, points)
    if table:
        plot(table, points, seeds, os.path.join(out, "study.png"))
    s = settings
    images = {int((p.summary.get("test") or {}).get("images") or 0) for p in searches} - {0}
    lines = ["# Study: the budgeted search against uniform, hand rules and the exact allocation",
             "",
             (f"Seeds {', '.join(map(str, seeds))}; per goal, budget and algorithm one search "
              f"(--no-hand-rules; {_count(s.get('trials'), 'trial')} of "
              f"{_count(s.get('epochs'), 'epoch')}, the {s.get('finalists')} best on validation "
              f"retrained {_count(s.get('retrain_epochs'), 'more epoch')}, the best of them the "
              "pick; a gradient run learns its widths instead). How the pick is scored: its "
              "configuration (best_config.yaml) is trained from scratch exactly as every "
              "reference, with the same seed, initial state, data order, epochs (trial + "
              "retrain) and learning-rate schedule, its best epoch chosen on the validation "
              "images; so a pick and a reference of one seed differ in their configuration only "
              "(the differences are paired per seed). The search's own model (its finalist "
              "retrained: trial epochs, then retrain epochs) is reported apart as *search's own "
              "model*. Uniform N-bit: kernels and activations at N bits, biases as the limit "
              "leaves them (the configuration a uniformN budget prices). Test PSNR on the "
              "held-out test images"
              + (f" ({', '.join(map(str, sorted(images)))})" if images else "")
              + "; mean ± std over the seeds (std with n − 1); a difference is *noise* when its "
              f"mean lies within one std of zero. Total time of this invocation "
              f"{_minutes(elapsed)}."), ""]
    if table:
        lines += ["![test PSNR against cost](study.png)", ""]
    lines += ["## Targets", "", *targets_md(table), "", "## Picks", "",
              ("Source: the pick (the best finalist) was a trial the search proposed, a starting "
               "point, the exact allocation, or a gradient run's learned widths (count over "
               "seeds). Differences: the test PSNR of the pick trained from scratch minus the "
               "reference's, per seed, in dB."), "", *picks_md(table), "",
              "## Wall time", "", *wall_time_md(table), "",
              "## References", "", *references_md(table, points, seeds), "",
              "## Every pick", "", *every_pick_md(table)]
    path = os.path.join(out, "study.md")
    files.write_text(path, "\n".join(lines) + "\n")
    return path
