"""make sensitivity (solvers/search/sensitivity.py): a tiny run through the command line and its
recorded provenance, each drop against an evaluation made here, one quantizer per probe, its
bad-input errors, and the report's markdown table."""
import hashlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import yaml

from conftest import REPO, write_images
from solvers import train
from solvers.config import load_search_space
from solvers.data import pipeline, sources
from solvers.networks.base7 import base7
from solvers.networks.fast_relu import QReLU
from solvers.search import sensitivity


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """An untrained float32 base7 saved as make float saves one (only its weights are read), with
    biases drawn too (Keras starts them at 0, which every bias quantizer keeps exactly)."""
    keras.utils.set_random_seed(0)  # the same model whatever ran before
    model = base7(scale=3)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(-0.9, 0.9, bias.shape).astype("float32")])
    path = tmp_path_factory.mktemp("float") / "float_model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=4)  # 20x24 LR at x3


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "solvers.search.sensitivity", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def test_tiny_run_writes_one_row_per_probe_and_its_provenance(tmp_path, float_model, images):
    out = tmp_path / "sens"
    result = _cli("--float-model", float_model, "--data", images, "--layers", "conv_0", "act_0",
                  "--widths", "2", "8", "--finetune-steps", "1", "--batch-size", "2",
                  "--patch-size", "8", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = sensitivity.read_table(out / "sensitivity.csv")
    probed = (("conv_0", "kernel"), ("conv_0", "bias"), ("act_0", "activation"))
    assert sorted(rows) == sorted((layer, kind, bits) for layer, kind in probed for bits in (2, 8))
    settings = yaml.safe_load((out / "sensitivity.yaml").read_text())
    assert settings["finetune_steps"] == 1 and settings["scale"] == 3
    # What a search checks before using the table (sensitivity_provenance): hashes of the very
    # files, the data with its split version, and the config's quantizers as measured.
    assert settings["csv_sha256"] == _sha256(out / "sensitivity.csv")
    assert settings["float_model_sha256"] == _sha256(float_model)
    assert settings["data"]["data"] == str(images)
    assert settings["data"]["split"] == sources.SPLIT_VERSION
    space = load_search_space(str(REPO / "quantization_config.yaml"))
    assert settings["quantizers"]["kernel"] == space.kernel
    assert settings["limit"] == {"Conv2D": {"bias": ["quantized_bits(8,0,alpha=1.0)"]}}
    assert (out / "sensitivity.png").stat().st_size > 0


def _args(float_model, images, tmp_path, *extra):
    return sensitivity.parse_args(["--float-model", str(float_model), "--data", str(images),
                                   "--batch-size", "2", "--patch-size", "8",
                                   "--out", str(tmp_path / "sens"), *extra])


def test_each_drop_is_the_float_model_minus_that_probe_evaluated_here(tmp_path, float_model,
                                                                       images):
    """Without a fine-tune, a probe's val_psnr is its quantized model's PSNR and its drop is the
    float model's PSNR minus that: both evaluated here, from the saved file, with base7 built and
    the weights copied by this test."""
    args = _args(float_model, images, tmp_path, "--layers", "conv_0", "act_0", "--widths", "2",
                 "8", "--finetune-steps", "0")
    rows, settings = sensitivity.measure(args)
    _, val_ds, _ = pipeline.datasets(sources.data_options(args), 3, 8, 2, 1, with_test=False)
    saved = keras.models.load_model(float_model, compile=False)

    def psnr(quantizers):
        model = base7(scale=3, quantizers=quantizers)
        for layer in model.layers:
            if layer.get_weights():
                layer.set_weights(saved.get_layer(layer.name).get_weights())
        model = train.compile_model(model, border=3)
        return float(model.evaluate(val_ds, return_dict=True, verbose=0)["psnr"])
    reference = psnr({})
    assert settings["float_val_psnr"] == pytest.approx(reference, abs=2e-4)
    drops = {}
    for row in rows:
        others = {"kernel": None, "bias": None} if row["layer"].startswith("conv_") else {}
        probe = psnr({row["layer"]: {**others, row["kind"]: row["quantizer"]}})
        assert row["val_psnr"] == pytest.approx(probe, abs=2e-4), row
        assert row["psnr_drop"] == pytest.approx(reference - probe, abs=3e-4), row
        drops[row["layer"], row["kind"], row["bits"]] = row["psnr_drop"]
    # 8 bits is nearly the float model, 2 bits is not (a probe that quantized nothing would lose
    # nothing at either width). Biases move this model's PSNR too little to tell.
    for key in (("conv_0", "kernel"), ("act_0", "activation")):
        assert abs(drops[(*key, 2)]) > 0.005 and abs(drops[(*key, 8)]) < abs(drops[(*key, 2)]), key
    assert drops[("conv_0", "kernel", 2)] > drops[("conv_0", "kernel", 8)]


def _quantized(model):
    """{(layer, kind): quantizer string} of every quantizer of a built base7."""
    found = {}
    for layer in model.layers:
        for kind in ("kernel", "bias"):
            if getattr(layer, f"{kind}_quantizer", None) is not None:
                found[layer.name, kind] = str(getattr(layer, f"{kind}_quantizer"))
        if isinstance(layer, QReLU):
            found[layer.name, "activation"] = str(layer.get_config()["activation"])
    return found


def test_each_probe_quantizes_exactly_its_one_quantizer(tmp_path, float_model, images,
                                                        monkeypatch):
    """The models measure() builds: the two references are float32 throughout; each probe has
    that layer's that kind quantized with that row's quantizer, and every other layer and kind
    float32 (scores skipped: only the models are looked at)."""
    built = []
    make = sensitivity._model

    def spy(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]
    monkeypatch.setattr(sensitivity, "_model", spy)
    monkeypatch.setattr(sensitivity, "_score", lambda *args: 30.0)
    layers = ["conv_0", "act_0", "conv_3", "act_5", "conv_6"]  # the edges and a middle one
    rows, _ = sensitivity.measure(_args(float_model, images, tmp_path, "--widths", "2",
                                        "--layers", *layers))
    assert len(rows) == 8 and len(built) == 10  # 3 kernels, 3 biases, 2 activations; 2 references
    assert _quantized(built[0]) == _quantized(built[1]) == {}
    for row, model in zip(rows, built[2:]):
        assert _quantized(model) == {(row["layer"], row["kind"]): row["quantizer"]}, row
        assert str(row["bits"]) in row["quantizer"]


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


def test_report_section_shows_the_table_the_run_used(tmp_path):
    from solvers.search import sensitivity_provenance as provenance
    folder = tmp_path / "sensitivity"
    folder.mkdir()
    table = folder / "sensitivity.csv"
    table.write_text(
        "layer,kind,bits,quantizer,val_psnr,psnr_drop,seconds\nconv_0,bias,4,q,30,0.25,1\n")
    (folder / "sensitivity.yaml").write_text("scale: 3\nfinetune_steps: 10\n")
    layers = [{"name": "conv_0", "kernel_bits": 4, "bias_bits": 4, "activation_bits": 2}]
    used = {"sensitivity": {"table": str(table), "csv_sha256": provenance.sha256_of(str(table))}}
    section = "".join(sensitivity.report_section(used, layers))
    assert "| conv_0 | bias | 4 | 0.25 | **0.25** |" in section and "10 fine-tune steps" in section
    # A run that used no table shows none, whatever lies in results/sensitivity/.
    assert sensitivity.report_section({"scale": 3}, layers) == []
    # A table edited since the run is named, its numbers not shown.
    table.write_text(table.read_text().replace("0.25", "0.35"))
    section = "".join(sensitivity.report_section(used, layers))
    assert "changed since this run used it" in section and "0.35" not in section