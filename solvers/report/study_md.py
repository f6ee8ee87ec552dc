"""results/study/study.md and study.png from the seeds' points.csv and search/trials.csv
(solvers/study.py writes them): is the search better than uniform quantization at equal cost?

Test PSNR is of models no selection step saw the test images of: trials were scored, picks and
best epochs chosen on the validation images. Targets (issue 13), mean over the seeds:
  at the goal cost of uniform 3-bit: +0.5 dB over it, and above the hand rule at the hand rule's;
  at the cost of uniform 4-bit: within 0.05 dB of uniform 8-bit;
  8-bit activations, kernels averaging <= 4 bits: within 0.3 dB of float32 (same budget).
"""
import os

import numpy as np
from scipy.stats import spearmanr

from solvers import files
from solvers.networks.base7 import quantizers_from_hp
from solvers.networks.layout import base_filters, layer_names
from solvers.report import pareto

KINDS = ("kernel", "bias", "activation")


def layer_widths(row):
    """{(layer, kind): bits} of a trials.csv row."""
    conv, act = layer_names()
    keys = [(c, k) for c in conv for k in ("kernel", "bias")] + [(a, "activation") for a in act]
    return {(layer, kind): pareto.layer_bits(row, f"{layer}_{kind}") for layer, kind in keys}


def is_k4a8(row, scale=3):
    """Every activation at 8 bits and kernels averaging at most 4 bits, weighted by their weights
    (the memory budget of post-training mixed precision)."""
    bits = layer_widths(row)
    if any(b != 8 for (_, kind), b in bits.items() if kind == "activation"):
        return False
    widths, previous, weighted, total = base_filters(scale), 3, 0, 0
    for conv in layer_names()[0]:
        count = previous * widths[conv] * 9
        weighted, total, previous = weighted + count * bits[conv, "kernel"], total + count, widths[conv]
    return weighted / total <= 4


def best_within(rows, accept):
    """The completed trial with the best validation PSNR among those `accept` (None: none)."""
    rows = [r for r in rows if accept(r) and pareto.number(r.get("val_psnr")) is not None]
    # Ties (models that learnt the same) go to the cheaper one.
    return max(rows, key=lambda r: (float(r["val_psnr"]), -float(r["cost"]))) if rows else None


def trial_quantizers(row):
    """base7's `quantizers` of a trials.csv row (its quantizer string columns)."""
    return quantizers_from_hp(row)


def bits_text(quantizers):
    """'k 8.2.2.2.2.2.8 b 8.… a 3.…' (kernel, bias, activation bits per layer), or float32."""
    if not quantizers:
        return "float32"
    conv, act = layer_names()
    parts = []
    for kind, layers in (("kernel", conv), ("bias", conv), ("activation", act)):
        parts.append(kind[0] + " " + ".".join(str(pareto.bits_of(quantizers[layer][kind]))
                                              for layer in layers))
    return " ".join(parts)


def trial_configuration(row, scale, tune_filters=None):
    """What a trial trained: every layer's kernel, bias and activation bits (bits_text of its
    quantizer columns) and every convolution's filters."""
    filters = pareto.trial_filters(row, scale, tune_filters)
    return bits_text(trial_quantizers(row)), tuple(sorted(filters.items()))


def point_configuration(point, scale):
    """What a points.csv row trained, in trial_configuration's form: its layer_bits, and base7's
    designed filters (the study trains every point at them: study.train_points)."""
    return point["layer_bits"], tuple(sorted(base_filters(scale).items()))


def _rows(out, seeds):
    points, trials = {}, {}
    for seed in seeds:
        seed_dir = os.path.join(out, f"seed{seed}")
        points[seed] = pareto.read_csv(os.path.join(seed_dir, "points.csv"))[1]
        trials[seed] = [r for r in pareto.read_csv(os.path.join(seed_dir, "search", "trials.csv"))[1]
                        if r["status"] == "COMPLETED"]
    return points, trials


def _get(rows, label):
    row = next((r for r in rows if r["label"] == label), None)
    return pareto.number(row["test_psnr"]) if row else None


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


COMPARISONS = (  # (search pick, reference, what the target asks of the difference)
    ("search at uniform 2-bit cost", "uniform 2-bit", None),
    ("search at uniform 3-bit cost", "uniform 3-bit", 0.5),
    ("search at hand rule k8-2 a3 cost", "hand rule k8-2 a3", 0.0),
    ("search at uniform 4-bit cost", "uniform 4-bit", None),
    ("search at uniform 4-bit cost", "uniform 8-bit", -0.05),
    ("search, 8-bit activations, kernels <= 4 bits", "float32", -0.3),
)


