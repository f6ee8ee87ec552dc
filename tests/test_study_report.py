"""make study's report (solvers/report/study_rows.py, study_md.py) on hand-made search and
gradient folders (run.yaml, summary.yaml, best_config.yaml, trials.csv) and points.csv: no
training."""
import csv
from pathlib import Path

import pytest
import yaml

from solvers import study_plan
from solvers.objective_settings import Goal
from solvers.report import records, study_md, study_rows
from solvers.search.starting_points import EXACT_ALLOCATION

Q = {"k": 'quantized_bits({},0,alpha="auto_po2")', "b": "quantized_bits({},0,alpha=1.0)",
     "a": "quantized_relu({},8)"}
SEEDS = (1, 2, 3)
U3, U4 = 4e9, 5.6e9  # the budgets' costs in BOPs (4.00 and 5.60 GBOPs)
OWN = 0.05  # the searches' own models score this much above their picks trained from scratch
OFFSET = {1: 0.0, 2: 0.1, 3: -0.1}  # each seed's references move together


def _trial(trial_id, kernel, act, cost, val_psnr, start="", status="COMPLETED"):
    """A trials.csv row, biases at 8 bits; kernel: one width or 7."""
    kernel = kernel if isinstance(kernel, list) else [kernel] * 7
    row = {"trial_id": str(trial_id), "status": status, "cost": str(cost), "bops": str(cost),
           "val_psnr": str(val_psnr), "start": start}
    if status != "COMPLETED":  # a trial that did not train records no metrics
        row.update(cost="", bops="", val_psnr="")
    for i in range(7):
        row[f"conv_{i}_kernel_bits"], row[f"conv_{i}_kernel"] = kernel[i], Q["k"].format(kernel[i])
        row[f"conv_{i}_bias_bits"], row[f"conv_{i}_bias"] = 8, Q["b"].format(8)
    for i in range(6):
        row[f"act_{i}_activation_bits"], row[f"act_{i}_activation"] = act, Q["a"].format(act)
    return row


def _write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _pick_point(seed, name, goal, spec, cost, test_psnr, trial):
    """points.csv's row of a pick trained from scratch (solvers/study.py train_points)."""
    return {"seed": seed, "label": study_rows.pick_label(name), "kind": "pick", goal: cost,
            "cost": cost, "epochs": 9, "goal": goal, "budget": spec, "val_psnr": 32,
            "test_psnr": round(test_psnr, 4), "layer_bits": study_rows.row_bits(trial)}


def _search(out, seed, algo, spec, cost, test_psnr, source, trials, winner="2", redrawn=0,
            goal="bops"):
    """A finished search; test_psnr: its pick trained from scratch (its own model: + OWN).
    Returns the pick's points.csv row."""
    name = study_plan.search_name(goal, spec, algo)
    folder = out / f"seed{seed}" / "searches" / name
    _write_csv(folder / "trials.csv", trials)
    trial = next(t for t in trials if t["trial_id"] == winner)
    pick_cost = float(trial["cost"])
    records.write_best_config(str(folder / "best_config.yaml"), trial, 3)
    (folder / "run.yaml").write_text(yaml.safe_dump({"algo": algo, "scale": 3, "settings": {
        "trials": 8, "epochs": 3, "retrain_epochs": 6, "steps_per_epoch": 100}}))
    own = test_psnr + OWN
    (folder / "summary.yaml").write_text(yaml.safe_dump({
        "best_trial": winner, "goal": goal, "costs": {goal: pick_cost, "cost": pick_cost},
        "test": {"psnr": own, "loss": 6.0, "psnr_search": own - 0.3, "loss_search": 6.2,
                 "images": 6},
        "budget": {"spec": spec, "goal": goal, "cost": cost, "band": 0.9},
        "proposals": {"redrawn": redrawn, "repaired": 1},
        "finalists": [{"trial_id": winner, "start": trial["start"], "trial_val_psnr": 32.1,
                       "final_val_psnr": 32.5}],
        "winner": {"trial_id": winner, "start": trial["start"], "source": source},
        "elapsed_s": 300.0}))
    return _pick_point(seed, name, goal, spec, pick_cost, test_psnr, trial)


