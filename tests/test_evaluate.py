"""solvers/evaluate.py: scores against independent NumPy arithmetic, eval.csv, PNGs, bad inputs."""
import csv
import math
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import REPO, write_images
from solvers import evaluate
from solvers.data import sources
from solvers.networks.base7 import base7

HR_SIZE = (36, 42)  # LR 12x14 at scale 3; 30x36 after the 3-pixel border crop (SSIM needs 11)


def _zero_base7(scale=3):
    """base7 with every weight zero: only the anchor is left, i.e. a nearest-neighbour upscale."""
    model = base7(scale=scale)
    for w in model.weights:
        w.assign(np.zeros(w.shape, "float32"))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Saved models: untrained x3, all-zero x3 (nearest neighbour), untrained x2, a Dense net;
    and a file that is no model."""
    folder = tmp_path_factory.mktemp("models")
    paths = {"x3": folder / "x3.keras", "zero": folder / "zero.keras", "x2": folder / "x2.keras",
             "junk": folder / "junk.keras"}
    base7(scale=3).save(paths["x3"])
    _zero_base7().save(paths["zero"])
    base7(scale=2).save(paths["x2"])
    paths["junk"].write_text("not a zip")
    paths["dense"] = folder / "dense.keras"  # loads, but maps vectors, not images
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(paths["dense"])
    return paths


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=2, size=HR_SIZE)


def _nearest_pair_folders(root, count=2):
    """HR and LR folders where every HR image is its random LR image repeated 3x3 (paired)."""
    rng = np.random.default_rng(5)
    hr_dir, lr_dir = root / "hr_nn", root / "lr_nn"
    hr_dir.mkdir(), lr_dir.mkdir()
    for i in range(count):
        lr = rng.integers(0, 256, (HR_SIZE[0] // 3, HR_SIZE[1] // 3, 3), dtype=np.uint8)
        Image.fromarray(lr).save(lr_dir / f"p{i}.png")
        Image.fromarray(lr.repeat(3, axis=0).repeat(3, axis=1)).save(hr_dir / f"p{i}.png")
    return hr_dir, lr_dir


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_bicubic_baseline_matches_numpy_arithmetic(hr_folder):
    pairs = sources.eval_pairs(hr_folder, 3)
    rows = evaluate.evaluate(_zero_base7(), pairs, 3)
    for pair, row in zip(pairs, rows):
        h, w = pair.lr.shape[:2]
        sr = tf.image.resize(pair.lr[None].astype("float32"), (3 * h, 3 * w), "bicubic")
        sr = np.round(np.clip(sr.numpy()[0].astype("float64"), 0, 255))
        hr = pair.hr.astype("float64")

        def luma(rgb):  # ITU-R BT.601, studio range, as MATLAB's rgb2ycbcr
            return 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255

        def psnr(a, b):
            mse = np.mean((a[3:-3, 3:-3] - b[3:-3, 3:-3]) ** 2)
            return 20 * math.log10(255 / math.sqrt(mse))

        assert row["image"] == pair.name
        assert row["bicubic_y_psnr"] == pytest.approx(psnr(luma(hr), luma(sr)), abs=1e-3)
        assert row["bicubic_rgb_psnr"] == pytest.approx(psnr(hr, sr), abs=1e-3)
        assert 0 < row["bicubic_y_ssim"] < 1


def test_zero_weight_model_is_exact_on_nearest_neighbour_images(tmp_path, models):
    hr_dir, lr_dir = _nearest_pair_folders(tmp_path)
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(models["zero"]), "--data", str(hr_dir),
                          "--lr-data", str(lr_dir), "--out", str(out)]) == 0
    rows = _read_csv(out / "eval.csv")
    assert [r["image"] for r in rows] == ["p0", "p1", "average"]
    for row in rows:
        assert math.isinf(float(row["model_y_psnr"])) and math.isinf(float(row["model_rgb_psnr"]))
        assert float(row["model_y_ssim"]) == pytest.approx(1.0, abs=1e-6)
        assert math.isfinite(float(row["bicubic_y_psnr"]))  # bicubic blurs the blocks


def test_csv_has_one_row_per_image_and_their_mean(tmp_path, models, hr_folder, capsys):
    model = tmp_path / "run" / "m.keras"
    model.parent.mkdir()
    shutil.copy(models["x3"], model)
    assert evaluate.main(["--model", str(model), "--data", str(hr_folder)]) == 0
    rows = _read_csv(tmp_path / "run" / "eval" / "eval.csv")  # default out: <model dir>/eval
    assert list(rows[0]) == ["image", "bicubic_y_psnr", "bicubic_y_ssim", "bicubic_rgb_psnr",
                             "model_y_psnr", "model_y_ssim", "model_rgb_psnr", "gain_db"]
    assert [r["image"] for r in rows] == ["img00", "img01", "average"]
    for key in list(rows[0])[1:]:
        values = [float(r[key]) for r in rows[:-1]]
        assert float(rows[-1][key]) == pytest.approx(np.mean(values), abs=1e-5)
    for row in rows:
        gain = float(row["model_y_psnr"]) - float(row["bicubic_y_psnr"])
        assert float(row["gain_db"]) == pytest.approx(gain, abs=1e-5)
    table = capsys.readouterr().out
    assert "average" in table and "img01" in table and "gain_db" in table
    assert not list((tmp_path / "run" / "eval").glob("*.tmp"))  # the temp file was renamed


def test_save_images_writes_one_png_per_image_at_hr_size(tmp_path, models, hr_folder):
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(models["x3"]), "--data", str(hr_folder),
                          "--out", str(out), "--save-images"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["img00_x3.png", "img01_x3.png"]
    with Image.open(out / "img00_x3.png") as img:
        assert img.mode == "RGB" and img.size == HR_SIZE[::-1]


def test_float_model_columns_appear_when_given(tmp_path, models, hr_folder, capsys):
    out = tmp_path / "out"
    assert evaluate.main(["--model", str(models["x3"]), "--data", str(hr_folder), "--out",
                          str(out), "--float-model", str(models["zero"])]) == 0
    rows = _read_csv(out / "eval.csv")
    assert {"float_y_psnr", "float_y_ssim", "float_rgb_psnr"} <= set(rows[0])
    assert rows[0]["float_y_psnr"] != rows[0]["model_y_psnr"]  # a different model's scores
    assert "float_y_psnr" in capsys.readouterr().out


def _bad_inputs(tmp_path, models, hr_folder):
    """(arguments, text the error line must contain) for each bad input."""
    empty = tmp_path / "empty"
    empty.mkdir()
    truncated = tmp_path / "truncated"
    write_images(truncated, count=1, size=HR_SIZE)
    png = truncated / "img00.png"
    png.write_bytes(png.read_bytes()[:200])
    small = write_images(tmp_path / "small", count=1, size=(16, 30))  # HR 15x30; 9 high uncropped
    mismatch = tmp_path / "lr_small"
    mismatch.mkdir()
    for name in ("img00", "img01"):
        Image.new("RGB", (10, 10)).save(mismatch / f"{name}.png")
    data = ["--data", str(hr_folder)]
    x3 = ["--model", str(models["x3"])]
    return [
        (["--model", str(tmp_path / "none.keras"), *data], "none.keras: no such file"),
        (["--model", str(models["junk"]), *data],
         "junk.keras: not a loadable .keras model (not a zip"),
        (["--model", str(models["dense"]), *data], "dense.keras: not a super-resolution model"),
        (["--model", str(models["x2"]), *data, "--scale", "3"], "a x2 model, but --scale is 3"),
        ([*x3, *data, "--float-model", str(models["x2"])], "--float-model: "),
        ([*x3, "--data", str(tmp_path / "missing")], "missing: folder does not exist"),
        ([*x3, "--data", str(empty)], "no PNG/JPEG images found"),
        ([*x3, "--data", str(truncated)], "img00.png: cannot read image"),
        ([*x3, "--data", str(small)], "img00: HR 15x30 is too small: SSIM needs 11x11"),
        ([*x3, *data, "--lr-data", str(mismatch)], "LR is 10x10 but HR img00.png is 36x42"),
        ([*x3, *data, "--scale", "5"], "argument --scale: invalid choice"),
        ([*data], "the following arguments are required: --model"),
    ]


def test_every_bad_input_is_one_error_line_and_exit_2(tmp_path, models, hr_folder, capsys):
    for args, expected in _bad_inputs(tmp_path, models, hr_folder):
        try:
            status = evaluate.main(args)
        except SystemExit as e:  # argparse errors exit from parse_args
            status = e.code
        err = capsys.readouterr().err
        assert status == 2, args
        assert len(err.splitlines()) == 1 and err.startswith("error: "), (args, err)
        assert expected in err, (args, err)
    assert not (tmp_path / "eval").exists()


def test_command_line_error_has_no_traceback(models, hr_folder):
    result = subprocess.run([sys.executable, "-m", "solvers.evaluate", "--model",
                             str(models["junk"]), "--data", str(hr_folder)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # TensorFlow's start-up lines are silenced by `import solvers`: ours is the only line.
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ")
    assert "junk.keras: not a loadable .keras model" in errors[0]
    assert result.stdout == ""
