"""make study's numbers, read back from <out>/seed<N>/ (solvers/study.py writes them): each
budgeted search's pick against the references of its seed, the issue's targets, and every trained
trial's cost against its budget. No TensorFlow: solvers/report/study_md.py writes them out.

A row is one goal, budget and algorithm over the seeds. The pick is scored as the references
are: its configuration (best_config.yaml) trained from scratch by solvers/study.py, points.csv's
"pick <search folder>" row; the search's own retrained model (summary.yaml test.psnr) is kept
beside it. Differences are per seed (that pick and a reference of the same seed, both on the test
images), then mean ± std over the seeds (std with n - 1); a difference is "noise" when its mean
lies within one std of zero. A gradient run (autoq.py --algo gradient) is read like a search: its
folder has no trials.csv, its summary.yaml's winner source is "gradient".
"""
import dataclasses
import math
import os

import numpy as np

from solvers import files
from solvers.config import ConfigError
from solvers.config_objective import parse_budget
from solvers.networks.layout import layer_names
from solvers.report import pareto

ALGOS = ("random", "bayesian", "hyperband", "evolution", "gradient")  # rows' order in a budget
SEARCHES = ALGOS[:4]  # Keras Tuner searches (trials.csv); gradient learns its widths
SOURCES = ("proposed", "starting point", "exact allocation", "gradient")  # winner.source
HAND_RULES = ("hand rule k8-2 a3", "hand rule k8-2 a4")  # search/starting_points.py HAND_RULES
# The targets: (goal, budget, reference, least mean difference in dB; 0: above it).
TARGETS = (("bops", "uniform3", "uniform 3-bit", 0.3), ("bops", "uniform3", HAND_RULES[0], 0.0),
           ("bops", "uniform3", HAND_RULES[1], 0.0), ("bops", "uniform4", "uniform 4-bit", 0.2),
           ("bits", "uniform3", "uniform 3-bit", 0.3))
TOLERANCE = 1e-9  # relative: a cost equal to its budget up to rounding is within it


def exact_label(goal, budget):
    """points.csv's label of the exact allocation alone at one goal and budget."""
    return f"exact allocation, {goal} at {budget}"


def pick_label(name):
    """points.csv's label of a search's pick trained from scratch (name: its folder)."""
    return f"pick {name}"


def budget_key(text):
    """A budget's normal form (uniform3 and "uniform 3" alike); unparsable text as itself."""
    try:
        return parse_budget("budget", str(text))
    except ConfigError:
        return ("text", str(text))


def widths_text(bits):
    """'k 8.2.2.2.2.2.8 b 8.… a 3.…': bits(layer, kind) of every kernel, bias and activation."""
    conv, act = layer_names()
    return " ".join(kind[0] + " " + ".".join(str(bits(layer, kind)) for layer in layers)
                    for kind, layers in (("kernel", conv), ("bias", conv), ("activation", act)))


def row_bits(row):
    """widths_text of a trials.csv row."""
    return widths_text(lambda layer, kind: pareto.layer_bits(row, f"{layer}_{kind}"))