def _trials(budget, over=False):
    """A search's trials: uniform 3-bit and the exact allocation (starting points), proposed ones
    within the budget, a proposal that failed (no cost: not trained), and, with `over`, one
    trained over the budget."""
    rows = [_trial(0, 3, 3, budget, 32.0, "uniform 3-bit"),  # at the budget exactly: within
            _trial(1, [8, 3, 3, 4, 3, 4, 4], 3, 0.995 * budget, 32.2, EXACT_ALLOCATION),
            _trial(2, [8, 4, 3, 3, 3, 3, 6], 3, 0.97 * budget, 32.3),
            _trial(3, 5, 4, "", "", status="FAILED"),
            _trial(4, 4, 4, 1.4 * budget, "", "uniform 4-bit", status="FAILED")]
    if over:
        rows.append(_trial(5, 4, 3, 1.01 * budget, 32.4))
    return rows


def _points(seed):
    o = OFFSET[seed]
    refs = [("uniform 2-bit", "uniform", 0.7 * U3, 33.4), ("uniform 3-bit", "uniform", U3, 34.0),
            ("uniform 4-bit", "uniform", U4, 34.5), ("uniform 8-bit", "uniform", 4 * U3, 34.8),
            ("float32", "float", 100 * U3, 34.85),
            ("hand rule k8-2 a3", "hand rule", 0.98 * U3, 34.2),
            ("hand rule k8-2 a4", "hand rule", 1.15 * U3, 34.4),
            (study_rows.exact_label("bops", "uniform3"), "exact allocation", 0.995 * U3, 34.25),
            (study_rows.exact_label("bops", "uniform4"), "exact allocation", 0.99 * U4, 34.6)]
    return [{"seed": seed, "label": label, "kind": kind, "bops": cost, "cost": cost, "epochs": 9,
             "goal": "bops" if kind == "exact allocation" else "",
             "budget": label.rsplit(" ", 1)[-1] if kind == "exact allocation" else "",
             "val_psnr": 32, "test_psnr": round(psnr + (0 if kind == "float" else o), 4),
             "layer_bits": label} for label, kind, cost, psnr in refs]


def _study(out, extra=None):
    """Three seeds at bops: uniform3 random and evolution, uniform4 random; extra(out, seed)
    adds more and returns their points.csv rows."""
    for s in SEEDS:
        u3, u4 = 34.0 + OFFSET[s], 34.5 + OFFSET[s]
        # random at uniform3: +0.35 +0.35 +0.30 over uniform 3-bit; proposed, proposed, exact
        picks = [_search(out, s, "random", "uniform3", U3, u3 + {1: .35, 2: .35, 3: .30}[s],
                         "exact allocation" if s == 3 else "proposed", _trials(U3), redrawn=4,
                         winner="1" if s == 3 else "2")]
        # evolution at uniform3: the exact allocation every time, within noise of it trained alone
        picks.append(_search(out, s, "evolution", "uniform3", U3,
                             u3 + {1: .27, 2: .21, 3: .28}[s], "exact allocation",
                             _trials(U3, over=s == 2), winner="1"))
        # random at uniform4: +0.1 +0.3 -0.1 over uniform 4-bit
        picks.append(_search(out, s, "random", "uniform4", U4, u4 + {1: .1, 2: .3, 3: -.1}[s],
                             "proposed" if s == 1 else "starting point", _trials(U4)))
        picks += extra(out, s) if extra else []
        _write_csv(out / f"seed{s}" / "points.csv", _points(s) + picks)


