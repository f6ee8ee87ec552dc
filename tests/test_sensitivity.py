"""make sensitivity (solvers/search/sensitivity.py): a tiny train-free run through the command line,
its bad-input errors, and the report's markdown table."""
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, write_images
from solvers.networks.base7 import base7
from solvers.search import sensitivity


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """An untrained float32 base7 saved as make float saves one (only its weights are read)."""
    path = tmp_path_factory.mktemp("float") / "float_model.keras"
    base7(scale=3).save(path)
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "solvers.search.sensitivity", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_tiny_run_writes_one_row_per_probe(tmp_path, float_model):
    data = write_images(tmp_path / "hr", count=4)  # 60x72 HR: 20x24 LR at x3
    out = tmp_path / "sens"
    result = _cli("--float-model", float_model, "--data", data, "--layers", "conv_0", "act_0",
                  "--widths", "2", "8", "--finetune-steps", "1", "--batch-size", "2",
                  "--patch-size", "8", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = sensitivity.read_table(out / "sensitivity.csv")
    probed = (("conv_0", "kernel"), ("conv_0", "bias"), ("act_0", "activation"))
    assert sorted(rows) == sorted((layer, kind, bits) for layer, kind in probed for bits in (2, 8))
    settings = yaml.safe_load((out / "sensitivity.yaml").read_text())
    assert settings["finetune_steps"] == 1 and settings["scale"] == 3
    import csv
    with open(out / "sensitivity.csv", newline="") as f:
        for row in csv.DictReader(f):  # every drop is measured against the float reference
            assert float(row["psnr_drop"]) == pytest.approx(
                settings["float_val_psnr"] - float(row["val_psnr"]), abs=2e-4)
    assert (out / "sensitivity.png").stat().st_size > 0


@pytest.mark.parametrize("option, value, message", [
    ("--layers", "conv_9", "--layers: 'conv_9' is not a base7 layer"),
    ("--widths", "13", "--widths: 13 is not a width of the config"),
])
def test_bad_input_is_one_error_line(tmp_path, float_model, capsys, option, value, message):
    status = sensitivity.main(["--float-model", str(float_model), option, value,
                               "--out", str(tmp_path / "sens")])
    errors = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}")
    assert not (tmp_path / "sens").exists()


def test_non_base7_model_is_one_error_line(tmp_path, capsys):
    import keras
    path = tmp_path / "other.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(path)
    assert sensitivity.main(["--float-model", str(path), "--out", str(tmp_path / "s")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "not a float32 base7" in errors[0]


def test_sensitivity_md_marks_the_chosen_width():
    table = {("conv_0", "kernel", 2): 1.5, ("conv_0", "kernel", 8): 0.01,
             ("act_0", "activation", 2): 0.7, ("act_0", "activation", 8): -0.02}
    lines = sensitivity.sensitivity_md(table, {("conv_0", "kernel"): 2}).splitlines()
    assert lines[0] == "| layer | kind | chosen bits | drop at chosen (dB) | 2 bits | 8 bits |"
    assert lines[2] == "| conv_0 | kernel | 2 | 1.50 | **1.50** | 0.01 |"
    assert lines[3] == "| act_0 | activation | – | – | 0.70 | -0.02 |"
    between = sensitivity.sensitivity_md(table, {("act_0", "activation"): 4}).splitlines()[3]
    assert between == "| act_0 | activation | 4 | ≤0.70 | 0.70 | -0.02 |"


def test_report_section_needs_the_runs_scale(tmp_path):
    folder = tmp_path / "sensitivity"
    folder.mkdir()
    (folder / "sensitivity.csv").write_text(
        "layer,kind,bits,quantizer,val_psnr,psnr_drop,seconds\nconv_0,bias,4,q,30,0.25,1\n")
    (folder / "sensitivity.yaml").write_text("scale: 3\nfinetune_steps: 10\n")
    layers = [{"name": "conv_0", "kernel_bits": 4, "bias_bits": 4, "activation_bits": 2}]
    section = "".join(sensitivity.report_section(tmp_path / "run", 3, layers))
    assert "| conv_0 | bias | 4 | 0.25 | **0.25** |" in section
    assert sensitivity.report_section(tmp_path / "run", 4, layers) == []
