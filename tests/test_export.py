"""make export (solvers/export): exact fixed-point types, the rewritten graph, a real hls4ml C
simulation of a tiny trained quantized base7 that must match Keras bit for bit, a wrong type
that makes the command fail with one error line naming the photo and pixel, a raw-only
difference and zero compared crops that the check must not pass, and one error line for each
bad input."""
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import write_images

from solvers import train
from solvers.export import cli, graph, precision, verify
from solvers.networks import base7 as b7

try:
    import hls4ml  # noqa: F401  (`make test` installs it: requirements-export.txt)
    HAVE_HLS4ML = True
except ImportError:
    HAVE_HLS4ML = False
NEEDS_HLS4ML = pytest.mark.skipif(not HAVE_HLS4ML, reason="hls4ml not installed (`make test` "
                                  "installs it)")


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


@NEEDS_HLS4ML
def test_tiny_trained_model_is_bit_exact_in_c_simulation(tiny_run, capsys):
    assert cli.main(["--run-dir", str(tiny_run), "--size", "8x8"]) == 0
    out_dir = tiny_run / "hls4ml"
    doc = json.loads((out_dir / "export.json").read_text())
    v = doc["verification"]
    assert v["bit_exact"] and v["identical_fraction"] == 1.0 and v["max_abs_diff_raw"] == 0.0
    assert v["failure"] is None and v["photos_detail"][0]["first_mismatch"] is None
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
    assert "**Bit-exact** on 1 validation photos" in md and "; verified." in md
    total = sum(r["multipliers"] for r in doc["hls4ml_design"])
    assert total > 0 and "| total | | | | " in md and md.count(f" | {total} |") >= 1
    # Weight memory like for like: the model's side is size_bits' two terms; the design's kernels
    # are the convolutions' weight arrays only, the anchor's and the _scale layers' apart.
    memory, rows = doc["weight_memory"], {r["layer"]: r for r in doc["hls4ml_design"]}
    assert memory["model"]["kernels"] + memory["model"]["biases"] == doc["costs"]["size_bits"]
    assert memory["design"]["kernels"] == sum(rows[f"conv_{i}"]["weights"] * widths[i]
                                              for i in range(7))
    assert memory["design"]["anchor"] == rows["anchor"]["weights"] == 3 * 27
    assert memory["design"]["biases"] == sum(
        rows[f"conv_{i}_scale"]["arrays"]["bias"]["count"] * int(re.findall(
            r"\d+", types[f"conv_{i}_scale"]["bias"])[0]) for i in range(7))
    assert f"| kernels and biases | {memory['design']['kernels'] + memory['design']['biases']} |" \
        in md
    assert "bit-exact, raw and in 8 bits" in capsys.readouterr().out


