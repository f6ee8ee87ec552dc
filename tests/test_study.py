"""make study (solvers/study.py, study_plan.py): its plan and input checks, the configuration of
every point it trains (the references, each search's pick), how it trains them (mocked, then a
tiny study end to end). Its report on hand-made folders: tests/test_study_report.py."""
import csv
import subprocess
import sys

import pytest
import yaml
from conftest import REPO
from test_study_report import SEEDS, U3, _gradient, _study, _trial, _trials, _write_csv

from solvers import study, study_plan
from solvers.config import ConfigError, load_search_space
from solvers.report import records, study_rows

SHIPPED = str(REPO / "quantization_config.yaml")


def test_the_plan_has_every_search_and_shares_the_references():
    args = study_plan.parse_args(["--seeds", "1", "2", "--goals", "bops", "bits", "--budgets",
                                  "uniform3", "35%", "--algos", "random", "evolution",
                                  "--sensitivity", "table.csv"])
    searches, references = study_plan.plan(args)
    assert len(searches) == 2 * 2 * 2 * 2
    assert (2, "bits", "35%", "evolution", "bits_35pct_evolution") in searches
    assert searches[0] == (1, "bops", "uniform3", "random", "bops_uniform3_random")
    labels = [label for label, *_ in references]
    # One set for every seed and algorithm: one exact allocation per goal and budget.
    assert labels == ["uniform 2-bit", "uniform 3-bit", "uniform 4-bit", "uniform 8-bit",
                      "float32", "hand rule k8-2 a3", "hand rule k8-2 a4",
                      "exact allocation, bops at uniform3", "exact allocation, bops at 35%",
                      "exact allocation, bits at uniform3", "exact allocation, bits at 35%"]
    # Then one pick per search of the seed, after the references.
    assert study_plan.picks(searches, 2)[-1] == ("pick bits_35pct_evolution", "pick", "bits",
                                                 "35%")
    assert len(study_plan.picks(searches, 1)) == 8
    # A uniformN budget adds its width; without a table there is no exact allocation.
    args = study_plan.parse_args(["--budgets", "uniform5", "--sensitivity", "none"])
    labels = [label for label, *_ in study_plan.plan(args)[1]]
    assert "uniform 5-bit" in labels and not any("exact" in label for label in labels)


def test_a_search_and_a_gradient_run_get_the_budget_and_the_full_budget(tmp_path):
    args = study_plan.parse_args(["--trials", "6", "--epochs", "2", "--retrain-epochs", "5",
                                  "--finalists", "2", "--band", "0.8", "--algos", "gradient",
                                  "evolution", "--sensitivity", "none", "--out", str(tmp_path)])
    assert study_plan.check(args).algos == ["gradient", "evolution"]
    for algo in ("evolution", "gradient"):
        argv = study_plan.autoq_argv(args, 3, "bops", "35%", algo)
        for option in (["--algo", algo], ["--seed", "3"], ["--goal", "bops"],
                       ["--budget", "35%"], ["--trials", "6"], ["--epochs", "2"],
                       ["--retrain-epochs", "5"], ["--finalists", "2"], ["--band", "0.8"]):
            assert " ".join(option) in " ".join(argv)
        assert "--no-hand-rules" in argv and "--sensitivity" in argv