@dataclasses.dataclass
class Search:
    """One finished search (or gradient run) of one seed: its folder name, summary.yaml,
    trials.csv rows (none for a gradient run) and best_config.yaml's quantizers; `point`, its
    pick's points.csv row (trained from scratch), is set by rows()."""
    seed: int
    algo: str
    summary: dict
    trials: list
    name: str = ""
    quantizers: dict = None
    point: dict = None

    @property
    def budget(self):
        return self.summary["budget"]

    @property
    def goal(self):
        return self.budget["goal"]

    @property
    def test_psnr(self):
        return pareto.number((self.summary.get("test") or {}).get("psnr"))

    @property
    def scratch_psnr(self):
        """The pick trained from scratch: its points.csv row's test PSNR (None: not trained)."""
        return pareto.number((self.point or {}).get("test_psnr"))

    def bits(self):
        """widths_text of the pick as trained from scratch (its points.csv row: filters too, as
        ` f …`, when they differ from base7's), else of best_config.yaml, else of its trials.csv
        row; None: unknown."""
        if self.point and self.point.get("layer_bits"):
            return self.point["layer_bits"]
        if self.quantizers:
            return widths_text(lambda layer, kind: pareto.bits_of(self.quantizers[layer][kind]))
        row = self.winner_row()
        return row_bits(row) if row else None

    def cost(self, column):
        """The pick's cost in `column` (summary.yaml costs), or None."""
        return pareto.number((self.summary.get("costs") or {}).get(column))

    @property
    def winner(self):
        return self.summary.get("winner") or {}

    def winner_row(self):
        return next((r for r in self.trials
                     if str(r.get("trial_id")) == str(self.winner.get("trial_id"))), None)

    def trained(self):
        """The configurations it trained, as trials.csv rows (a cost and a validation PSNR); a
        gradient run's (no trials.csv): its final model, {trial_id: "final", cost}."""
        if not self.trials and self.cost(pareto.GOAL_COLUMNS[self.goal]) is not None:
            return [{"trial_id": "final", "cost": self.cost(pareto.GOAL_COLUMNS[self.goal])}]
        return [r for r in self.trials if pareto.number(r.get("val_psnr")) is not None
                and pareto.number(r.get("cost")) is not None]

    def over_budget(self):
        """The trained configurations (trained()) at more than the budget."""
        limit = float(self.budget["cost"]) * (1 + TOLERANCE)
        return [r for r in self.trained() if float(r["cost"]) > limit]


def read_searches(out, seeds):
    """Every finished budgeted search (summary.yaml with a budget) of these seeds."""
    found = []
    for seed in seeds:
        folder = os.path.join(out, f"seed{seed}", "searches")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            summary = files.read_yaml(os.path.join(folder, name, "summary.yaml"), missing=None)
            if not summary or not summary.get("budget"):
                continue
            run = files.read_yaml(os.path.join(folder, name, "run.yaml"), missing={})
            path = os.path.join(folder, name, "trials.csv")
            trials = pareto.read_csv(path)[1] if os.path.exists(path) else []
            config = files.read_yaml(os.path.join(folder, name, "best_config.yaml"), missing={})
            found.append(Search(seed, run.get("algo", name.rsplit("_", 1)[-1]), summary, trials,
                                name, config.get("quantizers")))
    return found


def read_points(out, seeds):
    """{seed: points.csv rows} (none: [])."""
    paths = {s: os.path.join(out, f"seed{s}", "points.csv") for s in seeds}
    return {s: pareto.read_csv(p)[1] if os.path.exists(p) else [] for s, p in paths.items()}


def reference(points, label, goal=None, budget=None):
    """The points.csv row of a reference (an exact allocation: by its goal and budget)."""
    for row in points:
        if goal is None and row["label"] == label:
            return row
        if goal is not None and row.get("kind") == "exact allocation" and row.get("goal") == goal \
                and budget_key(row.get("budget")) == budget_key(budget):
            return row
    return None


@dataclasses.dataclass
class Diff:
    """Per-seed differences (dB) of a pick against one reference."""
    values: list

    @property
    def mean(self):
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self):
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None

    @property
    def noise(self):
        return self.std is not None and abs(self.mean) <= self.std

    def text(self, noise=True):
        """'+0.25 ± 0.04', with ' (noise)' when it is (and `noise`)."""
        if not self.values:
            return "–"
        mean = self.mean if abs(self.mean) >= 0.005 else 0.0  # no "-0.00"
        spread = f" ± {self.std:.2f}" if self.std is not None else ""
        return f"{mean:+.2f}{spread}" + (" (noise)" if noise and self.noise else "")