def comparison_table(points, seeds):
    """Markdown rows: per comparison, each seed's test PSNR of pick and reference, the mean ± std
    of the difference, and whether the mean meets the target."""
    lines = ["| search pick | reference | " + " | ".join(f"seed {s}: pick / ref" for s in seeds)
             + " | mean difference (dB) | target | met |",
             "|---|---|" + "---|" * len(seeds) + "---:|---|---|"]
    verdicts = []
    for pick, reference, target in COMPARISONS:
        cells, diffs = [], []
        for s in seeds:
            a, b = _get(points[s], pick), _get(points[s], reference)
            cells.append(f"{a:.2f} / {b:.2f}" if a is not None and b is not None else "–")
            if a is not None and b is not None:
                diffs.append(a - b)
        mean = np.mean(diffs) if diffs else None
        # target 0: "above" the reference, so a tie does not meet it
        met = "–" if target is None or mean is None else (
            "yes" if (mean > 0 if target == 0 else mean >= target) else "no")
        want = "–" if target is None else (f">= {target:+.2f}" if target else "> 0")
        lines.append(f"| {pick} | {reference} | " + " | ".join(cells)
                     + f" | {_mean_std(diffs)} | {want} | {met} |")
        if target is not None and mean is not None:
            verdicts.append((pick, reference, mean, target, met == "yes", len(diffs)))
    return lines, verdicts


def rank_correlations(points, trials, seeds, runs):
    """Per seed: (rho of the score, rho of the trial's PSNR, n, unpaired): Spearman's rank
    correlation with the test PSNR of the same configuration trained to the full budget, of a
    trial's score (negated val_score: higher is better; it blends in the cost) and of its
    validation PSNR (does a short trial rank configurations as full training does?), over the n
    configurations that were both a point and a trial. Same configuration means the same bits of
    every layer's kernel, bias and activation and the same filters (point_configuration,
    trial_configuration), not the same label: under the shipped limit a uniform point's biases
    are at b bits, its starting point's at the limit's 8. unpaired: the quantized points'
    configurations no trial had. runs: {seed: its search's run.yaml} (scale, tune_filters)."""
    result = {}
    for s in seeds:
        scale, tune_filters = runs[s]["scale"], runs[s].get("tune_filters")
        tried = {}  # configuration: its first trial (a configuration tried twice trains alike)
        for row in sorted(trials[s], key=pareto.trial_key):
            if pareto.number(row.get("val_score")) is not None and \
                    pareto.number(row.get("val_psnr")) is not None:
                tried.setdefault(trial_configuration(row, scale, tune_filters), row)
        found, unpaired = {}, set()
        for p in points[s]:
            if p["layer_bits"] == bits_text(None) or pareto.number(p.get("test_psnr")) is None:
                continue
            key = point_configuration(p, scale)
            trial = tried.get(key)
            if trial is None:
                unpaired.add(key)
                continue
            # A pick that is also a baseline shares its model: one configuration, counted once.
            found[key] = (-float(trial["val_score"]), float(trial["val_psnr"]),
                          float(p["test_psnr"]))
        triples = list(found.values())
        if len(triples) < 3:
            result[s] = (None, None, len(triples), len(unpaired))
            continue
        score, psnr, test = zip(*triples)
        result[s] = (spearmanr(score, test).statistic, spearmanr(psnr, test).statistic,
                     len(triples), len(unpaired))
    return result


