"""make study (solvers/study.py): its plan and input checks, and its report (solvers/report/
study_rows.py, study_md.py) on hand-made summary.yaml / trials.csv / points.csv: no training."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from solvers import study
from solvers.config import ConfigError, load_search_space
from solvers.report import study_md, study_rows

Q = {"k": 'quantized_bits({},0,alpha="auto_po2")', "b": "quantized_bits({},0,alpha=1.0)",
     "a": "quantized_relu({},8)"}
SEEDS = (1, 2, 3)
U3, U4 = 4e9, 5.6e9  # the budgets' costs in BOPs (4.00 and 5.60 GBOPs)


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


def _search(out, seed, algo, spec, cost, test_psnr, source, trials, winner="2", redrawn=0,
            goal="bops"):
    folder = out / f"seed{seed}" / "searches" / study.search_name(goal, spec, algo)
    _write_csv(folder / "trials.csv", trials)
    start = next(t["start"] for t in trials if t["trial_id"] == winner)
    pick_cost = float(next(t["cost"] for t in trials if t["trial_id"] == winner))
    (folder / "run.yaml").write_text(yaml.safe_dump({"algo": algo, "scale": 3, "settings": {
        "trials": 8, "epochs": 3, "retrain_epochs": 6, "steps_per_epoch": 100}}))
    (folder / "summary.yaml").write_text(yaml.safe_dump({
        "best_trial": winner, "goal": goal, "costs": {goal: pick_cost, "cost": pick_cost},
        "test": {"psnr": test_psnr, "loss": 6.0, "psnr_search": test_psnr - 0.3,
                 "loss_search": 6.2, "images": 6},
        "budget": {"spec": spec, "goal": goal, "cost": cost, "band": 0.9},
        "proposals": {"redrawn": redrawn, "repaired": 1},
        "finalists": [{"trial_id": winner, "start": start, "trial_val_psnr": 32.1,
                       "final_val_psnr": 32.5}],
        "winner": {"trial_id": winner, "start": start, "source": source}, "elapsed_s": 300.0}))


def _trials(budget, over=False):
    """A search's trials: uniform 3-bit and the exact allocation (starting points), proposed ones
    within the budget, a proposal that failed (no cost: not trained), and, with `over`, one
    trained over the budget."""
    rows = [_trial(0, 3, 3, budget, 32.0, "uniform 3-bit"),  # at the budget exactly: within
            _trial(1, [8, 3, 3, 4, 3, 4, 4], 3, 0.995 * budget, 32.2, study.EXACT_START),
            _trial(2, [8, 4, 3, 3, 3, 3, 6], 3, 0.97 * budget, 32.3),
            _trial(3, 5, 4, "", "", status="FAILED"),
            _trial(4, 4, 4, 1.4 * budget, "", "uniform 4-bit", status="FAILED")]
    if over:
        rows.append(_trial(5, 4, 3, 1.01 * budget, 32.4))
    return rows


OFFSET = {1: 0.0, 2: 0.1, 3: -0.1}  # each seed's references move together


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


def _study(out):
    """Three seeds at bops: uniform3 random and evolution, uniform4 random."""
    for s in SEEDS:
        u3, u4 = 34.0 + OFFSET[s], 34.5 + OFFSET[s]
        _write_csv(out / f"seed{s}" / "points.csv", _points(s))
        # random at uniform3: +0.35 +0.35 +0.30 over uniform 3-bit; proposed, proposed, exact
        _search(out, s, "random", "uniform3", U3, u3 + {1: .35, 2: .35, 3: .30}[s],
                "exact allocation" if s == 3 else "proposed", _trials(U3), redrawn=4,
                winner="1" if s == 3 else "2")
        # evolution at uniform3: the exact allocation every time, within noise of it trained alone
        _search(out, s, "evolution", "uniform3", U3, u3 + {1: .27, 2: .21, 3: .28}[s],
                "exact allocation", _trials(U3, over=s == 2), winner="1")
        # random at uniform4: +0.1 +0.3 -0.1 over uniform 4-bit
        _search(out, s, "random", "uniform4", U4, u4 + {1: .1, 2: .3, 3: -.1}[s],
                "proposed" if s == 1 else "starting point", _trials(U4))


def test_the_plan_has_every_search_and_shares_the_references():
    args = study.parse_args(["--seeds", "1", "2", "--goals", "bops", "bits", "--budgets",
                             "uniform3", "35%", "--algos", "random", "evolution",
                             "--sensitivity", "table.csv"])
    searches, references = study.plan(args)
    assert len(searches) == 2 * 2 * 2 * 2
    assert (2, "bits", "35%", "evolution", "bits_35pct_evolution") in searches
    assert searches[0] == (1, "bops", "uniform3", "random", "bops_uniform3_random")
    labels = [label for label, *_ in references]
    # One set for every seed and algorithm: one exact allocation per goal and budget.
    assert labels == ["uniform 2-bit", "uniform 3-bit", "uniform 4-bit", "uniform 8-bit",
                      "float32", "hand rule k8-2 a3", "hand rule k8-2 a4",
                      "exact allocation, bops at uniform3", "exact allocation, bops at 35%",
                      "exact allocation, bits at uniform3", "exact allocation, bits at 35%"]
    # A uniformN budget adds its width; without a table there is no exact allocation.
    args = study.parse_args(["--budgets", "uniform5", "--sensitivity", "none"])
    labels = [label for label, *_ in study.plan(args)[1]]
    assert "uniform 5-bit" in labels and not any("exact" in label for label in labels)


def test_a_search_gets_the_budget_and_the_full_budget_for_its_finalists():
    args = study.parse_args(["--trials", "6", "--epochs", "2", "--retrain-epochs", "5",
                             "--finalists", "2", "--band", "0.8"])
    argv = study.autoq_argv(args, 3, "bops", "35%", "evolution")
    for option in (["--algo", "evolution"], ["--seed", "3"], ["--goal", "bops"],
                   ["--budget", "35%"], ["--trials", "6"], ["--epochs", "2"],
                   ["--retrain-epochs", "5"], ["--finalists", "2"], ["--band", "0.8"]):
        assert " ".join(option) in " ".join(argv)
    assert "--no-hand-rules" in argv and "--sensitivity" in argv


@pytest.mark.parametrize("argv, message", [
    (["--goals", "watts"], "--goals: 'watts' is not one of bits, bops, energy"),
    (["--budgets", "3x"], "--budgets: '3x' is not a budget"),
    (["--budgets", "uniform9"], "--budgets: uniform9: the search space has no 9-bit"),
    (["--algos", "grid"], "--algos: 'grid' is not one of"),
    (["--band", "1.5"], "--band: 1.5 is not a number in (0, 1]"),
    (["--sensitivity", "nowhere.csv"], "--sensitivity: nowhere.csv: no such file"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "study"
    assert study.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {message}")
    assert not out.exists()


def test_kept_points_and_searches_must_match_the_budget(tmp_path):
    _study(tmp_path)  # points trained for 9 epochs: 3 + 6, the default
    args = study.parse_args(["--out", str(tmp_path), "--sensitivity", "none"])
    study.check_kept(args, study.plan(args)[0])
    args = study.parse_args(["--out", str(tmp_path), "--epochs", "4", "--sensitivity", "none"])
    with pytest.raises(ConfigError, match="points trained for 9 epochs, this study trains 10"):
        study.check_kept(args, study.plan(args)[0])
    for s in SEEDS:
        (tmp_path / f"seed{s}" / "points.csv").unlink()
    args = study.parse_args(["--out", str(tmp_path), "--trials", "20", "--sensitivity", "none"])
    with pytest.raises(ConfigError, match="bops_uniform3_random: finished with trials 8 "
                                          r"\(asked: 20\)"):
        study.check_kept(args, study.plan(args)[0])


def test_the_exact_allocation_reference_is_read_from_its_searches(tmp_path):
    space = load_search_space(str(REPO / "quantization_config.yaml"))
    args = study.parse_args(["--out", str(tmp_path), "--sensitivity", "none"])
    # Only the evolution search has finished its trials.csv: its exact allocation is the one.
    _write_csv(tmp_path / "seed1" / "searches" / "bops_uniform3_evolution" / "trials.csv",
               _trials(U3))
    found = study.reference_quantizers(args, 1, space, "exact allocation, bops at uniform3",
                                       "exact allocation", "bops", "uniform3")
    assert study.layer_bits(found) == "k 8.3.3.4.3.4.4 b 8.8.8.8.8.8.8 a 3.3.3.3.3.3"
    assert study.reference_quantizers(args, 1, space, "exact allocation, bops at uniform4",
                                      "exact allocation", "bops", "uniform4") is False
    assert study.layer_bits(study.reference_quantizers(
        args, 1, space, "hand rule k8-2 a4", "hand rule", "", "")) == \
        "k 8.2.2.2.2.2.8 b 8.8.8.8.8.8.8 a 4.4.4.4.4.4"
    assert study.reference_quantizers(args, 1, space, "float32", "float", "", "") is None


def test_over_budget_trials_are_the_trained_ones_above_the_budget(tmp_path):
    _study(tmp_path)
    searches = study_rows.read_searches(str(tmp_path), SEEDS)
    assert len(searches) == 9
    over = {(s.seed, s.algo, s.budget["spec"]): [r["trial_id"] for r in s.over_budget()]
            for s in searches}
    # Trial 0 costs the budget exactly; trial 4 costs more but never trained.
    assert over[(2, "evolution", "uniform3")] == ["5"]
    assert sum(map(len, over.values())) == 1


def _row(table, budget, algo):
    return next(r for r in table if r.budget == budget and r.algo == algo)


def test_rows_count_sources_and_set_each_pick_against_its_references(tmp_path):
    _study(tmp_path)
    table = study_rows.rows(study_rows.read_searches(str(tmp_path), SEEDS),
                            study_rows.read_points(str(tmp_path), SEEDS))
    assert [(r.budget, r.algo) for r in table] == \
        [("uniform3", "random"), ("uniform3", "evolution"), ("uniform4", "random")]
    random3 = _row(table, "uniform3", "random")
    assert random3.sources() == {"proposed": 2, "starting point": 0, "exact allocation": 1}
    assert random3.uniform == "uniform 3-bit"
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
    # A budget that is no uniform width is set against the widest uniform reference within it.
    points = study_rows.read_points(str(tmp_path), SEEDS)[1]
    assert study_rows.uniform_label("35%", 1.2 * U3, points, "bops") == "uniform 3-bit"
    assert study_rows.uniform_label("35%", 0.5 * U3, points, "bops") == ""


def test_study_md_checks_the_targets(tmp_path):
    _study(tmp_path)
    path = study_md.write_study(str(tmp_path), list(SEEDS), {"trials": 8, "epochs": 3,
                                                             "finalists": 2, "retrain_epochs": 6},
                                600)
    text = Path(path).read_text()
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
    assert ("| bops at uniform3 (4.00 GBOPs) | random | 2 / 0 / 1 of 3 | 34.33 ± 0.13 | "
            "uniform 3-bit: +0.33 ± 0.03 | +0.13 ± 0.03 | -0.07 ± 0.03 | +0.08 ± 0.03 | "
            "97.0%–99.5% | 12 / 3 | 5.0 min |") in picks
    assert "| bops at uniform3 (4.00 GBOPs) | evolution | 0 / 0 / 3 of 3 |" in picks
    references = text.split("## References")[1].split("## ")[0]
    assert ("| hand rule k8-2 a4 | 34.40 | 34.50 | 34.30 | 34.40 ± 0.10 | 115.0% | 82.1% | "
            "hand rule k8-2 a4 |") in references
    every = text.split("## Every pick")[1]
    assert "| bops at uniform3 | random | 3 | exact allocation | exact allocation at the budget " \
           "| 1 | 99.5% | 32.10 → 32.50 | 34.20 | k 8.3.3.4.3.4.4 b 8.8.8.8.8.8.8 a " \
           "3.3.3.3.3.3 |" in every
    assert (tmp_path / "study.png").stat().st_size > 10_000


def test_a_bits_study_checks_its_own_target(tmp_path):
    for s in SEEDS:
        points = [{**p, "bits": p["bops"]} for p in _points(s) if p["kind"] != "exact allocation"]
        _write_csv(tmp_path / f"seed{s}" / "points.csv", points)
        _search(tmp_path, s, "random", "uniform3", U3, 34.4 + OFFSET[s], "proposed", _trials(U3),
                goal="bits")
    text = Path(study_md.write_study(str(tmp_path), list(SEEDS), {}, 60)).read_text()
    assert "- bits at uniform3, pick vs uniform 3-bit (>= +0.30 dB), random: +0.40 ± 0.00 dB " \
           "over 3 seed(s): **met**, 0.10 dB to spare (the reference costs 100.0% of the " \
           "budget)." in text
    assert "- bops at uniform3, pick vs uniform 3-bit (>= +0.30 dB): not run" in text
    assert "| bits at uniform3 (488281.25 KiB) | random | 3 / 0 / 0 of 3 |" in text


def test_a_tiny_study_end_to_end_and_resumed(tmp_path):
    """One seed, one budgeted search of 2 one-epoch trials on 8-pixel patches, 4 references
    trained 2 epochs (about a minute on 2 cores); run again, nothing is trained twice."""
    out = tmp_path / "study"
    command = [sys.executable, "-m", "solvers.study", "--seeds", "1", "--goals", "bops",
               "--budgets", "uniform3", "--algos", "random", "--trials", "2", "--epochs", "1",
               "--retrain-epochs", "1", "--finalists", "1", "--uniform-widths", "3",
               "--sensitivity", "none", "--steps-per-epoch", "2",
               "--search-args", "--patch-size 8 --batch-size 4", "--out", str(out),
               "--tb-dir", str(tmp_path / "tb")]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                           check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    with open(out / "seed1" / "points.csv", newline="") as f:
        points = list(csv.DictReader(f))
    assert [p["label"] for p in points] == ["uniform 3-bit", "float32", "hand rule k8-2 a3",
                                            "hand rule k8-2 a4"]
    assert {p["epochs"] for p in points} == {"2"}  # trial epochs + retrain epochs
    summary = yaml.safe_load((out / "seed1" / "searches" / "bops_uniform3_random" /
                              "summary.yaml").read_text())
    assert summary["budget"]["goal"] == "bops" and summary["winner"]["source"] in study_rows.SOURCES
    text = (out / "study.md").read_text()
    assert "- no trained trial over its budget: **met** (0 of 2 trained trials over" in text
    assert "| bops at uniform3 (4.04 GBOPs) | random | " in text
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                           check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "search bops_uniform3_random already done" in second.stdout
    assert "reference" not in second.stdout
