"""The benchmark's smoke run: bench.json well formed. No time is asserted (the machine is shared)."""
import json
import math

import pytest

from solvers.bench import speed

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


def test_times_are_positive_and_finite(report):
    for name, sec in _sections(report).items():
        for key, s in sec["seconds"].items():
            assert set(s) == {"min", "median", "max"}, (name, key)
            assert all(math.isfinite(v) for v in s.values()), (name, key, s)
            assert s["min"] <= s["median"] <= s["max"], (name, key, s)
            # overhead = wall - steps could be ~0 in theory; every measured time is > 0
            if not key.startswith("overhead"):
                assert s["min"] > 0, (name, key, s)


def test_ratios_are_the_quotients_of_the_reported_medians(report):
    for name, sec in _sections(report).items():
        for ratio, value in sec["ratios"].items():
            a, b = ratio.split("/")
            medians = sec["seconds"][a]["median"], sec["seconds"][b]["median"]
            assert value == pytest.approx(medians[0] / medians[1], rel=1e-12), (name, ratio)


def test_derived_numbers_follow_from_the_times(report):
    peak = report["peak_matmul"]
    assert peak["gflop_s"] == pytest.approx(2 * peak["n"] ** 3 / 1e9 / peak["seconds"]["matmul"]["median"])
    for setting in report["train_step"]["settings"].values():
        # 42,345 MACs per LR pixel (the sum of base7's kernel sizes), a step ~ 3 forward passes
        assert setting["gflop_per_step"] == pytest.approx(
            3 * 2 * 42345 * setting["batch"] * setting["patch"] ** 2 / 1e9)
        for variant, s in setting["seconds"].items():
            assert setting["gflop_s"][variant] == pytest.approx(setting["gflop_per_step"] / s["median"])
    assert report["inference"]["width"] == 64 and report["inference"]["height"] == 48


def test_overhead_parts_splits_the_wall_time_it_is_given():
    from types import SimpleNamespace

    from solvers.bench.search_overhead import overhead_parts
    # two fits of 20 steps in 2 calls each: first calls 1.5 s (10 steps + tracing), later 0.2 s
    timer = SimpleNamespace(calls=[(1.5, 10, True), (0.2, 10, False)] * 2, validation=1.0)
    parts = overhead_parts(wall=6.0, timer=timer, trials=2, fallback_step=99.0, quick_steps=400)
    assert parts["step"] == pytest.approx(0.02)  # the later calls', not the fallback
    assert parts["overhead_per_trial"] == pytest.approx((6.0 - 40 * 0.02) / 2)
    assert parts["overhead_tracing_per_trial"] == pytest.approx((1.5 - 0.2) * 2 / 2)
    assert parts["overhead_validation_per_trial"] == pytest.approx(0.5)
    assert parts["overhead_other_per_trial"] == pytest.approx(2.6 - 1.3 - 0.5)
    assert parts["quick_trial_training"] == pytest.approx(8.0)
    one_call = SimpleNamespace(calls=[(1.5, 10, True)], validation=0.0)
    assert overhead_parts(2.0, one_call, 1, 0.05, 400)["step"] == 0.05  # only first calls
