"""report.md of a make gradient run: the learned widths, their trajectory and the retrained model.

Reads the run folder only (run.yaml, summary.yaml, trajectory.csv, written by
solvers/run_gradient.py) and writes trajectory.png, layer_bits.png and report.md there; no model
or TensorFlow is needed. The per-layer table and settings are the search report's (report_text).
"""
import matplotlib

matplotlib.use("Agg")  # files only: no display on a server

import matplotlib.pyplot as plt

from solvers import files
from solvers.report import plots
from solvers.report.pareto import number, read_csv
from solvers.report.report_md import SIZES
from solvers.report.report_text import cell, settings_md, summary_md

TRAJECTORY = "trajectory.csv"


def width_columns(columns):
    """[(layer kind label, real-width column, integer-width column)] of trajectory.csv."""
    return [(c[:-len("_width")], c, c[:-len("_width")] + "_bits") for c in columns
            if c.endswith("_width") and c[:-len("_width")] + "_bits" in columns]


def trajectory_plot(rows, columns, path, band=None):
    """Three panels per epoch: each layer's learned width (real, thin; the integer it quantizes
    at, thick steps), the rounded model's cost as a fraction of the budget (the band shaded), and
    the validation PSNR with β on a second axis."""
    epochs = [int(number(r["epoch"])) for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(8, 9), sharex=True,
                                              layout="constrained")
    colors = plt.get_cmap("tab20").colors
    for k, (label, real, integer) in enumerate(width_columns(columns)):
        color = colors[k % len(colors)]
        style = "-" if "kernel" in label else "--"
        top.plot(epochs, [number(r[real]) for r in rows], style, color=color, lw=0.8, alpha=0.6)
        top.step(epochs, [number(r[integer]) for r in rows], style, where="mid", color=color,
                 lw=2, label=label.replace("_activation", " act").replace("_kernel", " kernel"))
    top.set_ylabel("bits (thick: integer; thin: learned)")
    top.legend(fontsize=6, ncol=4, loc="upper right")
    top.grid(True, alpha=0.3)
    middle.plot(epochs, [number(r["cost_fraction"]) for r in rows], "o-", color="tab:red")
    middle.axhline(1.0, color="black", lw=1)
    if band:
        middle.axhspan(band, 1.0, color="tab:green", alpha=0.15, label=f"band [{band:g}, 1]")
        middle.legend(fontsize=8)
    middle.set_ylabel("rounded cost / budget")
    middle.grid(True, alpha=0.3)
    bottom.plot(epochs, [number(r["val_psnr"]) for r in rows], "o-", color="tab:blue",
                label="val PSNR")
    bottom.set_ylabel("validation Y-PSNR (dB)")
    bottom.set_xlabel("epoch")
    bottom.grid(True, alpha=0.3)
    beta_axis = bottom.twinx()
    beta_axis.semilogy(epochs, [number(r["beta"]) for r in rows], "s--", color="tab:gray", ms=3)
    beta_axis.set_ylabel("β (end of epoch, log)")
    fig.suptitle("make gradient: widths, cost and PSNR per epoch")
    fig.savefig(path, dpi=plots.DPI)
    plt.close(fig)


def _trajectory_md(rows, columns):
    widths = width_columns(columns)
    kernels = [w for w in widths if "kernel" in w[0]]
    acts = [w for w in widths if "activation" in w[0]]
    lines = ["| epoch | cost / budget | β | val PSNR (dB) | kernel bits | activation bits |",
             "|---:|---:|---:|---:|---|---|"]
    for r in rows:
        k = ".".join(str(int(number(r[i]))) for _, _, i in kernels)
        a = ".".join(str(int(number(r[i]))) for _, _, i in acts)
        lines.append(f"| {r['epoch']} | {number(r['cost_fraction']):.1%} | "
                     f"{number(r['beta']):.3g} | {cell(number(r['val_psnr']))} | {k} | {a} |")
    return "\n".join(lines) + "\n"


def make_report(run_dir):
    """trajectory.png, layer_bits.png and report.md of a gradient run; returns report.md's path."""
    settings = files.read_yaml(f"{run_dir}/run.yaml", missing={})
    summary = files.read_yaml(f"{run_dir}/summary.yaml")
    columns, rows = read_csv(f"{run_dir}/{TRAJECTORY}")
    budget = summary.get("budget") or {}
    gradient = summary.get("gradient") or {}
    trajectory_plot(rows, columns, f"{run_dir}/trajectory.png", budget.get("band"))
    plots.layer_bits(summary.get("layers") or [], f"{run_dir}/layer_bits.png")
    run = {"layers": summary.get("layers") or [], "sizes": {k: summary.get(k) for k in SIZES}}
    spent = (summary.get("costs") or {}).get("cost")
    test = summary.get("test") or {}
    repaired = gradient.get("repaired_steps", 0)
    lines = [
        f"# make gradient: {settings.get('run', run_dir)}\n",
        (f"Bit widths learned by gradient descent ({gradient.get('epochs')} epochs, β steered to "
        f"the budget), rounded up to integers, then retrained {gradient.get('retrain_epochs')} "
        "epochs as a search's winner is.\n"),
        f"- budget: {budget.get('spec')} = {cell(budget.get('cost'), '{:.6g}')} ({budget.get('goal')}); "
        f"the rounded model costs {cell(spent, '{:.6g}')}"
        + (f" = **{spent / budget['cost']:.1%}** of it" if spent and budget.get("cost") else ""),
        "- rounding: the widths at the last epoch "
        + ("fitted the budget as they were" if not repaired else
           f"cost {gradient.get('learned_fraction', float('nan')):.1%} of the budget; "
           f"{repaired} step(s) down brought them under it"),
        (f"- test Y-PSNR (held out): **{cell(test.get('psnr'))} dB** after the retrain, "
        f"{cell(test.get('psnr_search'))} dB as learned"),
        f"- wall time: {number(summary.get('elapsed_s')) or 0:.0f} s\n",
        "![trajectory](trajectory.png)\n", "## The model\n", "![bits](layer_bits.png)\n",
        summary_md(run), f"## Trajectory ({TRAJECTORY})\n", _trajectory_md(rows, columns),
        "## Settings\n", settings_md(settings)]
    path = f"{run_dir}/report.md"
    files.write_text(path, "\n".join(lines))
    return path
