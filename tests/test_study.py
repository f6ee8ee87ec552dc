"""make study's report (solvers/report/study_md.py) on hand-made points.csv / trials.csv, and the
study's plan of points from a search's trials (solvers/study.py): no training."""
import csv

import pytest
import yaml

from conftest import REPO
from solvers import study
from solvers.config import load_search_space
from solvers.networks.base7 import base_filters
from solvers.report import pareto, study_md

Q = {"k": 'quantized_bits({},0,alpha="auto_po2")', "b": "quantized_bits({},0,alpha=1.0)",
     "a": "quantized_relu({},8)"}


def _trial(trial_id, kernel, bias, act, cost, val_psnr, start="", val_score=None):
    """A trials.csv row with every layer's widths (kernel: one width or 7); its val_score ranks
    as its val_psnr unless given."""
    kernel = kernel if isinstance(kernel, list) else [kernel] * 7
    val_score = 10 - val_psnr / 10 if val_score is None else val_score
    row = {"trial_id": str(trial_id), "status": "COMPLETED", "cost": str(cost), "bits": str(cost),
           "val_psnr": str(val_psnr), "val_score": str(val_score), "start": start,
           "val_loss": str(10 ** (1 - 0.025 * val_psnr))}  # 1 dB = 5.93 % of L1
    for i in range(7):
        row[f"conv_{i}_kernel_bits"], row[f"conv_{i}_kernel"] = kernel[i], Q["k"].format(kernel[i])
        row[f"conv_{i}_bias_bits"], row[f"conv_{i}_bias"] = bias, Q["b"].format(bias)
    for i in range(6):
        row[f"act_{i}_activation_bits"], row[f"act_{i}_activation"] = act, Q["a"].format(act)
    return row


TRIALS = [_trial(0, 2, 2, 2, 100, 30.0, "uniform 2-bit"), _trial(1, 3, 3, 3, 200, 30.5, "uniform 3-bit"),
          _trial(2, 4, 4, 4, 300, 30.8, "uniform 4-bit"), _trial(3, 8, 8, 8, 600, 30.9, "uniform 8-bit"),
          _trial(4, [8, 2, 2, 2, 2, 2, 8], 8, 3, 210, 30.7, "hand rule k8-2 a3"),
          _trial(5, 4, 8, 8, 500, 30.85, "kernels 4-bit, activations 8-bit"),
          _trial(6, [8, 3, 2, 2, 2, 2, 8], 8, 3, 199, 30.6),  # found: under uniform 3-bit's cost
          _trial(7, [8, 4, 4, 4, 4, 4, 8], 8, 8, 520, 30.95)]  # k4a8? kernels average > 4


def test_the_plan_picks_the_best_validation_trial_within_each_cost(monkeypatch):
    space = load_search_space(str(REPO / "quantization_config.yaml"))
    # The budgets: the baselines' costs, here those of the starting points above.
    costs = {study_md.bits_text(study_md.trial_quantizers(t)): float(t["cost"]) for t in TRIALS}
    monkeypatch.setattr(study, "goal_cost", lambda q, *_: costs[study_md.bits_text(q)])
    args = study.parse_args(["--uniform-widths", "2", "3", "4", "8"])
    plan = {label: (kind, budget, trial) for label, kind, budget, trial, _ in
            study._plan(args, space, TRIALS)}
    assert [label for label in plan][:6] == ["uniform 2-bit", "uniform 3-bit", "uniform 4-bit",
                                              "uniform 8-bit", "float32", "hand rule k8-2 a3"]
    assert plan["search at uniform 3-bit cost"][2]["trial_id"] == "6"  # 30.6 dB at 199 <= 200
    assert plan["search at uniform 2-bit cost"][2]["trial_id"] == "0"
    assert plan["search at hand rule k8-2 a3 cost"][2]["trial_id"] == "4"  # itself: 210
    assert plan["search at uniform 4-bit cost"][2]["trial_id"] == "2"
    # 8-bit activations and kernels averaging <= 4 bits (weighted): trial 7's 8-bit edges are
    # few weights, so its average is about 4.1: only trial 5 qualifies.
    assert plan["search, 8-bit activations, kernels <= 4 bits"][2]["trial_id"] == "5"
    assert study_md.bits_text(study_md.trial_quantizers(TRIALS[4])) == \
        "k 8.2.2.2.2.2.8 b 8.8.8.8.8.8.8 a 3.3.3.3.3.3"


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _bits(kernel, bias, act):
    """points.csv's layer_bits of these widths (as study.train_points writes it)."""
    return study_md.bits_text(study_md.trial_quantizers(_trial(0, kernel, bias, act, 0, 0)))


