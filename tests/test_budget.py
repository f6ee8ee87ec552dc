"""A budget the user names: its forms (config_objective.parse_budget, --budget), its resolution in
the goal's unit (search/budget.py), the score under it (val_score = -val_psnr), the guard that
never trains an over-budget trial, and the finalists (search/finalists.py)."""
import dataclasses

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_autoq

from solvers import run, train
from solvers.config import ConfigError, load_search_space, with_goal_options
from solvers.config_objective import parse_budget
from solvers.networks.base7 import base7, layer_names
from solvers.objective_settings import ObjectiveParams
from solvers.search import budget, cost, finalists, starting_points
from solvers.search.space import search_choices

CONVS, ACTS = layer_names()


@pytest.fixture(scope="module")
def space():
    return load_search_space(str(REPO / "quantization_config.yaml"), CONVS + ACTS)


@pytest.mark.parametrize("text, expected", [
    ("uniform3", ("uniform", 3)), ("uniform 4", ("uniform", 4)), ("35%", ("fraction", 0.35)),
    ("1.5e9", ("cost", 1.5e9)), (2e6, ("cost", 2e6)), ({"uniform": 2}, ("uniform", 2)),
    ({"fraction": 0.5}, ("fraction", 0.5)), (None, None)])
def test_budget_forms(text, expected):
    assert parse_budget("x", text) == expected


@pytest.mark.parametrize("text", ["uniform", "uniformx", "0", "-3", "0%", True, {"uniform": 40},
                                  {"bits": 3}, {"fraction": -1}, "lots", [3]])
def test_a_bad_budget_names_where_and_the_forms(text):
    with pytest.raises(ConfigError, match=r"^here: .*(uniformN|1 to 32)"):
        parse_budget("here", text)


def test_the_yaml_budget_and_the_command_line_override(space, tmp_path):
    text = (REPO / "quantization_config.yaml").read_text().replace(
        "goal:\n  type: bits", "goal:\n  type: bops\n  budget: uniform3\n  band: 0.8")
    path = tmp_path / "q.yaml"
    path.write_text(text)
    goal = load_search_space(str(path), CONVS + ACTS).objective.goal
    assert (goal.type, goal.budget, goal.band, goal.budget_text()) == ("bops", ("uniform", 3), 0.8,
                                                                      "uniform3")
    changed = with_goal_options(space, "energy", "25%", 0.5).objective.goal
    assert (changed.type, changed.budget, changed.band) == ("energy", ("fraction", 0.25), 0.5)
    assert with_goal_options(space, budget="none").objective.goal.budget is None
    path.write_text(text.replace("band: 0.8", "band: 1.5"))
    with pytest.raises(ConfigError, match=r"q\.yaml: goal: band: 1\.5 is not a number in \(0, 1\]"):
        load_search_space(str(path), CONVS + ACTS)