@dataclasses.dataclass
class Row:
    """One goal, budget and algorithm over the seeds."""
    goal: str
    budget: str          # as summary.yaml's budget.spec
    algo: str
    cost: float          # the budget in the goal's unit
    picks: list          # Search, one per seed
    uniform: str = ""    # the uniform reference at the budget's width ("": none)
    diffs: dict = dataclasses.field(default_factory=dict)  # reference label: Diff
    ref_costs: dict = dataclasses.field(default_factory=dict)  # label: mean cost / budget

    @property
    def column(self):
        return pareto.GOAL_COLUMNS[self.goal]

    def sources(self):
        return {s: sum(p.winner.get("source") == s for p in self.picks) for s in SOURCES}

    def psnr(self):
        """The picks trained from scratch: test PSNR per seed."""
        return [p.scratch_psnr for p in self.picks if p.scratch_psnr is not None]

    def own_psnr(self):
        """The searches' own retrained models: test PSNR per seed."""
        return [p.test_psnr for p in self.picks if p.test_psnr is not None]

    def elapsed(self):
        """Wall time of each search (summary.yaml elapsed_s), in seconds."""
        return [float(p.summary["elapsed_s"]) for p in self.picks if p.summary.get("elapsed_s")]


def uniform_label(budget, cost, points, column):
    """The uniform reference a budget is set against: uniformN's N, else the widest uniform
    reference that costs no more than the budget ("" for none)."""
    kind, value = budget_key(budget)
    if kind == "uniform":
        return f"uniform {int(value)}-bit"
    within = [(float(r[column]), r["label"]) for r in points if r.get("kind") == "uniform"
              and pareto.number(r.get(column)) is not None
              and float(r[column]) <= cost * (1 + TOLERANCE)]
    return max(within)[1] if within else ""


def rows(searches, points):
    """One Row per goal, budget and algorithm, by goal, budget cost, then algorithm."""
    grouped = {}
    for s in searches:
        grouped.setdefault((s.goal, budget_key(s.budget["spec"]), s.algo), []).append(s)
    result = []
    for (goal, _, algo), picks in grouped.items():
        picks.sort(key=lambda p: p.seed)
        for p in picks:
            p.point = reference(points.get(p.seed, []), pick_label(p.name))
        first = picks[0]
        row = Row(goal, str(first.budget["spec"]), algo, float(first.budget["cost"]), picks)
        every = [p for rows_ in points.values() for p in rows_]
        row.uniform = uniform_label(row.budget, row.cost, every, row.column)
        for label in (row.uniform, *HAND_RULES, exact_label(goal, row.budget)):
            if not label:
                continue
            exact = label.startswith("exact allocation")
            values, costs = [], []
            for p in picks:
                ref = reference(points.get(p.seed, []), label, *((goal, row.budget) if exact
                                                                 else ()))
                if ref is None:
                    continue
                if pareto.number(ref.get(row.column)) is not None:
                    costs.append(float(ref[row.column]) / row.cost)
                if p.scratch_psnr is not None and pareto.number(ref.get("test_psnr")) is not None:
                    values.append(p.scratch_psnr - float(ref["test_psnr"]))
            row.diffs[label] = Diff(values)
            if costs:
                row.ref_costs[label] = float(np.mean(costs))
        result.append(row)
    order = {g: i for i, g in enumerate(("bits", "bops", "energy"))}
    return sorted(result, key=lambda r: (order.get(r.goal, 9), r.goal, r.cost,
                                         ALGOS.index(r.algo) if r.algo in ALGOS else 9, r.algo))


def target_results(table):
    """[(goal, budget, reference, target, row or None, Diff or None, met or None)] for every
    target and every algorithm that ran there (row None: no search at that goal and budget)."""
    results = []
    for goal, budget, label, target in TARGETS:
        matching = [r for r in table if r.goal == goal
                    and budget_key(r.budget) == budget_key(budget)]
        for row in matching or [None]:
            diff = row.diffs.get(label) if row else None
            met = None
            if diff is not None and diff.values:
                met = diff.mean > 0 if target == 0 else diff.mean >= target - 1e-12
            results.append((goal, budget, label, target, row, diff, met))
    return results


def proposed_target(table):
    """(met, best row or None, its proposed count, its seeds): in some row, the pick is a trial
    the search proposed in at least 2 of 3 seeds (two thirds of them, at least 2)."""
    if not table:
        return None, None, 0, 0
    best = max(table, key=lambda r: (r.sources()["proposed"] / len(r.picks), len(r.picks)))
    count, seeds = best.sources()["proposed"], len(best.picks)
    return count >= max(2, math.ceil(2 * seeds / 3)), best, count, seeds