def _point(label, kind, cost, test_psnr, trial_id="", bits="float32"):
    return {"label": label, "kind": kind, "cost": cost, "bits": cost, "val_psnr": 30,
            "test_psnr": test_psnr, "trial_id": trial_id, "layer_bits": bits, "budget": ""}


RUNS = {1: {"scale": 3}}  # a seed's run.yaml, as far as the pairing reads it


def _rho(trials, points):
    return study_md.rank_correlations({1: points}, {1: trials}, [1], RUNS)[1]


# Five configurations that are both a trial and a point: trial i has validation PSNR 30 + i/10.
CONFIGS = [(2, 8, 3), (3, 8, 3), (4, 8, 4), ([8, 2, 2, 2, 2, 2, 8], 8, 3), (8, 8, 8)]
AGREEING = [_trial(i, *c, 100 * (i + 1), 30 + i / 10) for i, c in enumerate(CONFIGS)]


def _points_ranked(test_psnrs):
    return [_point(f"p{i}", "search", 100, t, str(i), _bits(*c))
            for i, (c, t) in enumerate(zip(CONFIGS, test_psnrs))]


def test_rank_correlation_is_one_when_trials_rank_as_the_trained_models():
    assert _rho(AGREEING, _points_ranked([33.0, 33.1, 33.5, 34.0, 34.2])) == \
        pytest.approx((1.0, 1.0, 5, 0))


def test_rank_correlation_is_minus_one_when_they_rank_in_reverse():
    assert _rho(AGREEING, _points_ranked([34.2, 34.0, 33.5, 33.1, 33.0])) == \
        pytest.approx((-1.0, -1.0, 5, 0))


def test_score_and_trial_psnr_are_ranked_each_by_its_own_column():
    # A lower val_score is better: here it falls with the test PSNR while val_psnr rises with it.
    trials = [_trial(i, *c, 100, 30 + i / 10, val_score=i) for i, c in enumerate(CONFIGS)]
    assert _rho(trials, _points_ranked([33.0, 33.1, 33.5, 34.0, 34.2])) == \
        pytest.approx((-1.0, 1.0, 5, 0))


def test_a_label_is_not_a_configuration():
    # The uniform 3-bit point trains 3-bit biases; the starting point of that label has the
    # limit's 8-bit ones: not the same model, not paired, though a pairing by label would add a
    # discordant pair (best trial, worst model). The pick trained as trial 0 is paired by its bits
    # whatever its label, and once, though two points share its configuration.
    trials = [_trial(0, 2, 8, 2, 100, 30.0, "uniform 2-bit"),
              _trial(1, 3, 8, 3, 200, 30.9, "uniform 3-bit"),
              _trial(2, 4, 8, 4, 300, 30.5), _trial(3, 5, 8, 5, 400, 30.7)]
    points = [_point("uniform 3-bit", "uniform", 200, 32.0, "", _bits(3, 3, 3)),
              _point("search at uniform 2-bit cost", "search", 100, 33.0, "0", _bits(2, 8, 2)),
              _point("search at uniform 3-bit cost", "search", 100, 33.0, "0", _bits(2, 8, 2)),
              _point("search at uniform 4-bit cost", "search", 300, 33.5, "2", _bits(4, 8, 4)),
              _point("k5", "search", 400, 34.0, "3", _bits(5, 8, 5)),
              _point("float32", "float", 900, 35.0)]
    assert _rho(trials, points) == pytest.approx((1.0, 1.0, 3, 1))


def test_other_filters_are_another_configuration():
    # Trial 4 has the point's bits but 14 filters in conv_0; the study trains its points at
    # base7's own: not paired (paired, its low test PSNR would break the agreement).
    trials = [*AGREEING[:4], {**AGREEING[4], "conv_0_filters": "14"}]
    assert _rho(trials, _points_ranked([33.0, 33.1, 33.5, 34.0, 32.0])) == \
        pytest.approx((1.0, 1.0, 4, 1))
    # A filters_multiplier scales the layers run.yaml's tune_filters names (all searchable
    # convolutions without that record); conv_6 keeps 3·scale² outputs.
    row = {**AGREEING[0], "filters_multiplier": "0.5"}
    assert pareto.trial_filters(row, 3, {"layers": {"conv_1": 28}}) == \
        {**base_filters(3), "conv_1": 14}
    assert pareto.trial_filters(row, 3) == \
        {**{f"conv_{i}": 14 for i in range(5)}, "conv_5": 14, "conv_6": 27}
    assert pareto.trial_filters({**AGREEING[0], "filters_multiplier": "1"}, 3) == base_filters(3)


