"""Rebalancing (tune_filters): the filter hyperparameters, best_config.yaml and the records with
other widths than base7's, and one tiny search through autoq.py that searches them."""
import csv

import keras
import pytest
import yaml

from conftest import run_autoq, write_images
from solvers.config import load_search_space
from solvers.search.space import filter_choices, filter_search
from solvers.networks.base7 import base7, layer_filters, layer_names, quantizers_from_hp
from solvers.report import records
from solvers.report.report_md import _rebuilt_layers
from solvers.report.report_text import summary_md
from solvers.search import cost

CONV, ACT = layer_names()
SEARCHED = CONV[:-1]  # conv_6 keeps 3·scale² outputs
SHIPPED = "quantization_config.yaml"


def _space(tmp_path, **keys):
    """The shipped search space with these top-level keys set."""
    data = yaml.safe_load(open(SHIPPED))
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump({**data, **keys}))
    return load_search_space(path, CONV + ACT), path


def test_layer_mode_gives_each_searched_layer_its_widths(tmp_path):
    space, path = _space(tmp_path, tune_filters="layer")
    choices = filter_choices(space, scale=3, path=path)
    assert list(choices) == [f"{c}_filters" for c in SEARCHED]  # no conv_6_filters
    assert choices["conv_0_filters"] == [14, 21, 28, 42, 56]
    # conv_5 is 3·3² = 27 wide: 13.5, 20.25, 27, 40.5, 54, rounded half up.
    assert choices["conv_5_filters"] == [14, 20, 27, 41, 54]
    assert filter_choices(space, scale=2, path=path)["conv_5_filters"] == [6, 9, 12, 18, 24]


def test_block_mode_is_one_multiplier_and_exceptions_keep_their_width(tmp_path):
    space, path = _space(tmp_path, tune_filters="block", tune_filters_multipliers=[2, 0.5, 1, 2],
                         tune_filters_exceptions="conv_[05]")
    assert filter_choices(space, path=path) == {"filters_multiplier": [0.5, 1.0, 2.0]}
    search = filter_search(space, path=path)
    assert search.filters_of({"filters_multiplier": 0.5}) == {c: 14 for c in CONV[1:5]}
    space, path = _space(tmp_path, tune_filters="layer", tune_filters_exceptions="conv_0")
    assert list(filter_choices(space, path=path)) == [f"{c}_filters" for c in SEARCHED[1:]]


def _values():
    values = {f"{c}_kernel": f'quantized_bits({2 + i % 5},0,alpha="auto_po2")'
              for i, c in enumerate(CONV)}
    values.update({f"{c}_bias": "quantized_bits(8,0,alpha=1.0)" for c in CONV})
    values.update({f"{a}_activation": f"quantized_relu({3 + i},8)" for i, a in enumerate(ACT)})
    return values