@NEEDS_HLS4ML
def test_a_wrong_type_fails_the_export_with_one_error_line(tiny_run, tmp_path, capsys,
                                                            monkeypatch):
    exact = graph.layer_types

    def truncating(parts):  # what hls4ml's default would do: truncate, not round half to even
        types, bounds = exact(parts)
        types["act_1"] = {"result": precision.FixedType(4, 8, signed=False, saturation="SAT")}
        return types, bounds
    monkeypatch.setattr(graph, "layer_types", truncating)
    out = tmp_path / "wrong"
    assert cli.main(["--run-dir", str(tiny_run), "--size", "8x8", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bit-exact" not in captured.out
    # The files are written and say the verification failed, with the same first mismatch.
    doc = json.loads((out / "export.json").read_text())
    v, [photo] = doc["verification"], doc["verification"]["photos_detail"]
    m = photo["first_mismatch"]
    assert not v["bit_exact"] and errors[0] == f"error: {v['failure']}; {out / 'export.md'}"
    assert photo["first_difference"]["layer"] == "act_1" and m["keras"] != m["design"]
    assert (f"photo {photo['name']} (20x24 LR), output pixel (row {m['row']}, col {m['col']}, "
            f"channel {m['channel']}): Keras {m['keras']:.9g}, C simulation {m['design']:.9g}"
            in errors[0])
    assert "**Verification failed**: C simulation does not match Keras at photo" in \
        (out / "export.md").read_text()


def sub_lsb_residuals():
    """Two identical residuals (design, Keras) of a 2x2 LR image at x3, one value clipped in the
    output; each test changes one value of the design's by less than the 8-bit rounding hides."""
    keras_residual = np.full((1, 2, 2, 27), 100.0)
    keras_residual[0, 1, 0, 5] = 300.0  # clipped to 255 in the output
    return keras_residual.copy(), keras_residual


def test_a_raw_only_difference_is_not_bit_exact():
    for at, value in (((0, 0, 1, 4), 100.25), ((0, 1, 0, 5), 301.0)):  # sub-LSB; in a clipped pixel
        design, keras_residual = sub_lsb_residuals()
        design[at] = value
        keras_output = graph.post_process(keras_residual, 3)
        result = verify.compare(design, keras_residual, keras_output, 3)
        assert result["identical"] == result["pixels"] == 36 and result["max_abs_diff"] == 0
        assert result["max_abs_diff_raw"] > 0 and not verify.bit_exact(result)
        # Channel k of LR pixel (y, x) is SR pixel (3y + k // 9, 3x + k // 3 % 3), colour k % 3.
        y, x, k = at[1:]
        m = result["first_mismatch"]
        assert (m["row"], m["col"], m["channel"]) == (3 * y + k // 9, 3 * x + k // 3 % 3, k % 3)
        assert (m["keras"], m["design"]) == (keras_residual[at], value)
        detail = {"name": "p", "h": 2, "w": 2, "build_seconds": 1.0, "simulate_seconds": 1.0,
                  "first_difference": None, **result}
        same = verify.compare(keras_residual, keras_residual, keras_output, 3)
        assert verify.bit_exact(same) and same["first_mismatch"] is None
        s = verify.summary([detail], {"crops": 1, **same}, (2, 2))
        assert not s["bit_exact"]
        assert f"photo p (2x2 LR), output pixel (row {m['row']}, col {m['col']}" in s["failure"]


def test_zero_compared_photos_or_crops_is_not_verified():
    keras_residual = sub_lsb_residuals()[1]
    same = verify.compare(keras_residual, keras_residual, graph.post_process(keras_residual, 3), 3)
    detail = {"name": "p", "h": 2, "w": 2, "build_seconds": 1.0, "simulate_seconds": 1.0,
              "first_difference": None, **same}
    assert verify.summary([detail], {"crops": 1, **same}, (2, 2))["bit_exact"]
    crops0 = verify.summary([detail], {"crops": 0}, (8, 8))
    assert not crops0["bit_exact"] and "no 8x8 crop" in crops0["failure"]
    photos0 = verify.summary([], {"crops": 1, **same}, (2, 2))
    assert not photos0["bit_exact"] and "no validation photo" in photos0["failure"]


@NEEDS_HLS4ML
def test_a_size_no_photo_reaches_is_an_error_before_anything_is_written(tiny_run, tmp_path,
                                                                         capsys):
    out = tmp_path / "large"
    line = error_line(capsys, ["--run-dir", str(tiny_run), "--size", "64x64", "--out", str(out)])
    assert "SIZE: no validation photo is 64x64 LR or larger" in line and "20x24" in line
    assert not out.exists()


@NEEDS_HLS4ML
def test_io_parallel_writes_the_project_and_says_it_was_not_simulated(tiny_run, tmp_path, capsys):
    out = tmp_path / "parallel"
    argv = ["--run-dir", str(tiny_run), "--size", "8x8", "--io", "io_parallel", "--out", str(out)]
    assert cli.main(argv) == 0
    v = json.loads((out / "export.json").read_text())["verification"]
    # What was not run carries no figure: nothing here measured one.
    assert "not run" in v["skipped"] and not re.search(r"\d", v["skipped"])
    assert not v["bit_exact"] and v["photos"] == 0 and v["failure"] is None
    assert "io_parallel" in (out / "project" / "hls4ml_config.yml").read_text()
    md = (out / "export.md").read_text()
    assert "**Not run** for `io_parallel`" in md and "C simulation not run." in md
    assert "C simulation not run (io_parallel)" in capsys.readouterr().out


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