def test_too_few_configurations_give_no_rho():
    assert _rho(AGREEING[:2], _points_ranked([33.0, 33.1])) == (None, None, 2, 0)


@pytest.mark.parametrize("gain", [0.6, 0.2])
def test_study_md_judges_the_mean_difference_on_test_images(tmp_path, gain):
    for seed, offset in ((1, 0.0), (2, 0.1)):
        seed_dir = tmp_path / f"seed{seed}"
        _write(seed_dir / "search" / "trials.csv", TRIALS)
        (seed_dir / "search" / "run.yaml").write_text(yaml.safe_dump(
            {"objective": {"goal": {"type": "bits"}}, "scale": 3}))
        found = _bits([8, 3, 2, 2, 2, 2, 8], 8, 3)  # trial 6
        _write(seed_dir / "points.csv", [
            _point("uniform 2-bit", "uniform", 100, 29 + offset, "", _bits(2, 2, 2)),
            _point("uniform 3-bit", "uniform", 200, 30 + offset, "", _bits(3, 3, 3)),
            _point("uniform 4-bit", "uniform", 300, 30.5 + offset, "", _bits(4, 4, 4)),
            _point("uniform 8-bit", "uniform", 600, 30.7 + offset, "", _bits(8, 8, 8)),
            _point("float32", "float", 2000, 30.8 + offset),
            _point("hand rule k8-2 a3", "hand rule", 210, 30.3 + offset, "",
                   _bits([8, 2, 2, 2, 2, 2, 8], 8, 3)),
            _point("search at uniform 3-bit cost", "search", 199, 30 + gain + offset, "6", found),
            _point("search at hand rule k8-2 a3 cost", "search", 199, 30 + gain + offset, "6",
                   found),
            _point("search at uniform 4-bit cost", "search", 300, 30.66 + offset, "2",
                   _bits(4, 4, 4))])
    path = study_md.write_study(str(tmp_path), [1, 2], {"algo": "random", "trials": 8}, 60)
    text = open(path).read()
    verdict = text.split("## Verdict")[1].split("##")[0]
    met = "met" if gain >= 0.5 else "not met"
    assert f"search at uniform 3-bit cost vs uniform 3-bit: {gain:+.2f} dB, mean of 2 seed(s) " \
           f"(target +0.50): {met}." in verdict
    assert "search at hand rule k8-2 a3 cost vs hand rule k8-2 a3: " \
           f"{gain - 0.3:+.2f} dB" in verdict
    assert "search at uniform 4-bit cost vs uniform 8-bit: -0.04 dB" in verdict and \
        "(target -0.05): met." in verdict
    assert "float32" not in verdict  # no k4a8 pick among the points: no verdict on it
    # The objective's trade-off from the trials: 10^0.025 - 1 of L1 per dB; delta 3 forgives
    # log10(1.03) / 0.025 = 0.51 dB per halving. Uniform 2 -> 3 bits: 0.5 dB over 1 halving.
    assert "1 dB of validation PSNR is 5.9 % of the L1 loss" in text and "3: 0.51 dB" in text
    assert "- uniform 2-bit → uniform 3-bit: +0.50 dB" in text
    # Rank agreement over the 6 configurations both a trial and a point (trials 0-4 and 6; the
    # 4-bit pick is uniform 4-bit: once). Validation ranks t0 t1 t6 t4 t2 t3; with a gain of 0.6
    # the test PSNR swaps t6 and t4 (rho = 1 - 6·2 / (6·35) = 0.94), with 0.2 it agrees (1.00).
    rho = "0.94" if gain >= 0.5 else "1.00"
    for seed in (1, 2):
        assert f"- seed {seed}: rho = {rho} (score), {rho} (trial PSNR) over 6 configurations; " \
               "0 point configuration(s) not among the trials" in text
    assert (tmp_path / "study.png").stat().st_size > 10_000
