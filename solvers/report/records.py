"""A run's records: trials.csv, best_config.yaml, summary.yaml, and the summary table printed at
the end."""
import os

import yaml

from solvers import files
from solvers.search import cost
from solvers.networks.base7 import base7, hp_name, quantizer_values, quantizers_from_hp

METRICS = ("size_bits", "bits", "bops", "energy_pj", "cost", "val_loss", "val_psnr", "val_score")


def _worker(project_dir, trial_id):
    """The Keras Tuner id (tuner0, tuner1, ...) of the process that ran a trial, if recorded."""
    path = os.path.join(project_dir, f"trial_{trial_id}", "worker.txt")
    if not (project_dir and os.path.isfile(path)):
        return ""
    with open(path) as f:
        return f.read().strip()


def trial_rows(oracle, hp_names, project_dir=None, choices=None, finals=None):
    """One dict per trial: id, status, epochs trained, each hyperparameter in `hp_names`, each
    quantizer string (conv_0_kernel...: base7.quantizer_values of `choices`, when given), and the
    metrics of the epoch with the best val_score (not each metric's own best, which could come
    from different epochs). finals: {trial_id: (finalist rank, val PSNR after its retrain)} of
    the finalists (search/finalists.py), once they are retrained."""
    rows = []
    finals = finals or {}
    for trial_id, trial in sorted(oracle.trials.items()):
        values = trial.hyperparameters.values
        # Keras Tuner calls a trial that raised INVALID (FAILED when it raised FailedTrialError):
        # both are failures to a user, and the reason is the exception's last line.
        failed = trial.status in ("INVALID", "FAILED")
        reason = (trial.message or "").strip().splitlines()[-1:] if failed else []
        row = {"trial_id": trial_id, "status": "FAILED" if failed else trial.status,
               "reason": reason[0] if reason else "", "worker": _worker(project_dir, trial_id),
               # which starting point this is (search/starting_points.py), empty for one the search chose
               "start": (getattr(oracle, "start_label", lambda v: None)(values) or ""),
               "finalist": finals.get(trial_id, ("", ""))[0],
               "final_val_psnr": finals.get(trial_id, ("", ""))[1],
               **{name: values.get(name, "") for name in hp_names},
               **(quantizer_values(choices, values) if choices else {})}
        metrics = trial.metrics
        if metrics.exists("val_score") and not failed:
            best_step = metrics.get_best_step("val_score")
            row["best_epoch"] = best_step + 1
            for name in METRICS:
                at_step = [o for o in metrics.get_history(name) if o.step == best_step] \
                    if metrics.exists(name) else []
                row[name] = float(at_step[0].mean()) if at_step else ""
        rows.append(row)
    return rows


def trial_columns(hp_names, choices=None):
    """trials.csv's hyperparameter and quantizer columns: the hyperparameters (widths such as
    conv_0_kernel_bits, filters), then each layer's quantizer string (conv_0_kernel...) that is
    not itself a hyperparameter, for best_config.yaml-style readers and older tooling."""
    strings = [hp_name(layer, c.kind) for c in (choices or {}).values() for layer in c.layers]
    return [*hp_names, *(name for name in strings if name not in hp_names)]


def write_trials_csv(path, rows, hp_names):
    """trials.csv; hp_names: its hyperparameter and quantizer columns (trial_columns)."""
    columns = ["trial_id", "status", "best_epoch", *METRICS, *hp_names, "start", "finalist",
               "final_val_psnr", "worker", "reason"]
    files.write_csv(path, columns, rows)


def write_best_config(path, values, scale, m=4, filters=None):
    """best_config.yaml: per-layer quantizers, and each convolution's filters (MyHyperModel.widths:
    the winner's widths; None leaves them out, for base7's own), in the form `load_best_config`
    rebuilds."""
    document = {"network": {"name": "base7", "scale": scale, "m": m},
                "quantizers": quantizers_from_hp(values, m)}
    if filters is not None:
        document["filters"] = {name: int(n) for name, n in filters.items()}
    files.write_yaml(path, document)


