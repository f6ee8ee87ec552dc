"""Per-layer sensitivity: the validation PSNR lost when only one layer's one kind of quantizer
(kernel, bias or activation) is quantized, at each width of the search space, from the float model.

    python -m solvers.search.sensitivity [--float-model F] [--widths 2 4 8] [--layers conv_0 act_0]

Every probe (layer, kind, width) starts from the float32 weights, is fine-tuned for the same
--finetune-steps on the same batches (fixed seed), and is scored on the validation images. The
reference is the float model fine-tuned the same way, so the fine-tune itself is neither a gain
nor a loss: psnr_drop = reference PSNR - probe PSNR. Writes sensitivity.csv, sensitivity.yaml
(settings, the reference, and the provenance a search checks before using the table: data, float
model hash, quantizers, the csv's hash; sensitivity_provenance.py) and sensitivity.png (heat map)
into --out. User errors print one line `error: ...` and exit 2.
"""
import csv
import os
import sys
import time

from solvers import files
from solvers.config import PROFILES, ArgumentParser, ConfigError, load_search_space
from solvers.search import sensitivity_provenance as provenance

COLUMNS = ("layer", "kind", "bits", "quantizer", "val_psnr", "psnr_drop", "seconds")
FLOAT_MODEL = "results/float_quick_x3/float_model.keras"
# The default run (20 layer/kind pairs x 5 widths, 50 steps each) fits in about 10 minutes on 2
# cores (README, "Sensitivity"): a probe costs ~3 s of building, tracing and scoring plus ~45 ms a
# step. 50 steps at LR 1e-4 recover most of what a 2-bit kernel loses at first (conv_0: 1.97 dB
# lost untuned, 0.56 after 30 steps, 0.28 after 100); widths 5 and 7 lie between their neighbours.
FINETUNE_STEPS = 50
WIDTHS = (2, 3, 4, 6, 8)
LEARNING_RATE = 1e-4  # a trained model: Adam at the training rate (1e-3) first knocks it back


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m solvers.search.sensitivity",
                       description=__doc__.split("\n")[0])
    p.add_argument("--float-model", default=FLOAT_MODEL, help="float32 base7 .keras (make float)")
    p.add_argument("--config", default="quantization_config.yaml", help="widths and quantizers")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--finetune-steps", type=int, default=FINETUNE_STEPS,
                   help="train steps after quantizing, before scoring (0: none)")
    p.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    p.add_argument("--batch-size", type=int, default=PROFILES["quick"].batch_size)
    p.add_argument("--patch-size", type=int, default=PROFILES["quick"].patch_size)
    p.add_argument("--widths", type=int, nargs="+", help="widths to probe (default: those of "
                   f"{' '.join(map(str, WIDTHS))} in the config, else all of the config's)")
    p.add_argument("--layers", nargs="+", help="layers to probe (default: all 13)")
    p.add_argument("--data", default=None, help="folder of HR images, or div2k (default: photos)")
    p.add_argument("--lr-data", default=None)
    p.add_argument("--div2k-root", default=None)
    p.add_argument("--train-images", type=int)
    p.add_argument("--val-images", type=int)
    p.add_argument("--out", default="results/sensitivity")
    args = p.parse_args(argv)
    for name in ("finetune_steps", "batch_size", "patch_size"):
        if getattr(args, name) < (0 if name == "finetune_steps" else 1):
            p.error(f"argument --{name.replace('_', '-')}: {getattr(args, name)} is too small")
    return args


def kinds_of(layer):
    return ("kernel", "bias") if layer.startswith("conv_") else ("activation",)


def network_order():
    """base7's layers as data meets them: conv_0, act_0, conv_1, ..., conv_6."""
    from solvers.networks.layout import layer_names
    convs, acts = layer_names()
    return [n for pair in zip(convs, acts + [None]) for n in pair if n]


def probes(space, layers=None, widths=None):
    """[(layer, kind, bits, quantizer string)] to measure, in network order; ConfigError for a
    layer not in base7 or a width no quantizer of the config has."""
    order = network_order()
    unknown = [n for n in layers or () if n not in order]
    if unknown:
        raise ConfigError(f"--layers: {unknown[0]!r} is not a base7 layer; allowed: "
                          f"{', '.join(order)}")
    every = {b for kind in ("kernel", "bias", "activation") for b in getattr(space, kind).values()}
    widths = widths or [b for b in WIDTHS if b in every] or sorted(every)
    missing = sorted(set(widths or ()) - every)
    if missing:
        raise ConfigError(f"--widths: {missing[0]} is not a width of the config; allowed: "
                          f"{' '.join(map(str, sorted(every)))}")
    return [(layer, kind, bits, q) for layer in order if not layers or layer in layers
            for kind in kinds_of(layer)
            for q, bits in sorted(getattr(space, kind).items(), key=lambda item: item[1])
            if bits in widths]