def _gradient(out, seed):
    """A gradient run at bops uniform3 (autoq.py --algo gradient): run.yaml, best_config.yaml and
    a summary.yaml as solvers/report/records.py writes them, no trials.csv, no proposals; its
    pick trained from scratch +0.42 dB over uniform 3-bit, its own model +0.47; 60 s against
    the searches' 300 s; seed 3's model 2 % over the budget."""
    name = study_plan.search_name("bops", "uniform3", "gradient")
    folder = out / f"seed{seed}" / "searches" / name
    folder.mkdir(parents=True)
    trial = _trial("", [6, 3, 2, 3, 2, 3, 6], 3, 0, 0)
    records.write_best_config(str(folder / "best_config.yaml"), trial, 3)
    (folder / "run.yaml").write_text(yaml.safe_dump({"algo": "gradient", "scale": 3,
                                                     "settings": {"epochs": 3}}))
    model = records.load_best_config(str(folder / "best_config.yaml"))
    cost = (1.02 if seed == 3 else 0.98) * U3
    u3 = 34.0 + OFFSET[seed]
    summary = records.summary_record(
        model, None, trial, {"psnr": 32.0, "loss": 6.1}, {"psnr": 32.4, "loss": 6.0},
        Goal(type="bops"), test={"psnr": u3 + 0.47, "loss": 6.0, "images": 6}, val_images=4)
    summary.update(costs={"bops": cost, "cost": cost}, elapsed_s=60.0,
                   budget={"spec": "uniform3", "goal": "bops", "cost": U3, "band": 0.9},
                   winner={"trial_id": None, "start": None, "source": "gradient"})
    (folder / "summary.yaml").write_text(yaml.safe_dump(summary))
    return [_pick_point(seed, name, "bops", "uniform3", cost, u3 + 0.42, trial)]


def test_over_budget_trials_are_the_trained_ones_above_the_budget(tmp_path):
    _study(tmp_path, _gradient)
    searches = study_rows.read_searches(str(tmp_path), SEEDS)
    assert len(searches) == 12
    over = {(s.seed, s.algo, s.budget["spec"]): [r["trial_id"] for r in s.over_budget()]
            for s in searches}
    # Trial 0 costs the budget exactly; trial 4 costs more but never trained. A gradient run
    # trained one model, its final one.
    assert over[(2, "evolution", "uniform3")] == ["5"]
    assert over[(3, "gradient", "uniform3")] == ["final"]
    assert sum(map(len, over.values())) == 2


def _row(table, budget, algo):
    return next(r for r in table if r.budget == budget and r.algo == algo)


def test_rows_set_each_pick_trained_from_scratch_against_its_references(tmp_path):
    _study(tmp_path)
    table = study_rows.rows(study_rows.read_searches(str(tmp_path), SEEDS),
                            study_rows.read_points(str(tmp_path), SEEDS))
    assert [(r.budget, r.algo) for r in table] == \
        [("uniform3", "random"), ("uniform3", "evolution"), ("uniform4", "random")]
    random3 = _row(table, "uniform3", "random")
    assert random3.sources() == {"proposed": 2, "starting point": 0, "exact allocation": 1,
                                 "gradient": 0}
    assert random3.uniform == "uniform 3-bit"
    # Paired per seed with the pick trained from scratch, not with the search's own model.
    assert random3.psnr() == pytest.approx([34.35, 34.45, 34.2])
    assert random3.own_psnr() == pytest.approx([34.4, 34.5, 34.25])
    assert random3.diffs["uniform 3-bit"].text() == "+0.33 ± 0.03"
    assert random3.diffs["hand rule k8-2 a3"].text() == "+0.13 ± 0.03"
    assert random3.diffs["hand rule k8-2 a4"].text() == "-0.07 ± 0.03"
    assert random3.diffs["exact allocation, bops at uniform3"].text() == "+0.08 ± 0.03"
    assert random3.ref_costs["hand rule k8-2 a4"] == pytest.approx(1.15)
    # Within one std of zero: noise.
    evolution3 = _row(table, "uniform3", "evolution")
    assert evolution3.diffs["exact allocation, bops at uniform3"].text() == "+0.00 ± 0.04 (noise)"
    assert _row(table, "uniform4", "random").diffs["uniform 4-bit"].text() == \
        "+0.10 ± 0.20 (noise)"
    # A pick not trained yet (no points.csv row) is left out of the differences, not guessed.
    points = study_rows.read_points(str(tmp_path), SEEDS)
    points[1] = [p for p in points[1] if p["kind"] != "pick"]
    table = study_rows.rows(study_rows.read_searches(str(tmp_path), SEEDS), points)
    assert len(_row(table, "uniform3", "random").diffs["uniform 3-bit"].values) == 2
    # A budget that is no uniform width is set against the widest uniform reference within it.
    assert study_rows.uniform_label("35%", 1.2 * U3, points[2], "bops") == "uniform 3-bit"
    assert study_rows.uniform_label("35%", 0.5 * U3, points[2], "bops") == ""


