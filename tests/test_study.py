"""make study's report (solvers/report/study_md.py) on hand-made points.csv / trials.csv, and the
study's plan of points from a search's trials (solvers/study.py): no training."""
import csv

import pytest
import yaml

from conftest import REPO
from solvers import study
from solvers.config import load_search_space
from solvers.report import study_md

Q = {"k": 'quantized_bits({},0,alpha="auto_po2")', "b": "quantized_bits({},0,alpha=1.0)",
     "a": "quantized_relu({},8)"}


def _trial(trial_id, kernel, bias, act, cost, val_psnr, start=""):
    """A trials.csv row with every layer's widths (kernel: one width or 7)."""
    kernel = kernel if isinstance(kernel, list) else [kernel] * 7
    row = {"trial_id": str(trial_id), "status": "COMPLETED", "cost": str(cost), "bits": str(cost),
           "val_psnr": str(val_psnr), "val_score": str(10 - val_psnr / 10), "start": start,
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


def _point(label, kind, cost, test_psnr, trial_id=""):
    return {"label": label, "kind": kind, "cost": cost, "bits": cost, "val_psnr": 30,
            "test_psnr": test_psnr, "trial_id": trial_id, "layer_bits": "k", "budget": ""}


@pytest.mark.parametrize("gain", [0.6, 0.2])
def test_study_md_judges_the_mean_difference_on_test_images(tmp_path, gain):
    for seed, offset in ((1, 0.0), (2, 0.1)):
        seed_dir = tmp_path / f"seed{seed}"
        _write(seed_dir / "search" / "trials.csv", TRIALS)
        (seed_dir / "search" / "run.yaml").write_text(yaml.safe_dump(
            {"objective": {"goal": {"type": "bits"}}}))
        _write(seed_dir / "points.csv", [
            _point("uniform 2-bit", "uniform", 100, 29 + offset, ""),
            _point("uniform 3-bit", "uniform", 200, 30 + offset),
            _point("uniform 4-bit", "uniform", 300, 30.5 + offset),
            _point("uniform 8-bit", "uniform", 600, 30.7 + offset),
            _point("float32", "float", 2000, 30.8 + offset),
            _point("hand rule k8-2 a3", "hand rule", 210, 30.3 + offset),
            _point("search at uniform 3-bit cost", "search", 199, 30 + gain + offset, "6"),
            _point("search at hand rule k8-2 a3 cost", "search", 199, 30 + gain + offset, "6"),
            _point("search at uniform 4-bit cost", "search", 300, 30.66 + offset, "2")])
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
    # Trials 0-2 (uniform 2-4 by seed label) and 6, 2 by id: rank agreement on 4 configurations.
    # The objective's trade-off from the trials: 10^0.025 - 1 of L1 per dB; delta 3 forgives
    # log10(1.03) / 0.025 = 0.51 dB per halving. Uniform 2 -> 3 bits: 0.5 dB over 1 halving.
    assert "1 dB of validation PSNR is 5.9 % of the L1 loss" in text and "3: 0.51 dB" in text
    assert "- uniform 2-bit → uniform 3-bit: +0.50 dB" in text
    assert "rho = " in text and (tmp_path / "study.png").stat().st_size > 10_000
