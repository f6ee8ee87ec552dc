"""The words of report.md: the verdict paragraph and the settings, summary and trials sections,
computed from a loaded run (solvers.report.report_md.load_run) and the uniform baselines."""
import math
import shlex

from solvers.config import PROFILES
from solvers.report import pareto
from solvers.report.pareto import bits_summary, in_units, number, trial_key

COSTS = ("size_bits", "bits", "bops", "energy_pj")  # columns of trials.csv, in the tables


def kib(bits):
    """Bits as KiB with 2 decimals ("–" for a missing number)."""
    return "–" if bits is None else f"{bits / 8192:.2f}"


def cell(value, fmt="{:.2f}"):
    return "–" if number(value) is None else fmt.format(number(value))


def versus(diff):
    """A PSNR difference in words and signed dB, e.g. `0.23 dB better (+0.23 dB)`."""
    word = "better" if diff > 0 else "worse" if diff < 0 else "equal"
    return f"{abs(diff):.2f} dB {word} ({diff:+.2f} dB)"


def short(value, limit=60):
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


# Makefile variables of a run's settings (run.yaml), for the `make baselines` command it needs.
MAKE_DATA = (("DATA", "data"), ("LR_DATA", "lr_data"), ("DIV2K_ROOT", "div2k_root"),
             ("TRAIN_IMAGES", "train_images"), ("VAL_IMAGES", "val_images"),
             ("TEST_IMAGES", "test_images"))
MAKE_BUDGET = (("EPOCHS", "epochs"), ("STEPS", "steps_per_epoch"), ("BATCH", "batch_size"),
               ("PATCH", "patch_size"))


def baselines_command(s):
    """`make baselines ...` with the run's variables (those that differ from the Makefile's
    defaults), which trains a set that matches the run; a learning rate other than 1e-3 (no
    Makefile variable) is named after it."""
    profile = s.get("profile") or "quick"
    defaults = PROFILES.get(profile, PROFILES["quick"])
    budget, data = s.get("settings") or {}, s.get("data") or {}
    words = [("PROFILE", profile)]
    words += [(var, s.get(key)) for var, key, default in (("SEED", "seed", 1),
                                                          ("SCALE", "scale", 3))
              if s.get(key) not in (None, default)]
    words += [(var, data[key]) for var, key in MAKE_DATA if data.get(key) is not None]
    words += [(var, budget[key]) for var, key in MAKE_BUDGET
              if budget.get(key) not in (None, getattr(defaults, key))]
    if s.get("config") not in (None, "quantization_config.yaml"):
        words.append(("CONFIG", s["config"]))
    command = "make baselines " + " ".join(f"{var}={shlex.quote(str(v))}" for var, v in words)
    lr = s.get("learning_rate")
    return f"`{command}`" + ("" if lr in (None, 1e-3) else
                             f" with learning rate {lr} (`autoq.py --baselines --learning-rate "
                             f"{lr}` and the same options: the Makefile has no variable for it)")


def baselines_source(run, match, baselines):
    """The verdict's sentence on where the baselines come from: a matching set, a given one that
    may differ, or none (and the command that trains one)."""
    path, s = match["path"], run["settings"]
    alike = "this run's data, scale, seed, search space and budget"
    if path is None:
        found, unrecorded, closest = match["found"], match["unrecorded"], match["closest"]
        if not found:
            return (f"No uniform baselines were found in {match['folder']}/: run "
                    f"{baselines_command(s)} to compare with uniform quantization at {alike}; "
                    "until then only the float32 and 8-bit sizes above compare.")
        text = (f"{found} set{'s' if found > 1 else ''} of uniform baselines "
                f"{'were' if found > 1 else 'was'} found in {match['folder']}/"
                + (f" ({unrecorded} without baselines.yaml, from before their settings were "
                   "recorded)" if unrecorded else "")
                + f", but none matches {alike}")
        if closest:
            name, (key, there, here) = closest
            text += f" (the closest, {name}, has {key} = {short(there)}, this run {short(here)})"
        text += (", so no baseline is compared or plotted. Run "
                 f"{baselines_command(s)} to make a matching set (or `make report RUN="
                 f"{run['name']} BASELINES=path/baselines.csv` to compare with one regardless).")
        if s and s.get("quantizers") is None:
            text += (" This run's run.yaml does not record its quantizers (it predates them), so "
                     "no set can match it.")
        return text
    if baselines is None:
        return (f"No uniform baselines were found ({path}): run {baselines_command(s)} to "
                f"compare with uniform quantization at {alike}; until then only the float32 and "
                "8-bit sizes above compare.")
    diff = match["difference"]
    if diff == "unknown":
        return (f"The uniform baselines of {path} have no readable baselines.yaml beside them, "
                f"so whether they were trained with {alike} is unknown: the comparison that "
                "follows may not be like for like.")
    if diff:
        key, there, here = diff
        return (f"The uniform baselines of {path} were not trained like this run ({key} = "
                f"{short(there)} there, {short(here)} in this run), so the comparison that "
                "follows is not like for like.")
    budget = s.get("settings") or {}
    return (f"The uniform baselines of {path} were trained with {alike} ("
            f"{budget.get('epochs')} epochs × {budget.get('steps_per_epoch')} steps, batch "
            f"{budget.get('batch_size')}, patch {budget.get('patch_size')}, as a search trial).")