def plot(points, trials, seeds, column, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    unit, divisor, what = pareto.UNITS[column]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained")
    for i, s in enumerate(seeds):
        color = f"C{i}"
        rows = [r for r in trials[s] if pareto.number(r.get(column))]
        flags = pareto.pareto_flags(rows, column)
        front = sorted((r for r, f in zip(rows, flags) if f), key=lambda r: float(r[column]))
        left.scatter([float(r[column]) / divisor for r in rows], [float(r["val_psnr"]) for r in rows],
                     s=12, alpha=0.35, color=color)
        left.step([float(r[column]) / divisor for r in front], [float(r["val_psnr"]) for r in front],
                  where="post", color=color, label=f"seed {s}: search front")
        uniform = sorted((r for r in rows if r.get("start", "").startswith("uniform")),
                         key=lambda r: float(r[column]))
        left.plot([float(r[column]) / divisor for r in uniform], [float(r["val_psnr"]) for r in uniform],
                  "s--", color=color, ms=4, alpha=0.8, label=f"seed {s}: uniform trials")
        base = sorted((p for p in points[s] if p["kind"] == "uniform"), key=lambda p: float(p[column]))
        right.plot([float(p[column]) / divisor for p in base], [float(p["test_psnr"]) for p in base],
                   "s--", color=color, ms=4, label=f"seed {s}: uniform")
        for kind, marker in (("search", "*"), ("hand rule", "^")):
            pts = [p for p in points[s] if p["kind"] == kind]
            right.scatter([float(p[column]) / divisor for p in pts], [float(p["test_psnr"]) for p in pts],
                          marker=marker, s=90 if marker == "*" else 40, color=color, edgecolor="black",
                          label=f"seed {s}: {kind}")
    left.set_title("search trials (validation, epochs of a trial)")
    right.set_title("trained to the full budget (test images)")
    for ax, ylabel in ((left, "validation Y-PSNR (dB)"), (right, "test Y-PSNR (dB)")):
        ax.set_xscale("log")
        ax.set_xlabel(f"{what} ({unit}, log)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss_per_db(trials, seeds):
    """(fraction of L1 per dB of validation PSNR, trials fitted): the slope of log10(val_loss)
    against val_psnr over every completed trial, which turns the objective's delta (a share of the
    loss per halving of cost) into dB per halving."""
    rows = [r for s in seeds for r in trials[s]
            if pareto.number(r.get("val_loss")) and pareto.number(r.get("val_psnr"))]
    if len(rows) < 3:
        return None, len(rows)
    slope = np.polyfit([float(r["val_psnr"]) for r in rows],
                       [np.log10(float(r["val_loss"])) for r in rows], 1)[0]
    return 10 ** -slope - 1, len(rows)


def uniform_slopes(trials, seeds, column):
    """[(from label, to label, mean dB per halving of cost)] along the uniform starting points."""
    steps = {}
    for s in seeds:
        uniform = sorted((r for r in trials[s] if r.get("start", "").startswith("uniform")),
                         key=lambda r: float(r[column]))
        for a, b in zip(uniform, uniform[1:]):
            halvings = np.log2(float(b[column]) / float(a[column]))
            gain = float(b["val_psnr"]) - float(a["val_psnr"])
            steps.setdefault((a["start"], b["start"]), []).append(gain / halvings)
    return [(a, b, float(np.mean(v))) for (a, b), v in steps.items()]


def objective_md(trials, seeds, column):
    """The objective's trade-off in dB, measured on these trials (README, The objective)."""
    share, count = loss_per_db(trials, seeds)
    if share is None:
        return []
    lines = ["", "## The objective's trade-off in dB", "",
             (f"Over {count} completed trials, 1 dB of validation PSNR is {100 * share:.1f} % of "
              "the L1 loss, so a delta_p of d % forgives log10(1 + d/100) / log10(1 + "
              f"{share:.4f}) dB per halving of cost: " + ", ".join(
                  f"{d}: {np.log10(1 + d / 100) / np.log10(1 + share):.2f} dB"
                  for d in (2, 3, 4, 5, 8)) + "."), "",
             "The uniform starting points' validation PSNR per halving of cost (mean over seeds):", ""]
    return lines + [f"- {a} → {b}: {slope:+.2f} dB" for a, b, slope in
                    uniform_slopes(trials, seeds, column)]


def write_study(out, seeds, settings, elapsed):
    """study.md and study.png in `out`; returns study.md's path."""
    points, trials = _rows(out, seeds)
    runs = {s: files.read_yaml(os.path.join(out, f"seed{s}", "search", "run.yaml"))
            for s in seeds}
    column = pareto.cost_column(runs[seeds[0]])  # the goal's cost
    plot(points, trials, seeds, column, os.path.join(out, "study.png"))
    table, verdicts = comparison_table(points, seeds)
    rhos = rank_correlations(points, trials, seeds, runs)
    lines = ["# Study: the search against uniform quantization", "",
             (f"Seeds {', '.join(map(str, seeds))}; search `{settings.get('algo')}`, "
              f"{settings.get('trials') or 'profile'} trials; every compared model trained from "
              "scratch for the same budget (epochs of a trial + retrain epochs), its best epoch "
              "chosen on the validation images; PSNR on the held-out test images. "
              f"Total time {elapsed / 60:.0f} min."), "",
             "![fronts](study.png)", "", "## Test PSNR at equal cost", "", *table, "",
             "## Verdict", ""]
    for pick, reference, mean, target, met, count in verdicts:
        lines.append(f"- {pick} vs {reference}: {mean:+.2f} dB, mean of {count} seed(s) "
                     f"(target {'above' if target == 0 else f'{target:+.2f}'}): "
                     f"{'met' if met else 'not met'}.")
    lines += ["", "## Does a trial predict the trained model?", "",
              ("Spearman's rank correlation with the test PSNR of the same configuration trained "
               "to the full budget, over the configurations that were both a trial and a point "
               "(the same bits of every layer's kernel, bias and activation and the same filters, "
               "whatever the label: under a limit that fixes biases, a uniform point's are at b "
               "bits and its starting point's at the limit's): of the trial's score (negated "
               "val_score, which blends in the cost) and of its validation PSNR:"), ""]
    lines += [f"- seed {s}: " + (f"rho = {rho:.2f} (score), {rho_psnr:.2f} (trial PSNR) over {n} "
                                 "configurations" if rho is not None
                                 else f"too few configurations ({n})")
              + f"; {unpaired} point configuration(s) not among the trials"
              for s, (rho, rho_psnr, n, unpaired) in rhos.items()]
    lines += objective_md(trials, seeds, column)
    lines += ["", "## Every point", "", "| seed | label | cost | val PSNR | test PSNR | bits |",
              "|---|---|---:|---:|---:|---|"]
    for s in seeds:
        for p in points[s]:
            lines.append(f"| {s} | {p['label']} | {pareto.in_units(p[column], column)} | "
                         f"{float(p['val_psnr']):.2f} | {float(p['test_psnr']):.2f} | "
                         f"{p['layer_bits']} |")
    path = os.path.join(out, "study.md")
    files.write_text(path, "\n".join(lines) + "\n")
    return path
