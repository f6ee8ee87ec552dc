"""A run's results a person can look at: report.md with plots, and a comparison of several runs.

    python -m solvers.report.report_md --run-dir results/R [--baselines CSV] [--tb-dir tb_logs/R]
    python -m solvers.report.report_md --compare results/a results/b [--out results/compare]

make_report marks the Pareto front in trials.csv (and writes pareto.csv), draws tradeoff.png,
layer_bits.png, progress.png and sr_samples.png into the run folder, copies them to TensorBoard
under <tb-dir>/report, and writes report.md. Without --baselines, the uniform baselines compared
are a set of <results>/baselines/*/ whose baselines.yaml matches run.yaml
(baseline_match.find_baselines).
User errors print one line `error: ...`, exit 2.
"""
import csv
import os
import sys

import numpy as np
import tensorflow as tf

from solvers import files, metrics
from solvers.config import ArgumentParser, ConfigError
from solvers.data import sources
from solvers.report import finalists_md, pareto, plots

# Re-exported: report_md.ReportError is the error its callers know.
from solvers.report.baseline_match import ReportError, find_baselines, read_baselines
from solvers.report.pareto import layer_bits, number
from solvers.report.report_text import (cell, kib, settings_md, splits_md, summary_md, trials_md,
                                        verdict)
from solvers.search import cost, sensitivity

PNGS = ("tradeoff", "layer_bits", "progress", "sr_samples")
CROP = 48      # LR side of the SR sample crops (HR: CROP x scale)
SAMPLES = 2    # test images shown (validation ones for runs from before the test split)
REQUIRED = ("trial_id", "status", "size_bits", "val_psnr", "val_score")
# summary.yaml's figures; val_images and test (held-out figures) are None for older runs.
SIZES = ("size_bits", "float32_bits", "uniform8_bits", "val_psnr_search", "val_psnr_retrained",
         "val_images", "test")


def load_run(run_dir, option="--run-dir"):
    """One run as a dict: name, dir, column (the cost it is judged by: its goal's column of
    trials.csv, size_bits for older runs), rows and front (after pareto.update_run on that cost),
    settings (run.yaml or {}), summary (summary.yaml or None), chosen (the chosen trial's row or
    None), layers and sizes."""
    run_dir = os.fspath(run_dir)
    trials = os.path.join(run_dir, "trials.csv")
    if not os.path.isdir(run_dir):
        raise ReportError(f"{option}: {run_dir}: no such run folder")
    if not os.path.isfile(trials):
        raise ReportError(f"{option}: {run_dir}: no trials.csv (the search has not finished)")
    settings = files.read_yaml(os.path.join(run_dir, "run.yaml"), missing={})
    try:
        columns = pareto.read_csv(trials)[0]
        missing = [c for c in REQUIRED if c not in columns]
        if missing:
            raise ReportError(f"{option}: {trials}: missing columns {', '.join(missing)}")
        column = pareto.cost_column(settings, columns)
        rows, front = pareto.update_run(run_dir, column)
    except (OSError, csv.Error, UnicodeDecodeError) as e:
        raise ReportError(f"{option}: {trials}: cannot read or update ({e})") from None
    summary = files.read_yaml(os.path.join(run_dir, "summary.yaml"), missing=None)
    done = [rows[i] for i in pareto.candidates(rows) if number(rows[i]["val_score"]) is not None]
    # summary.yaml names the tuner's pick; older runs have none: the best val_score is that pick.
    wanted = summary and str(summary.get("best_trial"))
    chosen = next((r for r in rows if r["trial_id"] == wanted), None) or \
        min(done, key=lambda r: number(r["val_score"]), default=None)
    run = {"name": os.path.basename(os.path.normpath(run_dir)), "dir": run_dir, "rows": rows,
           "column": column, "front": front, "settings": settings, "summary": summary, "chosen": chosen}
    if summary:
        run["layers"] = summary.get("layers") or []
        run["sizes"] = {k: summary.get(k) for k in SIZES}
    else:
        run["layers"], run["sizes"] = _rebuilt_layers(chosen, settings.get("scale", 3),
                                                      settings.get("tune_filters"))
    return run