def _width(baseline):
    """A baseline's uniform width (32: float32); baselines.csv called it `bits` before the costs."""
    return number(baseline["width"] if "width" in baseline else baseline.get("bits"))


def images(count):
    """`, 8 images` for a split's size ("" when unknown: runs from before it was recorded)."""
    return "" if count is None else f", {count} image{'s' * (count != 1)}"


def judged_on(run, baselines):
    """(the baselines' PSNR column the verdict compares, the chosen model's PSNR at one trial's
    budget on the same images, the sentence saying which). The held-out test split when the run's
    summary.yaml has the searched model's test PSNR and the baselines a test_psnr column; else
    validation, the images the winner was picked on, which flatters it."""
    test, val_psnr = run["sizes"].get("test") or {}, number(run["chosen"]["val_psnr"])
    if number(test.get("psnr_search")) is None:
        why = "this run has no test figures (it predates the held-out test split)"
    elif not any(number(b.get("test_psnr")) is not None for b in baselines or []):
        why = "its baselines have no test_psnr column (trained before it was recorded)"
    else:
        return "test_psnr", number(test["psnr_search"]), (
            f"The comparison that follows is on the test images (held out{images(test.get('images'))}),"
            " which no selection step saw, both models at one search trial's budget.")
    return "val_psnr", val_psnr, (
        f"The comparison that follows is on validation PSNR (selection"
        f"{images(run['sizes'].get('val_images'))}), the images the search picked its winner on, "
        f"which flatters the chosen model: {why}.")