def _model(quantizers, float_weights, args):
    """base7 with these quantizers (other layers float32), from the float weights, compiled."""
    import keras

    from solvers import train
    from solvers.networks.base7 import base7, copy_float_weights
    keras.backend.clear_session()  # a hundred models in one process: keep Keras' state small
    keras.utils.set_random_seed(args.seed)  # the same batches and initial state for every probe
    model = base7(scale=args.scale, quantizers=quantizers)
    copy_float_weights(model, float_weights)
    return train.compile_model(model, args.learning_rate, border=args.scale)


def _score(model, train_ds, val_ds, steps):
    """Validation PSNR after `steps` fine-tune steps (the last epoch's val_psnr of train.fit)."""
    from solvers import train
    if not steps:
        return float(model.evaluate(val_ds, return_dict=True, verbose=0)["psnr"])
    history = train.fit(model, train_ds, val_ds, epochs=1, steps_per_epoch=steps, verbose=0)
    return float(history.history["val_psnr"][-1])


def measure(args):
    """(rows of sensitivity.csv, settings for sensitivity.yaml)."""
    space = load_search_space(args.config, network_order())  # no TensorFlow yet: errors at once
    todo = probes(space, args.layers, args.widths)
    from solvers.data import pipeline, sources
    from solvers.networks.float_model import load_float_weights
    float_weights = load_float_weights(args.float_model, args.scale)
    # Scores use the validation images only; the test split is never read here.
    train_ds, val_ds, _ = pipeline.datasets(sources.data_options(args), args.scale, args.patch_size,
                                            args.batch_size, args.seed, with_test=False)
    os.makedirs(args.out, exist_ok=True)  # an unwritable --out fails before the long part
    before = _score(_model({}, float_weights, args), train_ds, val_ds, 0)
    reference = _score(_model({}, float_weights, args), train_ds, val_ds, args.finetune_steps)
    print(f"float32: {before:.3f} dB, {reference:.3f} dB after {args.finetune_steps} fine-tune "
          f"steps (the reference); {len(todo)} probes", flush=True)
    rows = []
    for n, (layer, kind, bits, q) in enumerate(todo, 1):
        started = time.time()
        quantizers = {layer: {"kernel": None, "bias": None, kind: q}} if kind != "activation" \
            else {layer: {"activation": q}}
        model = _model(quantizers, float_weights, args)
        psnr = _score(model, train_ds, val_ds, args.finetune_steps)
        rows.append({"layer": layer, "kind": kind, "bits": bits, "quantizer": q,
                     "val_psnr": round(psnr, 4), "psnr_drop": round(reference - psnr, 4),
                     "seconds": round(time.time() - started, 2)})
        print(f"[{n}/{len(todo)}] {layer} {kind} {bits} bits: {psnr:.3f} dB "
              f"(drop {reference - psnr:+.3f})", flush=True)
    settings = {"float_model": args.float_model, "scale": args.scale, "seed": args.seed,
                **provenance_of(args, space), "config": args.config,
                "finetune_steps": args.finetune_steps, "learning_rate": args.learning_rate,
                "batch_size": args.batch_size, "patch_size": args.patch_size,
                "float_val_psnr": round(reference, 4), "float_val_psnr_untuned": round(before, 4)}
    return rows, settings


def provenance_of(args, space):
    """What a search checks before using the table (sensitivity_provenance): the data with its
    split version, the float model's file hash, the config's quantizers and limit."""
    from solvers.data import sources
    return {"data": {**sources.data_options(args), "split": sources.SPLIT_VERSION},
            "float_model_sha256": provenance.sha256_of(args.float_model),
            **provenance.config_record(args.config, space)}


