"""The benchmark's smoke run (make bench SMOKE=1, the only bench run here): bench.json well formed,
and every statistic, ratio and derived number in it checked against the raw timings it keeps.
No time is asserted (the machine is shared); the overhead split is also checked on a made-up search
whose answer is worked out by hand."""
import json
import math

import numpy as np
import pytest

from solvers.bench import speed
from solvers.config import PROFILES

SECTIONS = ("peak_matmul", "train_step", "pipeline", "inference", "search")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert speed.main(["--smoke", "--out", str(out)]) == 0
    assert not [p.name for p in out.iterdir() if p.name != "bench.json"]  # no temp file left
    return json.loads((out / "bench.json").read_text())


def _sections(report):
    """Every {"seconds", "ratios"} object of the report, by a readable name."""
    found = {name: report[name] for name in SECTIONS if name != "train_step"}
    found.update({f"train_step.{k}": v for k, v in report["train_step"]["settings"].items()})
    return found


def test_header_and_every_section_present(report):
    assert report["smoke"] is True and report["repeats"] == 1
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    assert {"tensorflow", "keras"} <= set(report["machine"])
    assert set(SECTIONS) <= set(report)
    assert set(report["train_step"]["settings"]) == {"paper", "quick"}
    for setting in report["train_step"]["settings"].values():
        assert set(setting["seconds"]) == {"float", "quant", "float_xla", "quant_xla",
                                           "quant_qkeras"}
        assert set(setting["ratios"]) == {"quant/float", "quant_qkeras/float", "quant_xla/float_xla",
                                          "float_xla/float", "quant_xla/quant"}
    assert set(report["pipeline"]["ratios"]) == {"real/memory"}
    assert set(report["inference"]["ratios"]) == {"quant/float", "quant_folded/float",
                                                  "quant_qkeras/float"}
    assert "overhead_per_trial/quick_trial_training" in report["search"]["ratios"]


def test_statistics_are_those_of_the_raw_timings(report):
    """seconds = min/median/max of the raw timings of each call divided by the steps a call runs;
    every call timed, none lost, none a placeholder (> 0, finite)."""
    repeats = report["repeats"]
    per_call = {"pipeline": report["pipeline"]["steps_per_fit"], "inference": 1, "search": 1,
                **{f"train_step.{k}": report["train_step"]["steps_per_repeat"]
                   for k in report["train_step"]["settings"]}}
    timed = {"pipeline": 3 * repeats}  # the pipeline is timed three times as often as the rest
    for name, sec in _sections(report).items():
        assert set(sec["raw"]) == set(sec["seconds"]), name
        if name in per_call:
            assert sec["per_call"] == per_call[name], name
        for key, raw in sec["raw"].items():
            assert len(raw) == timed.get(name, repeats), (name, key, raw)
            assert all(math.isfinite(t) for t in raw), (name, key, raw)
            if name != "search":  # the search's raw values are its per-run overhead split
                assert min(raw) > 0, (name, key, raw)
            per_step = np.asarray(raw, dtype=float) / sec["per_call"]
            expected = {"min": per_step.min(), "median": np.median(per_step), "max": per_step.max()}
            assert sec["seconds"][key] == pytest.approx(expected, rel=1e-12), (name, key)


def test_ratios_are_quotients_of_the_raw_medians(report):
    """Each "a/b" ratio is median(a) / median(b) of the raw timings, numerator a (a swapped or
    mislabelled ratio fails). Within a section both sides run the same steps per call."""
    for name, sec in _sections(report).items():
        for ratio, value in sec["ratios"].items():
            a, b = ratio.split("/")
            expected = np.median(sec["raw"][a]) / np.median(sec["raw"][b])
            assert value == pytest.approx(expected, rel=1e-12), (name, ratio)


# base7 at x3: seven 3x3 convolutions, all on the LR grid: conv_0 3->28, conv_1..conv_4 28->28,
# conv_5 28->27 and conv_6 27->27 (27 = 3 x 3²). MACs per LR pixel, worked out by hand:
MACS_PER_LR_PIXEL = 9 * (3 * 28 + 4 * 28 * 28 + 28 * 27 + 27 * 27)  # = 42,345


def test_derived_numbers_follow_from_the_raw_timings(report):
    peak = report["peak_matmul"]
    matmul = np.median(peak["raw"]["matmul"]) / peak["per_call"]  # seconds per n x n matmul
    assert peak["gflop_s"] == pytest.approx(2 * peak["n"] ** 3 / 1e9 / matmul)
    assert MACS_PER_LR_PIXEL == 42345
    for name, setting in report["train_step"]["settings"].items():
        # A train step counted as 3 forward passes (forward, gradients wrt activations and
        # wrt weights), 2 FLOP per MAC, over batch x patch² LR pixels.
        assert setting["gflop_per_step"] == pytest.approx(
            3 * 2 * MACS_PER_LR_PIXEL * setting["batch"] * setting["patch"] ** 2 / 1e9), name
        for variant, raw in setting["raw"].items():
            step = np.median(raw) / setting["per_call"]
            assert setting["gflop_s"][variant] == pytest.approx(setting["gflop_per_step"] / step)
            assert setting["peak_fraction"][variant] == pytest.approx(
                setting["gflop_s"][variant] / peak["gflop_s"])
    pipeline = report["pipeline"]
    for kind, raw in pipeline["raw"].items():
        assert pipeline["steps_per_s"][kind] == pytest.approx(
            pipeline["steps_per_fit"] / np.median(raw))
    assert report["inference"]["width"] == 64 and report["inference"]["height"] == 48  # smoke