def verdict(run, baselines, match):
    """One paragraph from the numbers: the chosen model's search-trial PSNR against the uniform
    baseline nearest in size (by ratio) and uniform 8-bit, on the test images when both the run and
    the baselines have test figures, else on validation (judged_on), and whether it is on the
    Pareto front. match (solvers.report.baseline_match.find_baselines) says which baselines were
    found and whether they were trained like the run: baselines are the rows of match["path"]
    (None: none)."""
    chosen, sizes = run["chosen"], run["sizes"]
    if chosen is None or number(chosen["val_psnr"]) is None:
        return "No trial completed, so there is no chosen model to judge."
    size, val_psnr = number(chosen["size_bits"]), number(chosen["val_psnr"])
    key, psnr, judged = judged_on(run, baselines)
    test = sizes.get("test") or {}
    epochs = (run["settings"].get("settings") or {}).get("epochs")
    on_test = ("" if number(test.get("psnr_search")) is None else
               f" and {number(test['psnr_search']):.2f} dB on the test images (held out"
               f"{images(test.get('images'))})")
    text = [f"The chosen model (trial {chosen['trial_id']}) stores {kib(size)} KiB, "
            f"{sizes['float32_bits'] / size:.1f}× smaller than float32 and "
            f"{sizes['uniform8_bits'] / size:.2f}× smaller than uniform 8-bit; after its search "
            f"trial{f' ({epochs} epochs)' if epochs else ''} it reached {val_psnr:.2f} dB on the "
            f"validation images (selection{images(sizes.get('val_images'))}){on_test}.",
            baselines_source(run, match, baselines)]
    column = run.get("column", "size_bits")  # the cost the run is judged by (its goal's)
    cost = number(chosen.get(column))
    if column != "size_bits" and cost is not None:
        text.append(f"Its goal cost ({column}) is {in_units(cost, column)}.")
    uniform = [b for b in baselines or [] if (number(b.get(column)) or 0) > 0
               and number(b.get(key)) is not None and _width(b) not in (0, 32)
               and b["label"] != "float32"]  # width 0: the hand rule, not one width
    rule = next((b for b in baselines or [] if _width(b) == 0 and number(b.get(key)) is not None
                 and number(b.get(column))), None)
    if baselines is not None and not uniform:  # (no baselines: baselines_source said why)
        text.append(f"{match['path']} has no uniform baseline with a {column} and a PSNR.")
    elif uniform and cost:
        text.append(judged)
        near = min(uniform, key=lambda b: abs(math.log(number(b[column]) / cost)))
        n_cost, n_psnr = number(near[column]), number(near[key])
        text.append(f"The uniform baseline nearest in {column} (by ratio) is {near['label']} "
                    f"({in_units(n_cost, column)}, {n_psnr:.2f} dB): the chosen model is "
                    f"{versus(psnr - n_psnr)} at {cost / n_cost:.2f}× its {column}.")
        u8 = next((b for b in uniform if _width(b) == 8), None)
        if u8 is not None:
            u8_cost, u8_psnr = number(u8[column]), number(u8[key])
            text.append(f"Against uniform 8-bit ({in_units(u8_cost, column)}, {u8_psnr:.2f} dB): "
                        f"{versus(psnr - u8_psnr)} at {u8_cost / cost:.2f}× less {column}.")
        if rule is not None:
            r_cost, r_psnr = number(rule[column]), number(rule[key])
            text.append(f"Against the {rule['label']} ({in_units(r_cost, column)}, "
                        f"{r_psnr:.2f} dB): {versus(psnr - r_psnr)} at {cost / r_cost:.2f}× its "
                        f"{column}.")
        better = [b["label"] for b in uniform + ([rule] if rule else [])
                  if number(b[column]) <= cost and number(b[key]) >= psnr]
        text.append(f"{', '.join(better)}: no costlier ({column}) and at least as good, so the "
                    "search did not beat uniform quantization here." if better else
                    f"No uniform baseline is both as cheap ({column}) and as good.")
    done = len(pareto.candidates(run["rows"]))
    text.append(f"It is on this run's Pareto front ({len(run['front'])} of {done} completed "
                "trials)." if chosen.get(pareto.PARETO) == "true" else
                "It is not on this run's Pareto front: another trial is no costlier and at least as "
                "good after the search (the score also weighs the loss).")
    if sizes.get("val_psnr_retrained") is not None:
        held_out = ("" if number(test.get("psnr")) is None else
                    f" on validation and {number(test['psnr']):.2f} dB on the test images")
        text.append(f"After the retrain it reached {sizes['val_psnr_retrained']:.2f} dB{held_out} "
                    "(a longer budget, so not comparable with the baselines).")
    return " ".join(text)


def splits_md(run):
    """Which of the report's figures come from which images: validation (the selection's) or test
    (held out)."""
    sz = run["sizes"]
    if not (sz.get("test") or {}):
        return ("All PSNR figures here are on the validation images, the ones the search selected "
                "on: this run predates the held-out test split.\n")
    return (f"Validation (selection{images(sz.get('val_images'))}): every trial's val_psnr, the "
            "Pareto front, tradeoff.png and progress.png, the winner's pick and the retrain's best "
            f"epoch. Test (held out{images(sz['test'].get('images'))}): the chosen model's test "
            "Y-PSNR, sr_samples.png and, when the baselines have test figures, the verdict.\n")


