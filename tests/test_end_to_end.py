"""Tiny searches through autoq.py in a fresh process, checking every output file."""
import csv

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_autoq, write_images
from solvers.search import cost
from solvers.networks.base7 import base7, hp_name, layer_names, quantizers_from_hp
from solvers.report import pareto
from solvers.report.records import load_best_config

TINY = ["--epochs", "1", "--retrain-epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4"]
CONVS, ACTS = layer_names()
# The 20 searched quantizers: conv_i_kernel, conv_i_bias (i = 0..6), act_i_activation (i = 0..5).
HP_NAMES = [hp_name(c, k) for c in CONVS for k in ("kernel", "bias")] + \
    [hp_name(a, "activation") for a in ACTS]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _search(tmp_path, images, *args):
    """autoq.py on the tiny folder `images` (a later --data wins) with TINY settings."""
    result = run_autoq(*TINY, "--data", images, "--results-dir", tmp_path / "results",
                       "--tb-dir", tmp_path / "tb", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _quantizer_configs(model):
    """{hyperparameter name: qkeras config of that quantizer} of a quantized base7's 20 quantizers."""
    configs = {}
    for c in CONVS:
        layer = model.get_layer(c)
        configs[hp_name(c, "kernel")] = layer.kernel_quantizer_internal.get_config()
        configs[hp_name(c, "bias")] = layer.bias_quantizer_internal.get_config()
    configs.update({hp_name(a, "activation"): model.get_layer(a).activation.get_config()
                    for a in ACTS})
    return configs


def _tensorboard_text(folder):
    return b"".join(p.read_bytes() for p in folder.rglob("events.out.tfevents.*"))


def _hparams_and_scalars(folder):
    """({hyperparameter: value} of the HParams session starts, {scalar tags}) of the TensorBoard
    events under `folder`: what the HParams dashboard lists as hyperparameters and (inferred
    from the session's runs) as metrics."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2
    hparams, tags = {}, set()
    for path in folder.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                    for name, v in data.session_start_info.hparams.items():
                        hparams[name] = v.number_value if v.HasField("number_value") \
                            else v.string_value
                elif plugin.plugin_name == "scalars" or value.HasField("simple_value"):
                    tags.add(value.tag)
    return hparams, tags


def fake_div2k(root):
    """A tiny tree with DIV2K's official names at ×3: 3 training images, 2 validation (0801-0850)
    and 1 test (0851-0900, held out)."""
    rng = np.random.default_rng(0)
    for part, numbers in (("train", (1, 2, 3)), ("valid", (801, 802, 851))):
        for n in numbers:
            for folder, name, size in ((f"DIV2K_{part}_HR", f"{n:04d}.png", 36),
                                       (f"DIV2K_{part}_LR_bicubic/X3", f"{n:04d}x3.png", 12)):
                (root / folder).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / folder / name)
    return root


# One tiny search checks every output (random search, folders and the bits goal run in
# test_failures.py, test_resume.py and test_rebalancing.py).
@pytest.mark.parametrize("algo, source, goal", [("bayesian", "div2k", "energy")])
def test_tiny_search_writes_every_output(tmp_path, images, algo, source, goal):
    data = ["--data", "div2k", "--div2k-root", fake_div2k(tmp_path / "DIV2K")] \
        if source == "div2k" else []
    config = tmp_path / "q.yaml"  # the shipped search space with this goal (default: bits)
    config.write_text(open("quantization_config.yaml").read()
                      + f"goal: {{type: {goal}, input_hw: [16, 24]}}\n")
    result = _search(tmp_path, images, "--algo", algo, "--trials", "2", "--config", config, *data)
    if source == "div2k":
        assert ("data: 3 training, 2 validation (selection) and 1 test (held out) images "
                "(div2k)") in result.stdout
    run_dir, tb_dir = tmp_path / "results" / algo, tmp_path / "tb" / algo
    for name in ("trials.csv", "best_config.yaml", "best_model.keras", "best_model_retrained.keras"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "tuner").is_dir()

    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2
    # The first trials are the starting points (search/starting_points.py): uniform 2-bit, then 3-bit (biases
    # at the shipped limit's 8 bits), so picking the wrong one as the winner below cannot go
    # unnoticed.
    assert len(HP_NAMES) == 20 and set(rows[0]) >= set(HP_NAMES)
    assert [r["start"] for r in rows] == ["uniform 2-bit", "uniform 3-bit"]
    for row, bits in zip(rows, (2, 3)):
        assert {int(row[f"{h}_bits"]) for h in HP_NAMES} == {bits, 8}
        assert {int(row[f"{h}_bits"]) for h in HP_NAMES if "bias" in h} == {8}
    assert len({tuple(r[h] for h in HP_NAMES) for r in rows}) == 2
    # Next to each quantizer string, its width: the hyperparameter (conv_0_kernel_bits).
    assert all(int(r[f"{h}_bits"]) == pareto.bits_of(r[h]) for r in rows for h in HP_NAMES)
    for row in rows:
        assert float(row["size_bits"]) > 0 and float(row["val_psnr"]) > 0
        assert set(row) >= {"val_loss", "val_score", "conv_6_bias", "act_5_activation"}
        assert all(float(row[c]) > 0 for c in cost.COST_COLUMNS)  # every cost, every trial
        assert row["cost"] == row["energy_pj" if goal == "energy" else "bits"]
    best = min(rows, key=lambda r: float(r["val_score"]))

    # best_config.yaml holds every quantizer of the trial with the lowest val_score, and rebuilds
    # the model with them and the same size.
    config = yaml.safe_load(open(run_dir / "best_config.yaml"))
    assert {hp_name(layer, kind): quantizer for layer, kinds in config["quantizers"].items()
            for kind, quantizer in kinds.items()} == {h: best[h] for h in HP_NAMES}
    rebuilt = load_best_config(run_dir / "best_config.yaml")
    assert cost.size_bits(rebuilt) == int(float(best["size_bits"]))
    saved = keras.models.load_model(run_dir / "best_model_retrained.keras")
    assert cost.size_bits(saved) == cost.size_bits(rebuilt)
    # The trial's goal cost is the saved model's, at the goal's reference input size.
    trial_goal = cost.Goal(type=goal, input_hw=(16, 24))
    assert float(best["cost"]) == pytest.approx(cost.costs(saved, trial_goal)["cost"], rel=1e-6)
    # The retrained model's 20 quantizers are the winner's, layer by layer (as qkeras configs of a
    # base7 built from the trials.csv row).
    expected = base7(3, quantizers=quantizers_from_hp(best))
    assert _quantizer_configs(saved) == _quantizer_configs(expected)
    assert saved.predict(np.zeros((1, 5, 6, 3), "float32"), verbose=0).shape == (1, 15, 18, 3)

    # TensorBoard: one folder per trial with HParams, one for the retrain.
    trial_dirs = [p for p in tb_dir.iterdir() if p.name not in ("retrain", "report")]
    assert len(trial_dirs) == 2 and (tb_dir / "retrain").is_dir()
    assert b"tradeoff" in _tensorboard_text(tb_dir / "report")

    # The report, written at the end of every search.
    for name in ("report.md", "pareto.csv", "tradeoff.png", "layer_bits.png", "progress.png"):
        assert (run_dir / name).is_file(), name
    assert f"report: {run_dir / 'report.md'}" in result.stdout
    report = (run_dir / "report.md").read_text()
    column = {"energy": "energy_pj", "bits": "bits"}[goal]
    assert f"Its goal cost ({column})" in report and "energy_pj (µJ)" in report
    for trial_dir in trial_dirs:
        # HParams: the widths as numbers (not truncated quantizer strings), and every cost next
        # to val_psnr as metrics (scalars of the session's runs).
        hparams, tags = _hparams_and_scalars(trial_dir)
        assert {f"{h}_bits" for h in HP_NAMES} <= set(hparams), sorted(hparams)
        assert all(isinstance(hparams[f"{h}_bits"], float) and 2 <= hparams[f"{h}_bits"] <= 8
                   for h in HP_NAMES)
        assert {"epoch_size_bits", "epoch_bits", "epoch_bops", "epoch_energy_pj", "epoch_cost",
                "epoch_psnr"} <= tags, sorted(tags)
        text = _tensorboard_text(trial_dir)
        assert b"hparams" in text and b"epoch_score" in _tensorboard_text(trial_dir / "execution0" / "validation")
    # each finalist's retrain: tb_logs/<RUN>/retrain/trial_<id>/
    finals = list((tb_dir / "retrain").glob("trial_*"))
    assert finals and all(b"epoch_psnr" in _tensorboard_text(d / "validation") for d in finals)

    # Progress and summary.
    assert "trial 1/2" in result.stdout and "trial 2/2 done" in result.stdout
    assert "left for 0 trial(s)" in result.stdout
    assert "uniform 8-bit" in result.stdout and "after the retrain" in result.stdout
    # The retrained winner scored on the held-out test images, next to the validation figures.
    summary = yaml.safe_load(open(run_dir / "summary.yaml"))
    assert summary["test"]["images"] == 1  # DIV2K's 0851 (a 3-image folder: its second image)
    assert summary["test"]["psnr"] > 0 and summary["test"]["loss"] > 0
    assert "test PSNR (held out, 1 image)" in result.stdout


def test_pretrained_hyperband_starts_from_the_float_model(tmp_path, images):
    float_path = tmp_path / "float" / "float_model.keras"
    result = run_autoq(*TINY, "--data", images, "--train-float", "--float-model", float_path,
                       "--tb-dir", tmp_path / "tb", "--run", "float")
    assert result.returncode == 0, result.stderr[-3000:]
    assert float_path.is_file() and "val PSNR" in result.stdout
    assert cost.size_bits(keras.models.load_model(float_path)) == 42539 * 32

    result = _search(tmp_path, images, "--algo", "hyperband", "--float-model", float_path)
    run_dir = tmp_path / "results" / "hyperband_pretrained"  # the default run name
    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert len(rows) == 1 and rows[0]["status"] == "COMPLETED"  # Hyperband, max 1 epoch: 1 trial
    assert "trial 1/1" in result.stdout and f"from {float_path}" in result.stdout
    assert (run_dir / "best_model_retrained.keras").is_file()


def test_uniform_baselines_write_one_row_per_width_and_float(tmp_path, images):
    config = tmp_path / "q.yaml"
    text = open("quantization_config.yaml").read()
    for bits in (2, 3, 5, 6, 7):  # keep widths 4 and 8 only, to stay quick
        text = "\n".join(line for line in text.splitlines() if f"({bits}," not in line)
    config.write_text(text + "\n")
    result = _search(tmp_path, images, "--baselines", "--config", config, "--run", "tiny")
    rows = list(csv.DictReader(open(tmp_path / "results" / "baselines" / "tiny" / "baselines.csv")))
    assert [r["label"] for r in rows] == ["uniform 4-bit", "uniform 8-bit", "float32"]
    assert [r["width"] for r in rows] == ["4", "8", "32"]
    # Every cost of each baseline; the goal's (bits by default) falls with the width.
    assert all(float(r[c]) > 0 for r in rows for c in cost.COST_COLUMNS)
    assert [r["cost"] for r in rows] == [r["bits"] for r in rows]
    assert float(rows[0]["bits"]) < float(rows[1]["bits"]) < float(rows[2]["bits"])
    sizes = [int(float(r["size_bits"])) for r in rows]
    assert sizes == [42539 * 4, 42539 * 8, 42539 * 32]
    assert all(float(r["val_psnr"]) > 0 and r["epochs"] == r["best_epoch"] == "1" for r in rows)
    assert "float32" in result.stdout and not (tmp_path / "results" / "tiny").exists()


def test_bayesian_search_is_guided_after_a_third_of_its_trials(tmp_path):
    """make_tuner("bayesian")'s oracle over 9 trials, scored without training: the first third is
    drawn at random, then the Gaussian process, refitted on every finished trial, proposes the rest.

    Three quantizers of the search space (kernel, bias, activation: 2..8 bits each, 343
    combinations), a trial's score its total bits: the optimum, 2 bits everywhere, is obvious.
    With Keras Tuner's default num_initial_points (3 per hyperparameter: 9 here, 60 for base7's 20)
    every trial would be random and no Gaussian process would be fitted.
    """
    import warnings

    import keras_tuner as kt
    from solvers.search import tuners
    from solvers.config import load_search_space
    space = load_search_space("quantization_config.yaml")
    kinds = {"conv_0_kernel": space.kernel, "conv_0_bias": space.bias,
             "act_0_activation": space.activation}
    bits_of = {**space.kernel, **space.bias, **space.activation}

    class ThreeQuantizers(kt.HyperModel):
        def build(self, hp):
            for name, choices in kinds.items():
                hp.Choice(name, list(choices))
            return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])  # never trained

    tuner = tuners.make_tuner("bayesian", ThreeQuantizers(), bits_of, 9, 1, 1, str(tmp_path))
    oracle = tuner.oracle
    fitted_on = []  # the number of finished trials of each Gaussian-process fit
    fit = oracle.gpr.fit
    oracle.gpr.fit = lambda x, y: (fitted_on.append(len(y)), fit(x, y))[1]
    proposed_by, scores = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's length-scale convergence warnings
        for _ in range(9):
            fits = len(fitted_on)
            trial = oracle.create_trial("tuner0")
            proposed_by.append("gp" if len(fitted_on) > fits else "random")
            scores.append(sum(bits_of[trial.hyperparameters.get(name)] for name in kinds))
            oracle.update_trial(trial.trial_id, {"val_score": scores[-1]})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == "STOPPED"  # max_trials 9
    assert proposed_by == ["random"] * 3 + ["gp"] * 6, (proposed_by, scores)
    assert fitted_on == [3, 4, 5, 6, 7, 8]  # refitted on every finished trial
    # Guided, the proposals improve on the random ones and reach the optimum (6 bits in all),
    # which each random draw hits with probability 1/343.
    assert min(scores[3:]) == 3 * 2 and np.mean(scores[3:]) < np.mean(scores[:3]), scores
