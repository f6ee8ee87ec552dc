"""The run's figures as PNG files: size/PSNR trade-off, bits per layer, search progress, SR crops,
and several runs' Pareto fronts on one plot.

Every function takes plain data (rows of trials.csv as dicts of strings, summary.yaml's layers,
uint8 crops) and writes one PNG; none needs a model or TensorFlow.
"""
import matplotlib

matplotlib.use("Agg")  # files only: no display on a server, and no GUI toolkit to import

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from solvers.report.pareto import UNITS, candidates, number, trial_key  # noqa: E402

DPI = 120


def _x(row, column):
    """A row's cost in the unit of its axis (pareto.UNITS)."""
    return number(row[column]) / UNITS[column][1]


def _save(fig, path):
    """Writes the figure and frees it (pyplot keeps every open figure alive otherwise)."""
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _log_cost_axis(ax, column):
    """Log cost axis with plain numbers (10, 20, 50) rather than 10^1 powers."""
    ax.set_xscale("log")
    ax.margins(x=0.08)  # room for the labels of the first and last points
    plain = FuncFormatter(lambda x, _: f"{x:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    unit, _, what = UNITS[column]
    ax.set_xlabel(f"{what} ({unit}, log scale)")
    ax.grid(True, which="both", alpha=0.3)


def tradeoff(rows, front_rows, baselines, chosen, path, column="size_bits"):
    """Cost (`column`: size_bits or the goal's, log) against val_psnr: every completed trial, the Pareto front as a step line,
    the uniform baselines as a labelled line, and the chosen trial (rows of trials.csv; baselines:
    rows of baselines.csv, may be empty; chosen: one trial row or None)."""
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    done = [rows[i] for i in candidates(rows, column)]
    ax.scatter([_x(r, column) for r in done], [number(r["val_psnr"]) for r in done], s=22,
               color="tab:blue", alpha=0.55, label=f"search trials ({len(done)} completed)")
    if front_rows:
        # "post": at any size, the best PSNR reachable with at most that size.
        ax.step([_x(r, column) for r in front_rows], [number(r["val_psnr"]) for r in front_rows],
                where="post", color="tab:blue", lw=1.8, marker="o", ms=5,
                label=f"Pareto front ({len(front_rows)} trials)")
    base = sorted((b for b in baselines if number(b.get(column)) is not None
                   and number(b.get("val_psnr")) is not None), key=lambda b: _x(b, column))
    rules = [b for b in base if not b["label"].startswith(("uniform", "float"))]  # hand rule
    base = [b for b in base if b not in rules]
    if rules:
        ax.scatter([_x(b, column) for b in rules], [number(b["val_psnr"]) for b in rules],
                   marker="^", s=60, color="tab:purple", edgecolor="black", zorder=4,
                   label="hand rule: first/last kernels 8-bit, others 2")
    if base:
        ax.plot([_x(b, column) for b in base], [number(b["val_psnr"]) for b in base], color="tab:orange",
                marker="s", ms=5, lw=1.4, label="uniform baselines (same epochs as a trial)")
        for b in base:
            ax.annotate(b["label"].replace("uniform ", ""), (_x(b, column), number(b["val_psnr"])),
                        textcoords="offset points", xytext=(4, -12), fontsize=8,
                        color="tab:orange")
    if chosen is not None and number(chosen.get(column)) is not None \
            and number(chosen.get("val_psnr")) is not None:
        x, y = _x(chosen, column), number(chosen["val_psnr"])
        ax.scatter([x], [y], s=260, marker="*", color="tab:red", edgecolor="black", zorder=5,
                   label="chosen (after its search trial)")
        # Below-right on a white box: the chosen trial is often the top point, under the title.
        ax.annotate(f"chosen: trial {chosen['trial_id']}\n{x:.2f} {UNITS[column][0]}, {y:.2f} dB",
                    (x, y),
                    textcoords="offset points", xytext=(14, -34), fontsize=9,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "gray", "alpha": 0.85},
                    arrowprops={"arrowstyle": "-", "color": "gray"})
    ax.margins(y=0.08)
    _log_cost_axis(ax, column)
    ax.set_ylabel("validation Y-PSNR (dB)")
    ax.set_title("Cost against quality: search trials, Pareto front, uniform quantization")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def layer_bits(layers, path):
    """Grouped bars per layer of kernel, bias and activation bits (summary.yaml's `layers`; an
    activation of None, the last convolution's, has no bar)."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    kinds = (("kernel_bits", "kernel", "tab:blue"), ("bias_bits", "bias", "tab:orange"),
             ("activation_bits", "activation (ReLU after it)", "tab:green"))
    width = 0.26
    for k, (key, label, color) in enumerate(kinds):
        xs = [i + (k - 1) * width for i, layer in enumerate(layers) if layer.get(key) is not None]
        ys = [layer[key] for layer in layers if layer.get(key) is not None]
        bars = ax.bar(xs, ys, width, label=label, color=color)
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_xticks(range(len(layers)), [layer["name"] for layer in layers])
    top = max([layer.get(k) or 0 for layer in layers for k, _, _ in kinds] + [8])
    ax.set_ylim(0, top + 1.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("bits")
    ax.set_title("Chosen model: bits per layer")
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    ax.grid(True, axis="y", alpha=0.3)
    _save(fig, path)


def progress(rows, path):
    """val_psnr per trial in search order, the best PSNR so far, and the PSNR of the trial with the
    best val_score so far (what the tuner would pick if the search stopped there)."""
    ordered = sorted(rows, key=trial_key)
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    xs, ys, failed, best_x, best_y, pick_y = [], [], [], [], [], []
    best_psnr, best_score, pick = None, None, None
    for n, row in enumerate(ordered):
        # Keras Tuner's ids are numbers from 00 in search order: plot them as they are named.
        n = int(row["trial_id"]) if str(row.get("trial_id", "")).isdigit() else n
        psnr, score = number(row.get("val_psnr")), number(row.get("val_score"))
        ok = str(row.get("status", "")).upper() == "COMPLETED" and psnr is not None
        if not ok:
            failed.append(n)
            continue
        xs.append(n), ys.append(psnr)
        best_psnr = psnr if best_psnr is None else max(best_psnr, psnr)
        if score is not None and (best_score is None or score < best_score):
            best_score, pick = score, psnr
        best_x.append(n), best_y.append(best_psnr), pick_y.append(pick)
    ax.scatter(xs, ys, s=24, color="tab:blue", label="trial val_psnr")
    ax.step(best_x, best_y, where="post", color="tab:green", lw=1.5, label="best PSNR so far")
    ax.step(best_x, pick_y, where="post", color="tab:red", lw=1.5, ls="--",
            label="PSNR of the best val_score so far")
    if failed:
        low = min(ys) if ys else 0
        ax.scatter(failed, [low] * len(failed), marker="x", color="gray",
                   label=f"failed / unfinished ({len(failed)})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial id (search order)")
    ax.set_ylabel("validation Y-PSNR (dB)")
    ax.set_title("Search progress")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def sr_samples(samples, path):
    """Crops side by side, one row per image: samples is a list of (image name, [(method, uint8
    HxWx3 crop, whole-image Y-PSNR in dB or None)]); the PSNR goes in each crop's title."""
    cols = max(len(crops) for _, crops in samples)
    fig, axes = plt.subplots(len(samples), cols, figsize=(3.1 * cols, 3.5 * len(samples)),
                             squeeze=False, layout="constrained")
    for r, (name, crops) in enumerate(samples):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(crops):
                continue
            method, crop, psnr = crops[c]
            # "nearest": show the pixels as they are, not smoothed again by the viewer.
            ax.imshow(crop, interpolation="nearest")
            ax.set_title(f"{name}: {method}\n" + ("" if psnr is None else f"{psnr:.2f} dB"),
                         fontsize=9)
    fig.suptitle("Central crops (Y-PSNR of the whole image, border cropped)", fontsize=11)
    _save(fig, path)