def settings_md(s):
    """The settings of run.yaml as a list."""
    if not s:
        return "run.yaml is missing (a run from before it was written): settings unknown.\n"
    pairs = lambda d: ", ".join(f"{k}={v}" for k, v in (d or {}).items() if v is not None)  # noqa
    space = s.get("search_space") or {}
    return "\n".join([
        f"- algorithm: **{s.get('algo')}**, profile **{s.get('profile')}** "
        f"({pairs(s.get('settings'))})",
        f"- objective: {pairs(s.get('objective'))}",
        f"- seed {s.get('seed')}, scale ×{s.get('scale')}, learning rate {s.get('learning_rate')}, "
        f"config `{s.get('config')}` ({len(space)} quantizer choices, "
        f"{math.prod(len(v) for v in space.values()):.3g} combinations)",
        f"- data: {pairs(s.get('data')) or 'scikit-image photos (default)'}",
        f"- float model: {s.get('float_model') or 'none (trials start from scratch)'}",
        f"- versions: {pairs(s.get('versions'))}"]) + "\n"


def summary_md(run):
    """Per-layer bits, sizes against float32 and uniform 8-bit, PSNR after search and retrain."""
    layers, sz = run["layers"], run["sizes"]
    if not layers:
        return "No chosen model.\n"
    show = lambda v: "–" if v is None else str(v)  # noqa: E731
    # Filters: each layer's width (the chosen ones after a filter search); older summaries lack it.
    filters = any("filters" in x for x in layers)
    lines = ["| layer |" + (" filters |" if filters else "") + " weights | biases | kernel bits | "
             "bias bits | activation bits | bits |", "|---|" + ("---:|" if filters else "")
             + "---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {x['name']} |" + (f" {show(x.get('filters'))} |" if filters else "")
              + f" {x['weights']} | {x['biases']} | {show(x['kernel_bits'])} | "
              f"{show(x['bias_bits'])} | {show(x['activation_bits'])} | "
              f"{x['weights'] * (x['kernel_bits'] or 0) + x['biases'] * (x['bias_bits'] or 0)} |"
              for x in layers]
    size, after, test = sz["size_bits"], sz.get("val_psnr_retrained"), sz.get("test") or {}
    lines += ["", f"- size: {size:.0f} bits = **{kib(size)} KiB**; float32 "
              f"{kib(sz['float32_bits'])} KiB ({sz['float32_bits'] / size:.1f}× smaller), "
              f"uniform 8-bit {kib(sz['uniform8_bits'])} KiB "
              f"({sz['uniform8_bits'] / size:.2f}× smaller)",
              f"- validation Y-PSNR (selection{images(sz.get('val_images'))}): "
              f"{sz['val_psnr_search']:.2f} dB after the search trial, "
              + (f"{after:.2f} dB after the retrain" if after is not None
                 else "after the retrain unknown (no summary.yaml)"),
              f"- test Y-PSNR (held out{images(test.get('images'))}): "
              f"{cell(test.get('psnr_search'))} dB after the search trial, "
              f"**{cell(test.get('psnr'))} dB** after the retrain" if test else
              "- test Y-PSNR: not measured (a run from before the held-out test split)"]
    return "\n".join(lines) + "\n"


def trials_md(run):
    """Every trial, best val_score first (failed and unscored ones last), with the worker that
    ran it (tuner0, tuner1, ... in a distributed search) and why a failed one failed."""
    def key(r):
        return number(r["val_score"]) is None, number(r["val_score"]) or 0, trial_key(r)
    chosen = run["chosen"] and run["chosen"]["trial_id"]
    costs = [c for c in COSTS if any(c in r for r in run["rows"])]  # older runs: size_bits only
    lines = ["| rank | trial | status | " + " | ".join(f"{c} ({pareto.UNITS[c][0]})" for c in costs)
             + " | val_psnr (dB) | val_score | Pareto | bits per conv: kernel/bias/activation | "
             "worker | reason |", "|---:|---|---|" + "---:|" * len(costs) + "---:|---:|---|---|---|---|"]
    for rank, r in enumerate(sorted(run["rows"], key=key), 1):
        cells = " | ".join(in_units(r.get(c), c).split(" ")[0] for c in costs)
        lines.append(f"| {rank}{' (chosen)' if r['trial_id'] == chosen else ''} | "
                     f"{r['trial_id']} | {r['status']} | {cells} | "
                     f"{cell(r['val_psnr'])} | {cell(r['val_score'], '{:.4f}')} | "
                     f"{'yes' if r.get(pareto.PARETO) == 'true' else ''} | {bits_summary(r)} | "
                     f"{r.get('worker', '')} | {r.get('reason', '')} |")
    return "\n".join(lines) + "\n"
