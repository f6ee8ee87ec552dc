"""make gradient's job: what it refuses (check.py), and one tiny run through autoq.py whose
result a search's tools take as they take a search's."""
import csv

import pytest
import yaml
from conftest import REPO, run_autoq, write_images

from solvers.config import ConfigError, load_search_space, with_goal_options
from solvers.gradient import check
from solvers.networks.layout import layer_names
from solvers.search import cost
from solvers.search.space import filter_search, search_choices

NAMES = [n for group in layer_names() for n in group]
SHIPPED = REPO / "quantization_config.yaml"


def learnable_of(path):
    space = load_search_space(str(path), NAMES)
    return check.learnable(search_choices(space, *layer_names(), str(path)),
                           filter_search(space, path=str(path)), str(path))


def edited(tmp_path, change):
    """The shipped config with `change(data)` applied, written to tmp_path."""
    data = yaml.safe_load(SHIPPED.read_text())
    change(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_space_is_learnable_over_2_to_8_bits_with_8_bit_biases():
    found = learnable_of(SHIPPED)
    assert (found.lo, found.hi) == (2, 8)
    assert set(found.bias_bits.values()) == {8} and len(found.bias_bits) == 7
    assert found.quantizers["conv_3", "kernel"][5] == 'quantized_bits(5,0,alpha="auto_po2")'
    assert len(found.quantizers) == 13


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(tune_filters="layer"), "tune_filters: layer"),
    (lambda d: d.update(limit={}), "conv_0 bias offers 7 quantizers"),
    (lambda d: d["limit"].update({"conv_[1-4]": {"kernel": 8, "shared": "middle"}}),
     "shared choice middle_kernel_bits"),
    (lambda d: d["limit"].update(conv_2={"kernel": 5}), "one range of widths"),
    (lambda d: d.update(kernel={'quantized_bits(2,0,alpha=1.0)': 2,
                                'quantized_bits(3,0,alpha=1.0)': 3}),
     '"quantized_bits(2,0,alpha=1.0)" (conv_0)'),
    (lambda d: d.update(activation={"quantized_relu(2,8)": 2, "quantized_relu(4,8)": 4}),
     "contiguous range"),
])
def test_what_the_gradient_cannot_express_is_one_error_naming_the_key(tmp_path, change, words):
    with pytest.raises(ConfigError, match="make gradient") as error:
        learnable_of(edited(tmp_path, change))
    assert words in str(error.value) and str(tmp_path) in str(error.value)


def test_a_gradient_run_is_not_distributed():
    result = run_autoq("--algo", "gradient", "--workers", "2")
    assert result.returncode == 2 and "not with --workers" in result.stderr


def test_a_gradient_budget_below_the_cheapest_is_one_line(tmp_path):
    result = run_autoq("--algo", "gradient", "--goal", "bops", "--budget", "1000",
                       "--results-dir", tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "below the cheapest configuration" in result.stderr


def test_a_tiny_gradient_run_ends_under_budget_as_a_search_s_files(tmp_path):
    """autoq.py --algo gradient at uniform 3-bit's BOPs on a tiny data set: integer widths at or
    under the budget, measured on the saved QKeras model; the files a search writes; the
    trajectory and report."""
    from solvers.report.records import load_best_config
    images = write_images(tmp_path / "hr", count=3)
    result = run_autoq("--algo", "gradient", "--gradient-epochs", "2", "--retrain-epochs", "1",
                       "--steps-per-epoch", "3", "--patch-size", "8", "--batch-size", "4",
                       "--data", images, "--goal", "bops", "--budget", "uniform3",
                       "--results-dir", tmp_path / "results", "--tb-dir", tmp_path / "tb",
                       timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "results" / "gradient"
    summary = yaml.safe_load((run_dir / "summary.yaml").read_text())
    assert summary["winner"] == {"trial_id": None, "start": None, "source": "gradient"}
    limit = summary["budget"]["cost"]
    goal = with_goal_options(load_search_space(str(SHIPPED)), "bops").objective.goal
    assert cost.bops(load_best_config(run_dir / "best_config.yaml"), goal) <= limit
    import keras
    saved = keras.models.load_model(run_dir / "best_model_retrained.keras")
    assert cost.bops(saved, goal) == summary["costs"]["bops"] <= limit
    # a plain QKeras base7, as make export and make eval take a search's
    assert {type(layer).__name__ for layer in saved.layers if layer.name.startswith("conv")} \
        == {"QConv2D"}
    rows = list(csv.DictReader((run_dir / "trajectory.csv").read_text().splitlines()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"beta", "cost_fraction", "val_psnr", "conv_0_kernel_width", "act_5_activation_bits"} \
        <= set(rows[0])
    report = (run_dir / "report.md").read_text()
    assert "![trajectory](trajectory.png)" in report and (run_dir / "trajectory.png").exists()
    assert summary["test"]["psnr"] > 0 and summary["gradient"]["epochs"] == 2