def test_best_config_and_records_follow_the_chosen_widths(tmp_path):
    values, path = _values(), tmp_path / "best_config.yaml"
    widths = {**layer_filters(base7()), "conv_0": 56, "conv_3": 14, "conv_5": 20}
    records.write_best_config(path, values, 3, filters=widths)
    assert yaml.safe_load(open(path))["filters"] == widths
    rebuilt = records.load_best_config(path)
    expected = base7(3, quantizers=quantizers_from_hp(values), filters=widths)
    assert layer_filters(rebuilt) == widths
    assert cost.size_bits(rebuilt) == cost.size_bits(expected) != cost.size_bits(
        base7(3, quantizers=quantizers_from_hp(values)))
    # A best_config.yaml from before filter search (no `filters`) rebuilds base7's widths.
    records.write_best_config(path, values, 3)
    assert layer_filters(records.load_best_config(path)) == layer_filters(base7())

    scores = {"psnr": 30.0, "loss": 5.0}
    record = records.summary_record(rebuilt, "3", values, scores, scores)
    assert [layer["filters"] for layer in record["layers"]] == list(widths.values())
    assert record["layers"][0]["biases"] == 56
    table = records.summary(rebuilt, values, scores, scores).splitlines()
    assert table[0].split()[:3] == ["layer", "filters", "params"]
    assert table[1].split()[:3] == ["conv_0", "56", str(9 * 3 * 56 + 56)]
    sizes = {k: record[k] for k in ("size_bits", "float32_bits", "uniform8_bits")}
    markdown = summary_md({"layers": record["layers"], "sizes": {**sizes, "val_psnr_search": 30.0}})
    assert "| layer | filters | weights |" in markdown and "| conv_3 | 14 | 3528 | 14 |" in markdown

    # A run without summary.yaml: the chosen trials.csv row's widths (layer mode), or its
    # multiplier applied to the layers run.yaml's tune_filters names (block mode).
    row = {**values, "size_bits": "1000", "val_psnr": "30",
           **{f"{c}_filters": str(w) for c, w in widths.items() if c != "conv_6"}}
    layers, _ = _rebuilt_layers(row, 3)
    assert [layer["filters"] for layer in layers] == list(widths.values())
    block = {**values, "size_bits": "1000", "val_psnr": "30", "filters_multiplier": "1.5"}
    layers, _ = _rebuilt_layers(block, 3, {"mode": "block", "layers": {"conv_1": 28, "conv_5": 27}})
    assert [layer["filters"] for layer in layers] == [28, 42, 28, 28, 28, 41, 27]


TINY = ["--epochs", "1", "--retrain-epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4", "--trials", "2", "--algo", "random",
        "--no-starting-points"]  # random widths in both trials: starting points keep base7's


def test_tiny_layer_mode_search_records_and_saves_the_chosen_widths(tmp_path):
    config = tmp_path / "q.yaml"
    data = yaml.safe_load(open(SHIPPED))
    config.write_text(yaml.safe_dump({**data, "tune_filters": "layer",
                                      "goal": {"type": "energy", "input_hw": [16, 16]}}))
    images = write_images(tmp_path / "hr", count=3)
    common = [*TINY, "--data", images, "--results-dir", tmp_path / "results", "--tb-dir",
              tmp_path / "tb"]
    result = run_autoq(*common, "--config", config)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "results" / "random"

    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    names = [f"{c}_filters" for c in SEARCHED]
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2 and set(rows[0]) >= set(names)
    assert "conv_6_filters" not in rows[0]
    # The two trials drew different widths, so a winner built at the wrong ones cannot pass.
    assert len({tuple(r[n] for n in names) for r in rows}) == 2
    best = min(rows, key=lambda r: float(r["val_score"]))
    chosen = {c: int(best[f"{c}_filters"]) for c in SEARCHED}

    config_widths = yaml.safe_load(open(run_dir / "best_config.yaml"))["filters"]
    assert config_widths == {**chosen, "conv_6": 27}
    saved = keras.models.load_model(run_dir / "best_model_retrained.keras")
    assert layer_filters(saved) == config_widths
    assert cost.size_bits(saved) == int(float(best["size_bits"]))
    goal = cost.Goal(type="energy", input_hw=(16, 16))
    assert float(best["energy_pj"]) == pytest.approx(cost.energy_pj(saved, goal), rel=1e-6)
    summary = yaml.safe_load(open(run_dir / "summary.yaml"))
    assert [layer["filters"] for layer in summary["layers"]] == list(config_widths.values())
    assert "| layer | filters |" in (run_dir / "report.md").read_text()
    settings = yaml.safe_load(open(run_dir / "run.yaml"))
    assert settings["tune_filters"]["mode"] == "layer"
    assert settings["search_space"]["conv_0_filters"] == [14, 21, 28, 42, 56]

    # The same RUN without tune_filters is another search: refused, not continued.
    config.write_text(yaml.safe_dump({**data, "goal": {"type": "energy", "input_hw": [16, 16]}}))
    refused = run_autoq(*common, "--config", config)
    assert refused.returncode == 2
    assert "this run was started with search_space.conv_0_filters" in refused.stderr