@pytest.mark.parametrize("argv, message", [
    (["--goals", "watts"], "--goals: 'watts' is not one of bits, bops, energy"),
    (["--budgets", "3x"], "--budgets: '3x' is not a budget"),
    (["--budgets", "uniform9"], "--budgets: uniform9: the search space has no 9-bit"),
    (["--algos", "grid"], ("--algos: 'grid' is not one of random, bayesian, hyperband, "
                           "evolution, gradient")),
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
    _study(tmp_path, _gradient)  # points trained for 9 epochs: 3 + 6, the default
    args = study_plan.parse_args(["--out", str(tmp_path), "--sensitivity", "none",
                                  "--algos", "random", "evolution", "gradient"])
    study_plan.check_kept(args, study_plan.plan(args)[0])  # gradient: no trials recorded
    args = study_plan.parse_args(["--out", str(tmp_path), "--epochs", "4", "--sensitivity",
                                  "none"])
    with pytest.raises(ConfigError, match="points trained for 9 epochs, this study trains 10"):
        study_plan.check_kept(args, study_plan.plan(args)[0])
    for s in SEEDS:
        (tmp_path / f"seed{s}" / "points.csv").unlink()
    args = study_plan.parse_args(["--out", str(tmp_path), "--trials", "20", "--sensitivity",
                                  "none", "--algos", "gradient", "random"])
    with pytest.raises(ConfigError, match="bops_uniform3_random: finished with trials 8 "
                                          r"\(asked: 20\)"):
        study_plan.check_kept(args, study_plan.plan(args)[0])


def _best_config(folder, trial, filters=None):
    """A search's best_config.yaml as autoq.py writes it, for a trials.csv-style row."""
    folder.mkdir(parents=True, exist_ok=True)
    records.write_best_config(str(folder / "best_config.yaml"), trial, 3, filters=filters)


def _config(args, label, kind, goal="", budget="", config=SHIPPED):
    space = load_search_space(config)
    found = study.point_config(args, 1, space, label, kind, goal, budget)
    return found if found is False else study.layer_bits(*found)


def test_a_uniform_reference_is_the_configuration_its_budget_prices(tmp_path):
    """uniformN as the limit leaves it (budget.py, a search's starting point): the shipped limit
    keeps biases at 8 bits; without a limit they are at N bits too."""
    args = study_plan.parse_args(["--out", str(tmp_path), "--sensitivity", "none"])
    assert _config(args, "uniform 3-bit", "uniform") == \
        "k 3.3.3.3.3.3.3 b 8.8.8.8.8.8.8 a 3.3.3.3.3.3"
    assert _config(args, "uniform 9-bit", "uniform") is False
    upstream = str(REPO / "configs" / "upstream_quantization_config.yaml")
    args = study_plan.parse_args(["--out", str(tmp_path), "--config", upstream])
    assert _config(args, "uniform 3-bit", "uniform", config=upstream) == \
        "k 3.3.3.3.3.3.3 b 3.3.3.3.3.3.3 a 3.3.3.3.3.3"


def test_the_exact_allocation_and_the_picks_are_read_from_their_searches(tmp_path):
    args = study_plan.parse_args(["--out", str(tmp_path), "--sensitivity", "none"])
    searches = tmp_path / "seed1" / "searches"
    # Only the evolution search has finished its trials.csv: its exact allocation is the one.
    _write_csv(searches / "bops_uniform3_evolution" / "trials.csv", _trials(U3))
    assert _config(args, "exact allocation, bops at uniform3", "exact allocation", "bops",
                   "uniform3") == "k 8.3.3.4.3.4.4 b 8.8.8.8.8.8.8 a 3.3.3.3.3.3"
    assert _config(args, "exact allocation, bops at uniform4", "exact allocation", "bops",
                   "uniform4") is False
    assert _config(args, "hand rule k8-2 a4", "hand rule") == \
        "k 8.2.2.2.2.2.8 b 8.8.8.8.8.8.8 a 4.4.4.4.4.4"
    assert _config(args, "float32", "float") == "float32"
    # A pick: its best_config.yaml (base7's filters: none named; others: in its bits).
    assert _config(args, "pick bops_uniform3_random", "pick") is False
    trial = _trial(2, [8, 4, 3, 3, 3, 3, 6], 3, U3, 32.3)
    _best_config(searches / "bops_uniform3_random", trial,
                 {f"conv_{i}": 28 for i in range(5)} | {"conv_5": 27, "conv_6": 27})
    assert _config(args, "pick bops_uniform3_random", "pick") == study_rows.row_bits(trial)
    _best_config(searches / "bops_uniform3_gradient", trial,
                 {f"conv_{i}": 14 for i in range(5)} | {"conv_5": 27, "conv_6": 27})
    assert _config(args, "pick bops_uniform3_gradient", "pick") == \
        study_rows.row_bits(trial) + " f 14.14.14.14.14.27.27"


def test_a_pick_is_trained_from_scratch_as_the_references_are(tmp_path, monkeypatch):
    """train_points with the training mocked: every point, the picks too, through the same
    function with the same budget and schedule; a pick with a reference's bits is its row; a
    kept point is trained again only when its configuration changed."""
    import autoq  # noqa: F401 (train_points imports it: loaded here, before the mock)
    from solvers import run
    from solvers.search import baselines
    calls = []

    def train_point(label, quantizers, data, budget, out_dir, tb_dir, filters=None,
                    schedule=False):
        calls.append((label, budget, schedule, filters))
        return {"label": label, "test_psnr": 30 + len(calls), "epochs": budget.epochs,
                "model": f"models/{label}.keras"}
    monkeypatch.setattr(baselines, "train_point", train_point)
    monkeypatch.setattr(run, "datasets", lambda *_: (None, None, None))
    args = study_plan.parse_args(["--out", str(tmp_path), "--sensitivity", "none", "--seeds",
                                  "1", "--budgets", "uniform3", "--uniform-widths", "3",
                                  "--algos", "random", "evolution", "gradient"])
    searches, references = study_plan.plan(args)
    folder = tmp_path / "seed1" / "searches"
    for algo, trial in (("random", _trial(0, 3, 3, U3, 32)),  # = uniform 3-bit: its row
                        ("evolution", _trial(2, [8, 4, 3, 3, 3, 3, 6], 3, U3, 32)),
                        ("gradient", _trial("", [6, 3, 2, 3, 2, 3, 6], 3, U3, 32))):
        _best_config(folder / f"bops_uniform3_{algo}", trial,
                     {"conv_0": 20} if algo == "gradient" else None)
    points = references + study_plan.picks(searches, 1)
    rows = {r["label"]: r for r in study.train_points(args, 1, points)}
    assert [c[0] for c in calls] == ["uniform 3-bit", "float32", "hand rule k8-2 a3",
                                     "hand rule k8-2 a4", "pick bops_uniform3_evolution",
                                     "pick bops_uniform3_gradient"]
    assert all(c[1] == calls[0][1] and c[2] is True for c in calls)
    assert calls[0][1].epochs == 9 and calls[0][1].seed == 1  # trial epochs + retrain epochs
    assert calls[-1][3] == {"conv_0": 20}
    pick = rows["pick bops_uniform3_random"]
    assert pick["kind"] == "pick" and pick["budget"] == "uniform3" and pick["goal"] == "bops"
    assert (pick["test_psnr"], pick["model"]) == (rows["uniform 3-bit"]["test_psnr"],
                                                  "models/uniform 3-bit.keras")
    # Run again: nothing trained; the evolution search run again with another winner: only its
    # pick is trained again.
    calls.clear()
    study.train_points(args, 1, points)
    assert calls == []
    _best_config(folder / "bops_uniform3_evolution", _trial(2, 4, 3, U3, 32))
    rows = {r["label"]: r for r in study.train_points(args, 1, points)}
    assert [c[0] for c in calls] == ["pick bops_uniform3_evolution"]
    assert rows["pick bops_uniform3_evolution"]["layer_bits"].startswith("k 4.4.4.4.4.4.4 b 8.")
    with open(tmp_path / "seed1" / "points.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 7


def test_a_tiny_study_end_to_end_and_resumed(tmp_path):
    """One seed, one budgeted search of 2 one-epoch trials on 8-pixel patches, 4 references and
    the pick trained 2 epochs (about a minute on 2 cores); run again, nothing is trained twice."""
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
        points = {p["label"]: p for p in csv.DictReader(f)}
    assert list(points) == ["uniform 3-bit", "float32", "hand rule k8-2 a3",
                            "hand rule k8-2 a4", "pick bops_uniform3_random"]
    assert {p["epochs"] for p in points.values()} == {"2"}  # trial epochs + retrain epochs
    # The uniform reference is the configuration the budget prices: biases at the limit's 8 bits.
    assert points["uniform 3-bit"]["layer_bits"] == "k 3.3.3.3.3.3.3 b 8.8.8.8.8.8.8 a " \
                                                    "3.3.3.3.3.3"
    search = out / "seed1" / "searches" / "bops_uniform3_random"
    summary = yaml.safe_load((search / "summary.yaml").read_text())
    assert summary["budget"]["goal"] == "bops" and summary["winner"]["source"] in study_rows.SOURCES
    pick = points["pick bops_uniform3_random"]
    config = yaml.safe_load((search / "best_config.yaml").read_text())
    assert pick["layer_bits"] == study.layer_bits(config["quantizers"])
    assert pick["kind"] == "pick" and (out / "seed1" / pick["model"]).is_file()
    text = (out / "study.md").read_text()
    assert "- no trained trial over its budget: **met** (0 of 2 trained trials over" in text
    assert "| bops at uniform3 (4.04 GBOPs) | random | " in text
    assert f"| {float(pick['test_psnr']):.2f} | {summary['test']['psnr']:.2f} | " \
           f"{pick['layer_bits']} |" in text.split("## Every pick")[1]
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                           check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "search bops_uniform3_random already done" in second.stdout
    assert "from scratch)" not in second.stdout and "same bits" not in second.stdout
