"""make export (solvers/export): exact fixed-point types, the rewritten graph, a real hls4ml C
simulation of a tiny trained quantized base7 that must match Keras bit for bit, a wrong type
that the check must catch, and one error line for each bad input."""
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import write_images

from solvers import train
from solvers.data import sources
from solvers.export import cli, graph, precision, verify
from solvers.networks import base7 as b7

try:
    import hls4ml  # noqa: F401  (.ci/run installs it: requirements-export.txt)
    HAVE_HLS4ML = True
except ImportError:
    HAVE_HLS4ML = False


def test_exact_types_hold_every_value_and_bound_every_sum():
    rng = np.random.default_rng(0)
    kernel = rng.integers(-32, 32, (3, 3, 4, 5)) * 2.0 ** rng.integers(-9, -4, 5)  # po2 per channel
    bias = rng.integers(-128, 128, 5) / 128.0
    t = precision.holding(kernel)
    assert t.low <= kernel.min() and kernel.max() <= t.high
    assert np.array_equal(np.round(kernel / t.step) * t.step, kernel)
    assert precision.fraction_bits(kernel) == t.fraction and precision.fraction_bits([0.75]) == 2
    data = precision.relu_type(4, 8)  # 0, 16, ..., 240
    assert (data.step, data.high, data.hls()) == (16.0, 240.0, "ufixed<4,8,RND_CONV,SAT>")
    acc, low, high = precision.accumulator(kernel, bias, data)
    # Partial sums of random inputs on the grid stay inside [low, high], and the bounds are met
    # by the extreme inputs, so the type is not wider than the sums need.
    x = rng.integers(0, 16, (200, 3, 3, 4)) * 16.0
    terms = x[..., None] * kernel
    partial = bias + np.cumsum(terms.reshape(200, -1, 5), axis=1)
    assert low <= partial.min() and partial.max() <= high <= acc.high and acc.low <= low
    assert high == max(np.clip(kernel, 0, None).sum(axis=(0, 1, 2)) * 240 + np.maximum(bias, 0))
    assert acc.fraction == max(precision.fraction_bits(kernel) - 4, precision.fraction_bits(bias))
    with pytest.raises(precision.NotExact):
        precision.fraction_bits([2.0 ** -70])


def test_auto_po2_kernels_factor_into_b_bit_mantissas_and_channel_powers_of_2():
    rng = np.random.default_rng(4)
    kernel = rng.integers(-32, 32, (3, 3, 2, 6)) * 2.0 ** rng.integers(-9, -3, 6)  # 6-bit, po2
    mantissas, scales = precision.channel_factors(kernel)
    assert np.array_equal(mantissas * scales, kernel)
    assert precision.holding(mantissas).hls() == "fixed<6,1>"
    assert np.array_equal(np.log2(scales), np.round(np.log2(scales)))
    assert precision.holding(kernel).width > 6  # what one type per layer would need


def test_post_process_is_depth_to_space_and_clip():
    residual = np.random.default_rng(1).uniform(-50, 300, (1, 4, 5, 27))
    expected = tf.clip_by_value(tf.nn.depth_to_space(residual, 3), 0, 255).numpy()
    assert np.array_equal(graph.post_process(residual, 3), expected)