def summary_record(model, trial_id, values, before, after, goal=cost.Goal(), test=None,
                   val_images=None):
    """summary.yaml: the chosen trial, its sizes and costs (cost.costs under `goal`) and its
    validation scores before and after the retrain (what the report and comparisons read,
    without loading any model). `test` ({psnr, loss, images}: the retrained model on the held-out
    test split; psnr_search, loss_search: the searched model, when given) becomes a `test`
    mapping and `val_images` the number of validation images; both are left out when None (and
    older summaries lack them)."""
    held_out = {} if test is None else {"test": {
        k: int(v) if k == "images" else float(v) for k, v in test.items()}}
    return {
        "best_trial": trial_id,
        "goal": goal.type, "costs": {k: float(v) for k, v in cost.costs(model, goal).items()},
        "size_bits": cost.size_bits(model),
        "float32_bits": cost.uniform_size_bits(model, cost.FLOAT_BITS),
        "uniform8_bits": cost.uniform_size_bits(model, 8),
        "val_psnr_search": float(before["psnr"]), "val_loss_search": float(before["loss"]),
        "val_psnr_retrained": float(after["psnr"]), "val_loss_retrained": float(after["loss"]),
        **({} if val_images is None else {"val_images": int(val_images)}), **held_out,
        "layers": [{"name": s.name, "filters": int(model.get_layer(s.name).filters),
                    "weights": s.weights, "biases": s.biases,
                    "kernel_bits": s.kernel_bits, "bias_bits": s.bias_bits,
                    "activation_bits": None if f"act_{i}_activation" not in values
                    else _bits_in(values[f"act_{i}_activation"])}
                   for i, s in enumerate(cost.layer_sizes(model))],
    }


def load_best_config(path):
    """An untrained quantized base7 with the per-layer quantizers and filters of a
    best_config.yaml (one without filters: base7's own widths)."""
    with open(path) as f:
        document = yaml.safe_load(f)
    network = document["network"]
    return base7(scale=network["scale"], m=network["m"], quantizers=document["quantizers"],
                 filters=document.get("filters"))


def summary(model, values, before, after, test=None):
    """The per-layer table of bits and the size and PSNR lines printed at the end of a run
    (`test`: the retrained model's {psnr, loss, images} on the held-out test split, if any)."""
    sizes = cost.layer_sizes(model)
    float_bits = cost.uniform_size_bits(model, cost.FLOAT_BITS)
    uniform8 = cost.uniform_size_bits(model, 8)
    total = sum(s.bits for s in sizes)
    lines = [f"{'layer':<8}{'filters':>8}{'params':>8}{'kernel':>8}{'bias':>6}{'relu':>6}"
             f"{'bits':>10}  quantizers"]
    for i, s in enumerate(sizes):
        act = values.get(f"act_{i}_activation")
        act_bits = "-" if act is None else _bits_in(act)
        lines.append(f"{s.name:<8}{model.get_layer(s.name).filters:>8}"
                     f"{s.weights + s.biases:>8}{s.kernel_bits:>8}{s.bias_bits:>6}"
                     f"{act_bits:>6}{s.bits:>10}  {values[f'conv_{i}_kernel']}, "
                     f"{values[f'conv_{i}_bias']}" + (f", {act}" if act else ""))
    lines.append(f"size: {total} bits = {total / 8192:.2f} KiB | float32 {float_bits / 8192:.2f} KiB "
                 f"({float_bits / total:.1f}x smaller) | uniform 8-bit {uniform8 / 8192:.2f} KiB "
                 f"({uniform8 / total:.2f}x smaller)")
    lines.append(f"val PSNR (selection): {before['psnr']:.2f} dB after the search, "
                 f"{after['psnr']:.2f} dB after the retrain"
                 + ("" if test is None else f" | test PSNR (held out, {test['images']} image"
                    f"{'s' * (test['images'] != 1)}): {test['psnr']:.2f} dB after the retrain"))
    return "\n".join(lines)


def _bits_in(quantizer):
    from qkeras import get_quantizer
    return get_quantizer(quantizer).bits
