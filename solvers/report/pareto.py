"""The Pareto front of a run's trials: smallest quantized size against highest validation PSNR.

`update_run(run_dir)` adds a `pareto` column (true/false) to results/<RUN>/trials.csv and writes
results/<RUN>/pareto.csv (the front's rows, smallest first). Also the small helpers every reader of
trials.csv needs: numbers from CSV cells, trial ordering and per-layer bit widths.
"""
import csv
import math
import os
import re

from solvers import files
from solvers.networks.layout import (
    FILTERS_MULTIPLIER,
    base_filters,
    scaled_filters,
    searchable_convs,
)

PARETO = "pareto"
# The cost a run is judged by: its goal's column of trials.csv and baselines.csv (run.yaml:
# objective.goal.type), or size_bits for runs from before goals. Unit, divisor, axis label.
GOAL_COLUMNS = {"bits": "bits", "bops": "bops", "energy": "energy_pj"}
UNITS = {"size_bits": ("KiB", 8192, "stored weights and biases"),
         "bits": ("KiB", 8192, "AutoQKeras bits: weights, biases and activations"),
         "bops": ("GBOPs", 1e9, "bit operations per inference"),
         "energy_pj": ("µJ", 1e6, "QTools energy per inference")}


def cost_column(settings, columns=None):
    """The column of a run's goal cost (settings: its run.yaml), if trials.csv (`columns`) has it."""
    goal = ((settings or {}).get("objective") or {}).get("goal") or {}
    column = GOAL_COLUMNS.get(goal.get("type"), "size_bits")
    return column if columns is None or column in columns else "size_bits"


def in_units(value, column):
    """A cost as text in its unit, e.g. `20.77 KiB`, `3.41 GBOPs`, `27.1 µJ` ("–" if missing)."""
    value = number(value)
    if value is None:
        return "–"
    unit, divisor, _ = UNITS[column]
    return f"{value / divisor:.2f} {unit}"
_FIRST_INT = re.compile(r"\(\s*(\d+)")  # quantized_bits(4,0,...) / quantized_relu(3,8): first int


def number(value):
    """A CSV cell as a finite float, or None (empty cell of a failed trial, 'nan', text)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def bits_of(quantizer):
    """Bit width of a qkeras quantizer string (the first integer inside the parentheses), or None.

    Parsed from the text rather than built with qkeras: a report must not import (or fail on) a
    quantizer just to print its width."""
    match = _FIRST_INT.search(quantizer or "")
    return int(match.group(1)) if match else None


def layer_bits(row, key):
    """A trials.csv row's width of one quantizer (key: conv_0_kernel, act_0_activation...): its
    integer hyperparameter column (conv_0_kernel_bits) when there is one, else parsed from the
    quantizer string column (runs from before width hyperparameters, or string hyperparameters);
    None when neither is there."""
    width = number(row.get(f"{key}_bits"))
    return int(width) if width is not None else bits_of(row.get(key))


def trial_key(row):
    """Sort key of a row by trial id: numerically when the id is a number ("2" before "10")."""
    trial_id = str(row.get("trial_id", ""))
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def read_csv(path):
    """(column names, rows as dicts of strings) of a CSV file."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def candidates(rows, column="size_bits"):
    """Indices of the rows that can be on the front: COMPLETED, numeric cost and val_psnr."""
    return [i for i, r in enumerate(rows)
            if str(r.get("status", "")).upper() == "COMPLETED"
            and number(r.get(column)) is not None and number(r.get("val_psnr")) is not None]


def pareto_flags(rows, column="size_bits"):
    """One bool per row: True when the row is on the Pareto front of (cost, val_psnr), the cost
    being `column` (size_bits, or the goal's: bits, bops, energy_pj).

    Only COMPLETED rows with numeric cost and val_psnr count; the rest are False. Smaller
    cost and higher val_psnr are better. A row is dominated when another row has cost <= and
    PSNR >= with at least one of them strict; the others form the front.

    Exact duplicates (same size and the same PSNR) do not dominate each other, so by that rule both
    would be on the front; only the first of them (lowest trial_id) is kept, so that the front has
    one point per (size, PSNR) and pareto.csv no repeated points.
    """
    order = sorted(candidates(rows, column), key=lambda i: (number(rows[i][column]),
                                                    -number(rows[i]["val_psnr"]),
                                                    trial_key(rows[i]), i))
    flags = [False] * len(rows)
    best_psnr = -math.inf
    # Sweeping by increasing size (and decreasing PSNR at equal size): a row is on the front
    # exactly when it beats every PSNR seen so far, as all of those rows are no larger than it.
    # The strict ">" drops the equal-size lower-PSNR rows and the later exact duplicates.
    for i in order:
        psnr = number(rows[i]["val_psnr"])
        if psnr > best_psnr:
            flags[i] = True
            best_psnr = psnr
    return flags


def front(rows, flags=None, column="size_bits"):
    """The rows on the front, cheapest first."""
    flags = pareto_flags(rows, column) if flags is None else flags
    return sorted((r for r, f in zip(rows, flags) if f), key=lambda r: number(r[column]))


def update_run(run_dir, column="size_bits"):
    """Marks the front in <run_dir>/trials.csv (column `pareto`, true/false, added or replaced)
    and writes <run_dir>/pareto.csv (the front's rows, same columns, smallest size first).

    Idempotent: running it again rewrites the same two files. Returns (rows, front rows), the
    rows as dicts of strings in trials.csv's order with `pareto` set.
    """
    path = os.path.join(run_dir, "trials.csv")
    columns, rows = read_csv(path)
    flags = pareto_flags(rows, column)
    for row, flag in zip(rows, flags):
        row[PARETO] = "true" if flag else "false"
    if PARETO not in columns:
        columns.append(PARETO)
    files.write_csv(path, columns, rows, extrasaction="ignore")
    front_rows = front(rows, flags, column)
    files.write_csv(os.path.join(run_dir, "pareto.csv"), columns, front_rows,
                    extrasaction="ignore")
    return rows, front_rows


def bits_summary(row):
    """A trial's widths per convolution as `kernel/bias/activation`, e.g. `5/3/7 5/7/4 ... 3/2`
    (the last convolution has no ReLU); `?` where a quantizer is missing."""
    convs = sorted({int(k.split("_")[1]) for k in row
                    if re.fullmatch(r"conv_\d+_kernel(_bits)?", k)})
    parts = []
    for i in convs:
        act = f"act_{i}_activation"
        keys = [f"conv_{i}_kernel", f"conv_{i}_bias"] + \
            ([act] if act in row or f"{act}_bits" in row else [])
        parts.append("/".join(str(layer_bits(row, k) or "?") for k in keys))
    return " ".join(parts)


def trial_filters(row, scale, tune_filters=None):
    """{conv name: filters} of a trials.csv row: base7's designed filters, changed by its
    conv_i_filters columns or, with a filters_multiplier column, those of the layers run.yaml's
    `tune_filters` names (without that record: every searchable convolution) scaled by it."""
    filters = base_filters(scale)
    multiplier = number(row.get(FILTERS_MULTIPLIER))
    if multiplier is not None:
        layers = (tune_filters or {}).get("layers") or {c: filters[c] for c in searchable_convs()}
        filters.update({name: scaled_filters(count, multiplier) for name, count in layers.items()})
    filters.update({name: int(number(row[f"{name}_filters"])) for name in filters
                    if number(row.get(f"{name}_filters")) is not None})
    return filters