def tiny_quantized(steps=30):
    """A trained quantized base7, narrow (4 filters) with mixed widths and both 4- and 8-bit
    ReLUs, so the types differ per layer."""
    convs, acts = b7.layer_names()
    quantizers = {c: {"kernel": f'quantized_bits({3 + i % 4},0,alpha="auto_po2")',
                      "bias": "quantized_bits(8,0,alpha=1.0)"} for i, c in enumerate(convs)}
    quantizers.update({a: {"activation": f"quantized_relu({4 if i % 2 else 8},8)"}
                       for i, a in enumerate(acts)})
    model = b7.base7(quantizers=quantizers, filters={c: 4 for c in convs[:-2]})
    train.compile_model(model, learning_rate=3e-3)
    rng = np.random.default_rng(2)
    lr = rng.integers(0, 256, (64, 8, 8, 3)).astype(np.float32)
    hr = np.repeat(np.repeat(lr, 3, axis=1), 3, axis=2) + rng.normal(0, 8, (64, 24, 24, 3))
    model.fit(lr, hr.astype(np.float32), batch_size=8, epochs=steps // 8, verbose=0)
    return model


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """results/<run> with a tiny trained model and run.yaml on a 3-image folder (one validation
    photo of 20x24 LR pixels)."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("export")
    data = write_images(root / "photos", count=3, size=(60, 72))
    run_dir = root / "run"
    run_dir.mkdir()
    tiny_quantized().save(run_dir / "best_model_retrained.keras")
    (run_dir / "run.yaml").write_text(yaml.safe_dump({"scale": 3, "data": {"data": str(data)}}))
    return run_dir


@pytest.mark.skipif(not HAVE_HLS4ML, reason="hls4ml not installed (.ci/run installs it)")
def test_tiny_trained_model_is_bit_exact_in_c_simulation(tiny_run, capsys):
    assert cli.main(["--run-dir", str(tiny_run), "--size", "8x8"]) == 0
    out_dir = tiny_run / "hls4ml"
    doc = json.loads((out_dir / "export.json").read_text())
    v = doc["verification"]
    assert v["bit_exact"] and v["identical_fraction"] == 1.0 and v["max_abs_diff_raw"] == 0.0
    assert v["photos"] == 1 and v["pixels"] == 60 * 72
    assert v["builds"] == 1 and v["seconds_per_build"] > 0 and v["ms_per_lr_pixel"] > 0
    assert os.path.isfile(out_dir / "project" / "firmware" / "myproject.cpp")
    # The project itself, at its 8x8 frame, on the photo's centre crop; the crop is its testbench.
    assert v["project"]["crops"] == 1 and v["project"]["identical"] == v["project"]["pixels"] == 576
    tb = (out_dir / "project" / "tb_data" / "tb_input_features.dat").read_text().split()
    assert len(tb) == 8 * 8 * 3
    assert not os.path.exists(out_dir / "csim")  # the per-size builds are removed
    types = {layer["layer"]: layer["types"] for layer in doc["layers"]}
    # Multipliers as wide as the qkeras kernels (3 + i % 4 bits), not wider.
    widths = [precision.FixedType(*map(int, types[f"conv_{i}"]["weight"][6:-1].split(","))).width
              for i in range(7)]
    assert all(w <= 3 + i % 4 for i, w in enumerate(widths)) and widths[3] == 6
    assert types["act_0"]["result"] == "ufixed<8,8,RND_CONV,SAT>"
    assert types["act_1"]["result"] == "ufixed<4,8,RND_CONV,SAT>"
    md = (out_dir / "export.md").read_text()
    assert "**Bit-exact** on 1 validation photos" in md
    total = sum(r["multipliers"] for r in doc["hls4ml_design"])
    assert total > 0 and "| total | | | | " in md and md.count(f" | {total} |") >= 1
    assert "bit-exact" in capsys.readouterr().out


@pytest.mark.skipif(not HAVE_HLS4ML, reason="hls4ml not installed (.ci/run installs it)")
def test_a_wrong_type_is_caught_and_its_layer_named(tiny_run, tmp_path):
    model = keras.models.load_model(tiny_run / "best_model_retrained.keras", compile=False)
    parts = graph.describe(model)
    types, _ = graph.layer_types(parts)
    # Truncating instead of rounding half to even: what hls4ml's default would do.
    types["act_1"] = {"result": precision.FixedType(4, 8, signed=False, saturation="SAT")}
    pair = sources.Pair("noise", np.random.default_rng(3).integers(0, 256, (10, 12, 3),
                                                                   dtype=np.uint8), None)
    [result] = verify.run(model, parts, types, [pair], str(tmp_path / "csim"), "Vitis",
                          "io_stream", 1, io.StringIO(), progress=lambda _: None)
    assert result["identical_fraction"] < 1.0
    assert result["first_difference"]["layer"] == "act_1"
    assert not verify.summary([result])["bit_exact"]


@pytest.mark.skipif(not HAVE_HLS4ML, reason="hls4ml not installed (.ci/run installs it)")
def test_io_parallel_writes_the_project_and_says_it_was_not_simulated(tiny_run, tmp_path, capsys):
    out = tmp_path / "parallel"
    argv = ["--run-dir", str(tiny_run), "--size", "8x8", "--io", "io_parallel", "--out", str(out)]
    assert cli.main(argv) == 0
    v = json.loads((out / "export.json").read_text())["verification"]
    assert "18 GB" in v["skipped"] and not v["bit_exact"] and v["photos"] == 0
    assert "io_parallel" in (out / "project" / "hls4ml_config.yml").read_text()
    assert "**Not run** for `io_parallel`" in (out / "export.md").read_text()
    assert "C simulation skipped (io_parallel)" in capsys.readouterr().out


def error_line(capsys, argv):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_bad_inputs_are_one_error_line(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no such run folder" in error_line(capsys, ["--run-dir", str(tmp_path / "nope")])
    assert "no best_model_retrained.keras" in error_line(capsys, ["--run-dir", str(empty)])
    float_model = tmp_path / "float.keras"
    b7.base7().save(float_model)
    if HAVE_HLS4ML:
        line = error_line(capsys, ["--run-dir", str(empty), "--model", str(float_model)])
        assert "conv_0 is not quantized" in line
        assert "BACKEND: 'Quartus'" in error_line(
            capsys, ["--run-dir", str(empty), "--model", str(float_model), "--backend", "Quartus"])
        assert "IO: 'io_serial'" in error_line(
            capsys, ["--run-dir", str(empty), "--model", str(float_model), "--io", "io_serial"])
        monkeypatch.setenv("PATH", str(empty))
        assert "g++: not found" in error_line(
            capsys, ["--run-dir", str(empty), "--model", str(float_model)])
    else:
        assert "hls4ml: not installed" in error_line(
            capsys, ["--run-dir", str(empty), "--model", str(float_model)])
    assert "SIZE" in str(pytest.raises(graph.ExportError, cli.parse_size, "64").value)
    assert "REUSE" in error_line(capsys, ["--run-dir", str(empty), "--reuse", "0"])