def fronts(runs, path, column="size_bits"):
    """Several runs' Pareto fronts: runs is a list of (run name, front rows, chosen row or None),
    all on the cost `column`."""
    fig, ax = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for k, (name, front_rows, chosen) in enumerate(runs):
        color = f"C{k % 10}"
        if front_rows:
            ax.step([_x(r, column) for r in front_rows],
                    [number(r["val_psnr"]) for r in front_rows], where="post", color=color, marker="o", ms=5, lw=1.6,
                    label=f"{name} ({len(front_rows)} on front)")
        if chosen is not None and number(chosen.get(column)) is not None \
                and number(chosen.get("val_psnr")) is not None:
            ax.scatter([_x(chosen, column)], [number(chosen["val_psnr"])], s=200, marker="*",
                       color=color, edgecolor="black", zorder=5)
    _log_cost_axis(ax, column)
    ax.set_ylabel("validation Y-PSNR after the search trial (dB)")
    ax.set_title("Pareto fronts of the runs (stars: chosen models)")
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def sensitivity_heatmap(table, path, subtitle=""):
    """Heat map of table {(layer, kind, bits): dB lost} (solvers/search/sensitivity.py): one row per
    (layer, kind) in table order, one column per width, the drop written in each cell. The colour
    starts at 0 dB: a negative drop (the probe beat the float reference) is shown white."""
    import numpy as np
    pairs = list(dict.fromkeys((layer, kind) for layer, kind, _ in table))
    widths = sorted({bits for _, _, bits in table})
    drops = np.array([[table.get((*pair, b), np.nan) for b in widths] for pair in pairs], float)
    top = max(float(np.nanmax(drops, initial=0.0)), 0.1)
    fig, ax = plt.subplots(figsize=(1.1 * len(widths) + 3, 0.36 * len(pairs) + 1.6),
                           layout="constrained")
    image = ax.imshow(drops, cmap="Reds", vmin=0, vmax=top, aspect="auto")
    for r, c in np.argwhere(~np.isnan(drops)):
        value = drops[r, c]
        ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=8,
                color="white" if value > 0.6 * top else "black")
    ax.set_xticks(range(len(widths)), [f"{b}" for b in widths])
    ax.set_yticks(range(len(pairs)), [f"{layer} {kind}" for layer, kind in pairs])
    ax.set_xlabel("bits (only this layer's quantizer quantized)")
    fig.colorbar(image, ax=ax, label="validation PSNR lost (dB)")
    ax.set_title("Per-layer sensitivity" + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    _save(fig, path)