def _rebuilt_layers(chosen, scale, tune_filters=None):
    """(layers, sizes) as summary.yaml gives them, for runs without one: bits from the chosen
    row's width columns or quantizer strings (pareto.layer_bits), parameter counts from an
    untrained float base7 with the row's filters (pareto.trial_filters)."""
    if chosen is None:
        return [], {}
    from solvers.networks.base7 import base7
    model = base7(scale=scale, filters=pareto.trial_filters(chosen, scale, tune_filters))
    counts = cost.layer_sizes(model)
    layers = [{"name": s.name, "filters": int(model.get_layer(s.name).filters),
               "weights": s.weights, "biases": s.biases,
               "kernel_bits": layer_bits(chosen, f"{s.name}_kernel"),
               "bias_bits": layer_bits(chosen, f"{s.name}_bias"),
               "activation_bits": layer_bits(chosen, f"act_{i}_activation")}
              for i, s in enumerate(counts)]
    params = sum(s.weights + s.biases for s in counts)
    return layers, {"size_bits": number(chosen["size_bits"]), "float32_bits": 32 * params,
                    "uniform8_bits": 8 * params, "val_psnr_search": number(chosen["val_psnr"])}


def sr_samples(run, scale):
    """[(image name, [(method, uint8 crop, whole-image Y-PSNR)])] for the first test images (the
    first validation ones for a run without test figures, whose test split may have been training
    images then): bicubic, the float model (when run.yaml names one that exists), the chosen model,
    ground truth. Raises ConfigError (DataError, EvalError) when the data or a model cannot be
    loaded."""
    from solvers import evaluate
    settings = run["settings"]
    methods = [("bicubic", None)]
    if settings.get("float_model") and os.path.isfile(settings["float_model"]):
        methods.append(("float32 model", evaluate.load_model(settings["float_model"], scale,
                                                             "float_model")))
    methods.append(("chosen (quantized)", evaluate.load_model(
        os.path.join(run["dir"], "best_model_retrained.keras"), scale, "best_model_retrained")))
    data = settings.get("data") or {}
    # The first SAMPLES images of each split at most, so as not to decode the whole set.
    counts = {k: min(SAMPLES, data.get(k) or SAMPLES) for k in ("val_images", "test_images")}
    samples = []
    for pair in sources.recorded_pairs(data, scale, train_images=1, **counts)[
            2 if run["sizes"].get("test") else 1][:SAMPLES]:
        h, w = min(CROP, pair.lr.shape[0]), min(CROP, pair.lr.shape[1])
        top, left = (pair.lr.shape[0] - h) // 2, (pair.lr.shape[1] - w) // 2
        box = np.s_[top * scale:(top + h) * scale, left * scale:(left + w) * scale]
        crops = []
        for method, net in methods:
            sr = evaluate.bicubic(pair.lr, scale) if net is None else evaluate.upscale(net, pair.lr)
            psnr = float(metrics.psnr(pair.hr[None], sr, border=scale)[0])
            crops.append((method, metrics.to_8bit(sr)[0].numpy().astype(np.uint8)[box], psnr))
        crops.append(("ground truth", pair.hr[box], None))
        samples.append((pair.name, crops))
    return samples


def write_tensorboard(tb_dir, pngs, text):
    """The PNGs as image summaries (tags: their names) and report.md as text in <tb_dir>/report."""
    writer = tf.summary.create_file_writer(os.path.join(tb_dir, "report"))
    with writer.as_default():
        for name, path in pngs:
            tf.summary.image(name, tf.io.decode_png(tf.io.read_file(path), channels=3)[None], 0)
        tf.summary.text("report", text, step=0)
    writer.close()