def test_search_runs_account_for_every_step_and_second(report):
    """Each kept run of the tiny search, call by call: StepTimer saw every step the search ran
    (counted from Keras' batch numbers), one traced first call per trial, and the overhead split
    stored for the run adds up to its wall time."""
    s = report["search"]
    quick = PROFILES["quick"]
    quick_step = report["train_step"]["settings"]["quick"]["seconds"]["quant"]["median"]
    assert len(s["runs"]) == report["repeats"]  # the warm-up run is not kept
    for i, run in enumerate(s["runs"]):
        calls, trials = run["calls"], s["trials"]
        parts = {k: values[i] for k, values in s["raw"].items()}
        steps = sum(n for _, n, _ in calls)
        assert steps == trials * s["epochs"] * s["steps_per_epoch"], calls
        assert all(n == s["steps_per_execution"] for _, n, _ in calls), calls
        assert sum(first for _, _, first in calls) == trials, calls  # one fit per trial
        assert all(seconds > 0 for seconds, _, _ in calls) and 0 < run["validation"] < run["wall"]
        later = [seconds / n for seconds, n, first in calls if not first]
        # No later call (smoke: one call per fit): the step is the train-step section's quant step.
        assert parts["step"] == pytest.approx(np.median(later) if later else quick_step)
        assert parts["overhead_per_trial"] * trials + steps * parts["step"] == pytest.approx(
            run["wall"])
        assert parts["overhead_validation_per_trial"] * trials == pytest.approx(run["validation"])
        assert (parts["overhead_tracing_per_trial"] + parts["overhead_validation_per_trial"]
                + parts["overhead_other_per_trial"]) == pytest.approx(parts["overhead_per_trial"])
        assert parts["quick_trial_training"] == pytest.approx(
            quick.epochs * quick.steps_per_epoch * parts["step"])


def test_overhead_parts_splits_a_hand_made_search():
    """A search of 2 trials made up so that every part is known; the answers worked out by hand.

    True step time 0.02 s. Trial 1: one fit of 25 steps in calls of 10, 10, 5 steps; its first call
    also traces for 1.3 s. Trial 2: one fit of 30 steps in calls of 10; it traces for 1.2 s and its
    last call hits a slow spell (0.5 s, not 0.2). Validation 1.0 s in all. Wall 6.0 s.
      step      = median of the later calls' per-step times 0.02, 0.02, 0.02, 0.05 = 0.02
                  (their mean, 0.0275, would be wrong)
      steps     = 55 x 0.02 = 1.1 s;  overhead = 6.0 - 1.1 = 4.9 s = 2.45 s a trial
      tracing   = (1.5 - 10 x 0.02) + (1.4 - 10 x 0.02) = 2.5 s = 1.25 s a trial
      validation= 1.0 s = 0.5 s a trial
      other     = 4.9 - 2.5 - 1.0 = 1.4 s = 0.7 s a trial (the slow spell's 0.3 s is in it)
      a quick trial's training = 400 steps x 0.02 = 8.0 s
    """
    from types import SimpleNamespace

    from solvers.bench.search_overhead import overhead_parts
    calls = [(1.5, 10, True), (0.2, 10, False), (0.1, 5, False),
             (1.4, 10, True), (0.2, 10, False), (0.5, 10, False)]
    timer = SimpleNamespace(calls=calls, validation=1.0)
    parts = overhead_parts(wall=6.0, timer=timer, trials=2, fallback_step=99.0, quick_steps=400)
    assert parts == pytest.approx({"step": 0.02, "overhead_per_trial": 2.45,
                                   "overhead_tracing_per_trial": 1.25,
                                   "overhead_validation_per_trial": 0.5,
                                   "overhead_other_per_trial": 0.7, "quick_trial_training": 8.0})

    # A fit of one call only: no later call to time a step, so the fallback step (0.05 s) is used:
    # steps 10 x 0.05 = 0.5 s; overhead 2.0 - 0.5 = 1.5 s; tracing 1.5 - 0.5 = 1.0 s; other 0.5 s.
    one_call = SimpleNamespace(calls=[(1.5, 10, True)], validation=0.0)
    parts = overhead_parts(2.0, one_call, 1, 0.05, 400)
    assert parts == pytest.approx({"step": 0.05, "overhead_per_trial": 1.5,
                                   "overhead_tracing_per_trial": 1.0,
                                   "overhead_validation_per_trial": 0.0,
                                   "overhead_other_per_trial": 0.5, "quick_trial_training": 20.0})