def write_outputs(out, rows, settings):
    from solvers.report import plots
    files.write_csv(os.path.join(out, "sensitivity.csv"), COLUMNS, rows)
    settings = {**settings, "csv_sha256": provenance.sha256_of(os.path.join(out, "sensitivity.csv"))}
    files.write_yaml(os.path.join(out, "sensitivity.yaml"), settings)  # after the csv it describes
    table = {(r["layer"], r["kind"], r["bits"]): r["psnr_drop"] for r in rows}
    plots.sensitivity_heatmap(table, os.path.join(out, "sensitivity.png"),
                              f"{settings['finetune_steps']} fine-tune steps, float32 "
                              f"{settings['float_val_psnr']:.2f} dB")


def read_table(path):
    """{(layer, kind, bits): psnr_drop} from sensitivity.csv, in its row order; of two quantizers
    of one width, the smaller drop."""
    table = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key, drop = (row["layer"], row["kind"], int(row["bits"])), float(row["psnr_drop"])
            table[key] = min(drop, table.get(key, drop))
    return table


def sensitivity_md(table, chosen):
    """Markdown table, one row per (layer, kind): the chosen bits ({(layer, kind): bits}), the
    drop there, and the drop at every width (the chosen one in bold). A chosen width that was not
    measured shows "≤" the drop at the next narrower width measured (fewer bits lose more)."""
    widths = sorted({bits for _, _, bits in table})
    pairs = list(dict.fromkeys((layer, kind) for layer, kind, _ in table))
    lines = ["| layer | kind | chosen bits | drop at chosen (dB) | "
             + " | ".join(f"{b} bits" for b in widths) + " |",
             "|---|---|---:|---:|" + "---:|" * len(widths)]
    for layer, kind in pairs:
        bits = chosen.get((layer, kind))
        cells = []
        for b in widths:
            drop = table.get((layer, kind, b))
            text = "–" if drop is None else f"{drop:.2f}"
            cells.append(f"**{text}**" if b == bits and drop is not None else text)
        lines.append(f"| {layer} | {kind} | {'–' if bits is None else bits} | "
                     f"{_drop_at(table, layer, kind, bits)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _drop_at(table, layer, kind, bits):
    if bits is None:
        return "–"
    if (layer, kind, bits) in table:
        return f"{table[(layer, kind, bits)]:.2f}"
    below = [b for name, k, b in table if (name, k) == (layer, kind) and b < bits]
    return f"≤{table[(layer, kind, max(below))]:.2f}" if below else "–"


def report_section(run_settings, layers):
    """report.md's lines on sensitivity: the table the run's starting points came from (run.yaml's
    `sensitivity` record), [] for a run that used none. A table whose file changed since (its hash
    is not the recorded one) is named, not shown. layers: summary.yaml's (conv_i with kernel_bits,
    bias_bits and activation_bits, the width of act_i after it)."""
    record = (run_settings or {}).get("sensitivity") or {}
    csv_path = record.get("table")
    if not csv_path:
        return []
    heading = "## Sensitivity of each layer\n"
    try:
        if provenance.sha256_of(csv_path) != record.get("csv_sha256"):
            return [heading, f"{csv_path}: changed since this run used it (its sha256 differs from "
                             "run.yaml's), so its numbers are not shown\n"]
        measured = files.read_yaml(os.path.join(os.path.dirname(csv_path), "sensitivity.yaml"))
        table = read_table(csv_path)
    except (OSError, ValueError, KeyError, AttributeError) as e:
        return [heading, f"{csv_path}: unreadable ({e})\n"]
    chosen = {}
    for i, layer in enumerate(layers or []):
        chosen.update({(layer["name"], k): layer.get(f"{k}_bits") for k in ("kernel", "bias")})
        chosen[(f"act_{i}", "activation")] = layer.get("activation_bits")
    return [heading,
            (f"Validation PSNR lost (dB) when only that layer's quantizer is quantized, from "
             f"the float model {measured.get('float_model')} ({measured.get('float_val_psnr')} "
             f"dB), after {measured.get('finetune_steps')} fine-tune steps (make sensitivity; "
             f"{csv_path}, the table this run's starting points came from). The chosen width is "
             "in bold; ≤: not measured, at most the drop at the next narrower width.\n"),
            sensitivity_md(table, chosen)]


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    try:
        rows, settings = measure(args)
        write_outputs(args.out, rows, settings)
    except ConfigError as e:  # DataError too
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable --out
        print(f"error: cannot write {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"outputs: {args.out}/sensitivity.csv, .yaml, .png | total time "
          f"{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