def test_a_bad_budget_on_the_command_line_is_one_line_before_tensorflow(tmp_path):
    result = run_autoq("--budget", "uniformx", "--results-dir", tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "error: autoq.py: --budget: 'uniformx' is not a budget" in result.stderr
    assert not (tmp_path / "random").exists()


def test_budgets_resolve_to_the_costs_of_what_they_name(space):
    choices = search_choices(space, CONVS, ACTS)
    bops_space = with_goal_options(space, "bops", "uniform3")
    model = budget.cost_model(bops_space, 3)
    # uniform3 as the limit leaves it: biases stay at 8 bits (the shipped limit).
    quantizers = starting_points.quantizers_of(
        {**starting_points.uniform(3), **{(c, "bias"): 8 for c in CONVS}}, space)
    built = cost.bops(base7(scale=3, quantizers=quantizers), bops_space.objective.goal)
    assert budget.resolve(bops_space, 3, choices, model) == pytest.approx(built, rel=1e-12)
    half = with_goal_options(space, "bops", "50%")
    reference = cost.bops(cost.reference_model(base7(scale=3), 8), half.objective.goal)
    assert budget.resolve(half, 3, choices, model) == pytest.approx(0.5 * reference, rel=1e-12)
    assert budget.resolve(with_goal_options(space, "bops", "1e10"), 3, choices, model) == 1e10
    assert budget.resolve(space, 3, choices, budget.cost_model(space, 3)) is None
    with pytest.raises(ConfigError, match=r"^--budget: 1000 BOPs is below the cheapest "
                                          r"configuration the limit allows \(.* BOPs"):
        budget.resolve(with_goal_options(space, "bops", "1000"), 3, choices, model, where="--budget")
    with pytest.raises(ConfigError, match=r"x band 0\.9 is above the costliest configuration"):
        budget.resolve(with_goal_options(space, "bops", "1e12"), 3, choices, model)
    with pytest.raises(ConfigError, match="uniform1: the search space has no 1-bit quantizer"):
        budget.resolve(with_goal_options(space, "bops", "uniform1"), 3, choices, model)


def _data():
    rng = np.random.default_rng(0)
    lr = rng.uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    hr = rng.uniform(0, 255, (2, 24, 24, 3)).astype("float32")
    return tf.data.Dataset.from_tensors((lr, hr)).repeat(), tf.data.Dataset.from_tensors((lr, hr))


def test_under_a_budget_the_score_is_the_negated_psnr_and_no_costlier_model_trains(space):
    eight = starting_points.quantizers_of(starting_points.uniform(8), space)
    model = train.compile_model(base7(quantizers=eight))
    spent = cost.costs(model, space.objective.goal)["cost"]
    objective = dataclasses.replace(ObjectiveParams(), budget_cost=spent)
    ds, val = _data()
    history = run._fit_fn(objective)(model, ds, val, epochs=1, steps_per_epoch=1, verbose=0)
    assert history.history["val_score"] == [-v for v in history.history["val_psnr"]]
    over = dataclasses.replace(ObjectiveParams(), budget_cost=spent * 0.999)
    fresh = train.compile_model(base7(quantizers=eight))
    weights = [w.copy() for w in fresh.get_weights()]
    with pytest.raises(kt.errors.FailedTrialError, match="over budget: costs"):
        run._fit_fn(over)(fresh, ds, val, epochs=1, steps_per_epoch=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(weights, fresh.get_weights()))  # untrained


def _trial(trial_id, score, cost_value, values, epochs=None, status="COMPLETED"):
    hp = kt.HyperParameters()
    for name, value in {**values, **({"tuner/epochs": epochs} if epochs else {})}.items():
        hp.Fixed(name, value)
    trial = kt.engine.trial.Trial(hp, trial_id=str(trial_id), status=status)
    trial.score = score
    trial.metrics.register("cost", direction="min")
    trial.metrics.update("cost", cost_value)
    return trial


def test_finalists_are_the_best_feasible_trials_one_per_configuration():
    trials = [_trial(0, -30.0, 90, {"a": 2}), _trial(1, -31.0, 120, {"a": 3}),  # over budget
              _trial(2, -29.0, 100, {"a": 4}), _trial(3, -30.5, 80, {"a": 2}),  # a repeat of 0
              _trial(4, -28.0, 70, {"a": 5}), _trial(5, None, 60, {"a": 6}),
              _trial(6, -35.0, 50, {"a": 7}, status="FAILED")]
    chosen = finalists.choose(trials, 3, epochs=4, budget_cost=100)
    assert [t.trial_id for t in chosen] == ["3", "2", "4"]
    assert [t.trial_id for t in finalists.choose(trials, 2, epochs=4)] == ["1", "3"]


def test_hyperband_finalists_are_compared_at_equal_epochs():
    trials = [_trial(0, -31.0, 10, {"a": 2}, epochs=2), _trial(1, -29.0, 10, {"a": 3}, epochs=4),
              _trial(2, -30.0, 10, {"a": 4}, epochs=4), _trial(3, -29.5, 10, {"a": 3}, epochs=2)]
    chosen = finalists.choose(trials, 3, epochs=4, budget_cost=None)
    assert [t.trial_id for t in chosen] == ["2", "1", "0"]  # a's 3 once: its 4-epoch trial


def test_a_budgeted_search_trains_nothing_over_budget_and_answers_with_a_finalist(tmp_path):
    """A tiny evolution search at uniform 3-bit's BOPs, hand rules left out: every trained trial
    within the band's budget, the finalists retrained, the answer one of them, the report saying
    so (through autoq.py, a fresh process)."""
    import csv

    import yaml
    from conftest import write_images

    from solvers.report.records import load_best_config
    images = write_images(tmp_path / "hr", count=3)
    result = run_autoq("--epochs", "1", "--retrain-epochs", "1", "--steps-per-epoch", "2",
                       "--patch-size", "8", "--batch-size", "4", "--data", images,
                       "--results-dir", tmp_path / "results", "--tb-dir", tmp_path / "tb",
                       "--algo", "evolution", "--trials", "6", "--goal", "bops", "--budget",
                       "uniform3", "--no-hand-rules", "--finalists", "2", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "results" / "evolution"
    summary = yaml.safe_load(open(run_dir / "summary.yaml"))
    limit = summary["budget"]["cost"]
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    trained = [r for r in rows if r["status"] == "COMPLETED"]
    assert len(trained) == 6 and all(0.9 * limit * (1 - 1e-9) <= float(r["cost"]) <= limit
                                     for r in trained if r["start"] == "")
    assert all(float(r["cost"]) <= limit for r in trained)
    assert not any("hand rule" in r["start"] for r in rows)
    assert "left out, outside [0.9 x budget, budget]" in result.stdout  # uniform 4..8-bit
    finals = [r for r in rows if r["finalist"]]
    assert sorted(r["finalist"] for r in finals) == ["1", "2"]
    assert [f["trial_id"] for f in summary["finalists"]] == [
        r["trial_id"] for r in sorted(finals, key=lambda r: r["finalist"])]
    winner = summary["winner"]
    assert winner["trial_id"] in {f["trial_id"] for f in summary["finalists"]}
    assert winner["source"] in ("proposed", "starting point", "exact allocation")
    best = max(summary["finalists"], key=lambda f: f["final_val_psnr"])
    assert summary["val_psnr_retrained"] == pytest.approx(best["final_val_psnr"])
    goal = with_goal_options(load_search_space(str(REPO / "quantization_config.yaml")), "bops")
    assert cost.bops(load_best_config(run_dir / "best_config.yaml"),
                     goal.objective.goal) <= limit
    report = (run_dir / "report.md").read_text()
    assert "## Budget and finalists" in report and "None of the 6 trained trials costs more" in report
    assert {"redrawn", "repaired"} <= set(summary["proposals"])