def test_study_md_checks_the_targets(tmp_path):
    _study(tmp_path)
    path = study_md.write_study(str(tmp_path), list(SEEDS), {"trials": 8, "epochs": 3,
                                                             "finalists": 2, "retrain_epochs": 6},
                                600)
    text = Path(path).read_text()
    assert "How the pick is scored: its configuration (best_config.yaml) is trained from " \
           "scratch exactly as every reference" in text.split("## Targets")[0]
    targets = text.split("## Targets")[1].split("## ")[0]
    assert ("- bops at uniform3, pick vs uniform 3-bit (>= +0.30 dB), random: +0.33 ± 0.03 dB "
            "over 3 seed(s): **met**, 0.03 dB to spare (the reference costs 100.0% of the "
            "budget).") in targets
    assert ("- bops at uniform3, pick vs uniform 3-bit (>= +0.30 dB), evolution: +0.25 ± 0.04 dB "
            "over 3 seed(s): **not met**, 0.05 dB short (the reference costs 100.0% of the "
            "budget).") in targets
    assert "pick vs hand rule k8-2 a3 (above), random: +0.13 ± 0.03 dB over 3 seed(s): **met**" \
        in targets
    assert "pick vs hand rule k8-2 a4 (above), random: -0.07 ± 0.03 dB over 3 seed(s): " \
           "**not met**, 0.07 dB short (the reference costs 115.0% of the budget)." in targets
    assert ("- bops at uniform4, pick vs uniform 4-bit (>= +0.20 dB), random: +0.10 ± 0.20 dB "
            "over 3 seed(s): **not met**, 0.10 dB short, inside the seeds' spread (the reference "
            "costs 100.0% of the budget).") in targets
    assert "- bits at uniform3, pick vs uniform 3-bit (>= +0.30 dB): not run " \
           "(make study GOALS=bits BUDGETS=uniform3)." in targets
    assert "in some row: **met** (the most: 2 of 3 seed(s), bops at uniform3, random)." in targets
    assert ("- no trained trial over its budget: **not met** (1 of 28 trained trials over; before "
            "training, 12 proposals were redrawn and 9 repaired into the band). Seed 2 bops at "
            "uniform3 evolution: trial 5 at 101.00% of the budget.") in targets
    picks = text.split("## Picks")[1].split("## ")[0]
    assert ("| goal at budget | algorithm | pick: proposed / starting point / exact allocation / "
            "gradient | test PSNR, pick from scratch | search's own model | vs uniform at the "
            "budget |") in picks
    assert ("| bops at uniform3 (4.00 GBOPs) | random | 2 / 0 / 1 / 0 of 3 | 34.33 ± 0.13 | "
            "34.38 ± 0.13 | uniform 3-bit: +0.33 ± 0.03 | +0.13 ± 0.03 | -0.07 ± 0.03 | "
            "+0.08 ± 0.03 | 97.0%–99.5% | 12 / 3 | 5.0 min |") in picks
    assert "| bops at uniform3 (4.00 GBOPs) | evolution | 0 / 0 / 3 / 0 of 3 |" in picks
    wall = text.split("## Wall time")[1].split("## ")[0]
    assert "- bops at uniform3: one search 5.0 min (mean of 6); random 5.0 min = 1.00 × one " \
           "search's; evolution 5.0 min = 1.00 × one search's." in wall
    references = text.split("## References")[1].split("## ")[0]
    assert ("| hand rule k8-2 a4 | 34.40 | 34.50 | 34.30 | 34.40 ± 0.10 | 115.0% | 82.1% | "
            "hand rule k8-2 a4 |") in references
    assert "pick " not in references  # the picks have tables of their own
    every = text.split("## Every pick")[1]
    assert "| bops at uniform3 | random | 3 | exact allocation | exact allocation at the budget " \
           "| 1 | 99.5% | 32.10 → 32.50 | 34.20 | 34.25 | k 8.3.3.4.3.4.4 b 8.8.8.8.8.8.8 a " \
           "3.3.3.3.3.3 |" in every
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_a_gradient_run_is_a_row_of_its_own(tmp_path):
    _study(tmp_path, _gradient)
    text = Path(study_md.write_study(str(tmp_path), list(SEEDS), {}, 60)).read_text()
    targets = text.split("## Targets")[1].split("## ")[0]
    assert "- bops at uniform3, pick vs uniform 3-bit (>= +0.30 dB), gradient: +0.42 ± 0.00 dB " \
           "over 3 seed(s): **met**" in targets
    assert ("(2 of 31 trained trials over; before training, 12 proposals were redrawn and 9 "
            "repaired into the band). Seed 2 bops at uniform3 evolution: trial 5 at 101.00% of "
            "the budget. Seed 3 bops at uniform3 gradient: its final model at 102.00% of "
            "the budget.") in targets
    picks = text.split("## Picks")[1].split("## ")[0]
    assert ("| bops at uniform3 (4.00 GBOPs) | gradient | 0 / 0 / 0 / 3 of 3 | 34.42 ± 0.10 | "
            "34.47 ± 0.10 | uniform 3-bit: +0.42 ± 0.00 | +0.22 ± 0.00 | +0.02 ± 0.00 | "
            "+0.17 ± 0.00 | 98.0%–102.0% | 0 / 0 | 1.0 min |") in picks
    wall = text.split("## Wall time")[1].split("## ")[0]
    assert "- bops at uniform3: one search 5.0 min (mean of 6); random 5.0 min = 1.00 × one " \
           "search's; evolution 5.0 min = 1.00 × one search's; gradient 1.0 min = 0.20 × one " \
           "search's (at most a third: **met**)." in wall
    every = text.split("## Every pick")[1]
    assert "| bops at uniform3 | gradient | 1 | gradient | – | – | 98.0% | 32.00 → 32.40 | 34.42 " \
           "| 34.47 | k 6.3.2.3.2.3.6 b 8.8.8.8.8.8.8 a 3.3.3.3.3.3 |" in every
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_a_bits_study_checks_its_own_target(tmp_path):
    for s in SEEDS:
        points = [{**p, "bits": p["bops"]} for p in _points(s) if p["kind"] != "exact allocation"]
        pick = _search(tmp_path, s, "random", "uniform3", U3, 34.4 + OFFSET[s], "proposed",
                       _trials(U3), goal="bits")
        _write_csv(tmp_path / f"seed{s}" / "points.csv", points + [pick])
    text = Path(study_md.write_study(str(tmp_path), list(SEEDS), {}, 60)).read_text()
    assert "- bits at uniform3, pick vs uniform 3-bit (>= +0.30 dB), random: +0.40 ± 0.00 dB " \
           "over 3 seed(s): **met**, 0.10 dB to spare (the reference costs 100.0% of the " \
           "budget)." in text
    assert "- bops at uniform3, pick vs uniform 3-bit (>= +0.30 dB): not run" in text
    assert "| bits at uniform3 (488281.25 KiB) | random | 3 / 0 / 0 / 0 of 3 |" in text