def make_report(run_dir, baselines_csv=None, tb_dir=None):
    """Pareto columns, the four PNGs, TensorBoard images (when tb_dir is given) and report.md for
    one run folder; returns report.md's path. Without baselines_csv, a set of baselines next to
    the run that matches its settings (find_baselines), or none; a given baselines_csv is used
    even when its settings differ, and the verdict says so. A missing file is noted, not fatal."""
    run = load_run(run_dir)
    run_dir, settings = run["dir"], run["settings"]
    match = find_baselines(run, baselines_csv)
    baselines = read_baselines(match["path"])
    png = {name: os.path.join(run_dir, f"{name}.png") for name in PNGS}
    for path in png.values():  # an older report's PNG must not pass for this one's
        if os.path.isfile(path):
            os.remove(path)
    plots.tradeoff(run["rows"], run["front"], baselines or [], run["chosen"], png["tradeoff"],
                   run["column"])
    plots.progress(run["rows"], png["progress"])
    if run["layers"]:
        plots.layer_bits(run["layers"], png["layer_bits"])
    notes = []
    try:
        plots.sr_samples(sr_samples(run, int(settings.get("scale", 3))), png["sr_samples"])
    except ConfigError as e:  # DataError, EvalError: the rest of the report is still worth having
        notes.append(f"SR samples skipped: {e}\n")
    made = [(name, path) for name, path in png.items() if os.path.isfile(path)]
    text = "\n".join([
        f"# Run report: {run['name']}\n", "## Verdict\n", verdict(run, baselines, match)
        + "\n", "## Plots\n", splits_md(run), *(f"![{name}]({name}.png)\n" for name, _ in made),
        *notes,
        "## Chosen model\n", summary_md(run), *finalists_md.section(run.get("summary"), run["rows"]),
        # the sensitivity table the run's starting points came from (run.yaml records it)
        *sensitivity.report_section(settings, run["layers"]),
        "## Settings\n", settings_md(settings),
        "## All trials, best val_score first\n",
        f"Sizes in KiB (8192 bits); metrics at each trial's best-val_score epoch; Pareto: not "
        f"dominated in ({run['column']}, val_psnr) among completed trials (the rows of "
        "pareto.csv).\n",
        trials_md(run)])
    path = os.path.join(run_dir, "report.md")
    files.write_text(path, text)
    if tb_dir:
        write_tensorboard(tb_dir, made, text)
    return path


def compare(run_dirs, out_dir):
    """compare.png (every run's Pareto front) and compare.md (one row per run) in out_dir;
    returns compare.md's path."""
    runs = [load_run(d, "--compare") for d in run_dirs]
    # One cost for all: the runs' common goal, else the stored size every run has.
    column = runs[0]["column"] if len({r["column"] for r in runs}) == 1 else "size_bits"
    for r in runs:
        r["front"] = pareto.front(r["rows"], column=column)
    os.makedirs(out_dir, exist_ok=True)
    plots.fronts([(r["name"], r["front"], r["chosen"]) for r in runs],
                 os.path.join(out_dir, "compare.png"), column)
    unit = pareto.UNITS[column][0]
    lines = ["# Runs compared\n", "![compare](compare.png)\n",
             f"| run | algorithm | completed trials | front size | chosen trial | chosen KiB | "
             f"chosen {column} | PSNR after search (dB) | PSNR after retrain (dB) | "
             f"front ({unit}@dB) |", "|---|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in runs:
        c = r["chosen"] or {}
        front = ", ".join(f"{number(f[column]) / pareto.UNITS[column][1]:.2f}@"
                          f"{number(f['val_psnr']):.2f}" for f in r["front"])
        lines.append(f"| {r['name']} | {r['settings'].get('algo', '?')} | "
                     f"{len(pareto.candidates(r['rows']))} of {len(r['rows'])} | "
                     f"{len(r['front'])} | {c.get('trial_id', '–')} | "
                     f"{kib(number(c.get('size_bits')))} | {pareto.in_units(c.get(column), column)} | "
                     f"{cell(c.get('val_psnr'))} | "
                     f"{cell(r['sizes'].get('val_psnr_retrained'))} | {front} |")
    path = os.path.join(out_dir, "compare.md")
    files.write_text(path, "\n".join(lines) + "\n")
    return path


def main(argv=None):
    """Command line entry point; returns the exit status (0, or 2 after a one-line error)."""
    p = ArgumentParser(prog="python -m solvers.report.report_md", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run-dir", help="a run folder, results/<RUN>")
    what.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="run folders to compare")
    p.add_argument("--baselines", help="baselines.csv to compare with (default: a set in "
                   "<results>/baselines/ whose baselines.yaml matches the run's settings)")
    p.add_argument("--tb-dir", help="the run's TensorBoard folder; images go to <it>/report")
    p.add_argument("--out", default="results/compare", help="folder for compare.png and .md")
    args = p.parse_args(argv)
    try:
        path = (compare(args.compare, args.out) if args.compare
                else make_report(args.run_dir, args.baselines, args.tb_dir))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable run folder, --out or --tb-dir
        print(f"error: {e.filename or ''}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 2
    print(f"wrote {path}" + ("" if args.compare else " and its PNGs")
          + (f"; TensorBoard images in {args.tb_dir}/report" if args.tb_dir else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
