"""Tiny searches through autoq.py in a fresh process, checking every output file."""
import csv

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_autoq, write_images
from solvers.search import cost
from solvers.report.records import load_best_config

TINY = ["--epochs", "1", "--retrain-epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _search(tmp_path, images, *args):
    """autoq.py on the tiny folder `images` (a later --data wins) with TINY settings."""
    result = run_autoq(*TINY, "--data", images, "--results-dir", tmp_path / "results",
                       "--tb-dir", tmp_path / "tb", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _tensorboard_text(folder):
    return b"".join(p.read_bytes() for p in folder.rglob("events.out.tfevents.*"))


def fake_div2k(root):
    """A tiny tree with DIV2K's official names: 3 training and 2 validation images at ×3."""
    rng = np.random.default_rng(0)
    for part, numbers in (("train", (1, 2, 3)), ("valid", (801, 802))):
        for n in numbers:
            for folder, name, size in ((f"DIV2K_{part}_HR", f"{n:04d}.png", 36),
                                       (f"DIV2K_{part}_LR_bicubic/X3", f"{n:04d}x3.png", 12)):
                (root / folder).mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / folder / name)
    return root


@pytest.mark.parametrize("algo, source", [("random", "folder"), ("bayesian", "div2k")])
def test_tiny_search_writes_every_output(tmp_path, images, algo, source):
    data = ["--data", "div2k", "--div2k-root", fake_div2k(tmp_path / "DIV2K")] \
        if source == "div2k" else []
    result = _search(tmp_path, images, "--algo", algo, "--trials", "2", *data)
    if source == "div2k":
        assert "data: 3 training and 2 validation images (div2k)" in result.stdout
    run_dir, tb_dir = tmp_path / "results" / algo, tmp_path / "tb" / algo
    for name in ("trials.csv", "best_config.yaml", "best_model.keras", "best_model_retrained.keras"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "tuner").is_dir()

    rows = list(csv.DictReader(open(run_dir / "trials.csv")))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2
    assert len({r["conv_0_kernel"] + r["act_5_activation"] + r["conv_6_bias"] for r in rows}) >= 1
    for row in rows:
        assert float(row["size_bits"]) > 0 and float(row["val_psnr"]) > 0
        assert set(row) >= {"val_loss", "val_score", "conv_6_bias", "act_5_activation"}
    best = min(rows, key=lambda r: float(r["val_score"]))

    # best_config.yaml rebuilds the model with the winning quantizers and the same size.
    config = yaml.safe_load(open(run_dir / "best_config.yaml"))
    assert config["quantizers"]["conv_0"]["kernel"] == best["conv_0_kernel"]
    rebuilt = load_best_config(run_dir / "best_config.yaml")
    assert cost.size_bits(rebuilt) == int(float(best["size_bits"]))
    saved = keras.models.load_model(run_dir / "best_model_retrained.keras")
    assert cost.size_bits(saved) == cost.size_bits(rebuilt)
    assert saved.predict(np.zeros((1, 5, 6, 3), "float32"), verbose=0).shape == (1, 15, 18, 3)

    # TensorBoard: one folder per trial with HParams, one for the retrain.
    trial_dirs = [p for p in tb_dir.iterdir() if p.name not in ("retrain", "report")]
    assert len(trial_dirs) == 2 and (tb_dir / "retrain").is_dir()
    assert b"tradeoff" in _tensorboard_text(tb_dir / "report")

    # The report, written at the end of every search.
    for name in ("report.md", "pareto.csv", "tradeoff.png", "layer_bits.png", "progress.png"):
        assert (run_dir / name).is_file(), name
    assert f"report: {run_dir / 'report.md'}" in result.stdout
    for trial_dir in trial_dirs:
        text = _tensorboard_text(trial_dir)
        assert b"hparams" in text and b"epoch_score" in _tensorboard_text(trial_dir / "execution0" / "validation")
    assert b"epoch_psnr" in _tensorboard_text(tb_dir / "retrain" / "validation")

    # Progress and summary.
    assert "trial 1/2" in result.stdout and "trial 2/2 done" in result.stdout
    assert "left for 0 trial(s)" in result.stdout
    assert "uniform 8-bit" in result.stdout and "after the retrain" in result.stdout


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
    sizes = [int(float(r["size_bits"])) for r in rows]
    assert sizes == [42539 * 4, 42539 * 8, 42539 * 32]
    assert all(float(r["val_psnr"]) > 0 and r["epochs"] == r["best_epoch"] == "1" for r in rows)
    assert "float32" in result.stdout and not (tmp_path / "results" / "tiny").exists()


def test_bayesian_search_is_guided_after_a_third_of_its_trials(tmp_path):
    from solvers import train
    from solvers.search import tuners
    from solvers.config import load_search_space, search_choices
    from solvers.networks.base7 import MyHyperModel, layer_names
    conv, act = layer_names()
    choices = search_choices(load_search_space("quantization_config.yaml"), conv, act)
    hypermodel = MyHyperModel(choices, train.compile_model, train.fit)
    tuner = tuners.make_tuner("bayesian", hypermodel, {}, 9, 1, 1, str(tmp_path))
    assert tuner.oracle.num_initial_points == 3 and tuner.oracle.max_trials == 9
