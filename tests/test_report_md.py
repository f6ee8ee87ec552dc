"""solvers/report/report_md.py: report.md, PNGs, TensorBoard images of a tiny fake run; compare; CLI."""
import csv
import math
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml
from PIL import Image

from conftest import REPO, write_images
from solvers.report import records, report_md
from solvers.networks.base7 import base7, layer_names, quantizers_from_hp

CONVS, ACTS = layer_names()
PARAMS = 42539  # base7 at x3: weights and biases
# The search space's quantizer maps, as run.yaml and baselines.yaml record them.
QUANTIZERS = {kind: yaml.safe_load((REPO / "quantization_config.yaml").read_text())[kind]
              for kind in ("kernel", "bias", "activation")}
BASELINE_PSNR = {2: 27.9, 3: 28.6, 4: 29.0, 5: 29.2, 6: 29.3, 7: 29.35, 8: 29.4, 32: 29.5}


def _values(bits):
    """Hyperparameter values with kernel, bias and activation bits (k, b, a) for every layer."""
    k, b, a = bits
    values = {f"{c}_kernel": f'quantized_bits({k},0,alpha="auto_po2")' for c in CONVS}
    values.update({f"{c}_bias": f"quantized_bits({b},0,alpha=1.0)" for c in CONVS})
    values.update({f"{x}_activation": f"quantized_relu({a},8)" for x in ACTS})
    return values


# (id, status, bits, val_psnr, val_score): trial 02 is chosen (lowest score) and on the front.
TRIALS = [("00", "COMPLETED", (6, 6, 6), 29.31, 4.90), ("01", "COMPLETED", (3, 8, 4), 28.70, 5.10),
          ("02", "COMPLETED", (5, 3, 5), 29.18, 4.70), ("03", "FAILED", (2, 2, 2), None, None),
          ("04", "COMPLETED", (5, 5, 5), 29.10, 4.95)]
CHOSEN = "02"


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _make_run(run_dir, data_dir):
    """A finished run as autoq writes it: trials.csv, run.yaml, summary.yaml and an untrained
    quantized base7 as best_model_retrained.keras."""
    run_dir.mkdir(parents=True)
    hp_names = [f"{c}_{k}" for c in CONVS for k in ("kernel", "bias")] + \
        [f"{a}_activation" for a in ACTS]
    rows = []
    for trial_id, status, bits, psnr, score in TRIALS:
        row = {"trial_id": trial_id, "status": status, **_values(bits)}
        if status == "COMPLETED":
            row.update(best_epoch=2, size_bits=float(PARAMS * bits[0]), val_loss=5.0,
                       val_psnr=psnr, val_score=score)
        rows.append(row)
    values = _values(dict((t[0], t[2]) for t in TRIALS)[CHOSEN])
    model = base7(scale=3, quantizers=quantizers_from_hp(values))
    model.save(run_dir / "best_model_retrained.keras")
    summary = records.summary_record(model, CHOSEN, values, {"psnr": 29.18, "loss": 5.0},
                                    {"psnr": 29.5, "loss": 4.8})
    rows[2]["size_bits"] = float(summary["size_bits"])  # the trial's size is the model's
    _write_csv(run_dir / "trials.csv", ["trial_id", "status", "best_epoch", *records.METRICS,
                                        *hp_names], rows)
    settings = {"run": run_dir.name, "algo": "random", "profile": "quick",
                "settings": {"trials": 5, "epochs": 2, "retrain_epochs": 2, "batch_size": 4,
                             "patch_size": 8, "steps_per_epoch": 2},
                "seed": 1, "scale": 3, "learning_rate": 0.001, "config": "quantization_config.yaml",
                "float_model": None,
                "data": {"data": str(data_dir), "lr_data": None, "div2k_root": None,
                         "train_images": None, "val_images": None},
                "objective": {"delta_p": 8, "delta_n": 8, "rate": 2, "stress": 1, "ref_bits": 8},
                "search_space": {n: ["a", "b"] for n in hp_names}, "quantizers": QUANTIZERS,
                "versions": {"tensorflow": tf.__version__}}
    (run_dir / "run.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    (run_dir / "summary.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    return run_dir


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """{run, baselines}: a run folder (20 images of 60x72: validation is the 10th and 20th) and a
    baselines.csv with uniform 2..8-bit and float32 rows."""
    root = tmp_path_factory.mktemp("report")
    data_dir = write_images(root / "hr", count=20, size=(60, 72))
    run = _make_run(root / "results" / "tiny", data_dir)
    rows = [{"label": "float32" if b == 32 else f"uniform {b}-bit", "bits": b,
             "size_bits": float(PARAMS * b), "val_loss": 5.0, "val_psnr": p, "val_score": 5.0,
             "epochs": 2} for b, p in BASELINE_PSNR.items()]
    baselines = root / "baselines.csv"
    _write_csv(baselines, list(rows[0]), rows)
    return {"run": run, "baselines": baselines, "root": root}


def _copy(fake, name):
    return shutil.copytree(fake["run"], fake["root"] / "results" / name)


def test_report_with_baselines(fake, tmp_path):
    run, tb = _copy(fake, "with_baselines"), tmp_path / "tb"
    path = report_md.make_report(run, fake["baselines"], tb)
    for name in report_md.PNGS:
        png = run / f"{name}.png"
        assert png.stat().st_size > 0
        with Image.open(png) as image:
            assert image.format == "PNG" and min(image.size) > 100
    text = open(path).read()
    for trial_id, *_ in TRIALS:
        assert f"| {trial_id} |" in text
    for name in report_md.PNGS:
        assert f"({name}.png)" in text
    assert "| conv_6 |" in text and "random" in text and "quick" in text

    # The verdict against the CSVs, recomputed here: the uniform row nearest in size by ratio.
    with open(run / "trials.csv", newline="") as f:
        chosen = next(r for r in csv.DictReader(f) if r["trial_id"] == CHOSEN)
    with open(fake["baselines"], newline="") as f:
        uniform = [r for r in csv.DictReader(f) if r["label"] != "float32"]
    size, psnr = float(chosen["size_bits"]), float(chosen["val_psnr"])
    near = min(uniform, key=lambda r: abs(math.log(float(r["size_bits"]) / size)))
    verdict = text.split("## Verdict")[1].split("##")[0]
    assert near["label"] in verdict
    assert f"{psnr - float(near['val_psnr']):+.2f} dB" in verdict
    assert f"{size / float(near['size_bits']):.2f}×" in verdict
    assert f"{psnr - BASELINE_PSNR[8]:+.2f} dB" in verdict  # against uniform 8-bit
    assert chosen["pareto"] == "true" and "is on this run's Pareto front" in verdict

    events = list((tb / "report").glob("events.out.tfevents.*"))
    tags = {v.tag for e in events for ev in tf.compat.v1.train.summary_iterator(str(e))
            for v in ev.summary.value}
    assert set(report_md.PNGS) <= tags


def test_report_without_baselines_or_data(fake):
    run = _copy(fake, "no_baselines")
    settings = yaml.safe_load((run / "run.yaml").read_text())
    settings["data"]["data"] = str(fake["root"] / "missing")  # DataError: samples skipped
    (run / "run.yaml").write_text(yaml.safe_dump(settings))
    text = open(report_md.make_report(run, fake["root"] / "nowhere.csv")).read()
    assert "make baselines" in text
    assert "SR samples skipped" in text and "missing" in text
    assert not (run / "sr_samples.png").exists() and "(sr_samples.png)" not in text
    assert (run / "tradeoff.png").stat().st_size > 0


def test_compare(fake, tmp_path):
    a, b = _copy(fake, "run_a"), _copy(fake, "run_b")
    with open(b / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1]["val_psnr"] = "29.9"  # trial 01 of run_b: the smallest and best, a one-point front
    _write_csv(b / "trials.csv", list(rows[0]), rows)
    out = tmp_path / "compare"
    report_md.compare([a, b], out)
    with Image.open(out / "compare.png") as image:
        assert image.format == "PNG" and min(image.size) > 100
    text = (out / "compare.md").read_text()
    assert "| run_a |" in text and "| run_b |" in text
    line_b = next(line for line in text.splitlines() if line.startswith("| run_b |"))
    assert f"{3 * PARAMS / 8192:.2f}@29.90" in line_b and "| 1 |" in line_b


def test_cli_errors(fake, tmp_path, capsys):
    missing = tmp_path / "nope"
    result = subprocess.run([sys.executable, "-m", "solvers.report.report_md", "--run-dir", str(missing)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(missing) in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_md.main(["--run-dir", str(empty)]) == 2
    assert report_md.main(["--compare", str(fake["run"]), str(missing),
                            "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "trials.csv" in err[0] and str(missing) in err[1]


def _baseline_set(results, name, psnr_shift, recorded=True, **changes):
    """results/baselines/<name>/ with baselines.csv (BASELINE_PSNR + psnr_shift) and, when
    `recorded`, baselines.yaml: the settings of the fake run in results/tiny with `changes` applied
    (seed=2, data={"data": ...}, budget={"epochs": ...})."""
    folder = results / "baselines" / name
    folder.mkdir(parents=True)
    rows = [{"label": "float32" if b == 32 else f"uniform {b}-bit", "bits": b,
             "size_bits": float(PARAMS * b), "val_loss": 5.0, "val_psnr": round(p + psnr_shift, 3),
             "val_score": 5.0, "epochs": 2} for b, p in BASELINE_PSNR.items()]
    _write_csv(folder / "baselines.csv", list(rows[0]), rows)
    if recorded:
        run = yaml.safe_load((results / "tiny" / "run.yaml").read_text())
        budget = {k: run["settings"][k] for k in ("epochs", "steps_per_epoch", "batch_size",
                                                   "patch_size")}
        settings = {"name": name, "profile": "quick", "data": run["data"], "scale": run["scale"],
                    "seed": run["seed"], "quantizers": run["quantizers"], "budget": budget,
                    "learning_rate": run["learning_rate"]}
        for key, value in changes.items():
            settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
        (folder / "baselines.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return folder / "baselines.csv"


def _verdict(path):
    return open(path).read().split("## Verdict")[1].split("##")[0]


def _results_with_run(fake, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(fake["run"], results / "tiny")
    return results


# The matching set's uniform 8-bit PSNR (29.40) and the other set's (+0.37: 29.77); no other number
# of the verdict ends in .77.
OTHER_SHIFT = 0.37
KIB8 = f"{8 * PARAMS / 8192:.2f}"


@pytest.mark.parametrize("other", [{"seed": 2}, {"data": {"data": "elsewhere"}}])
def test_report_picks_the_baseline_set_that_matches_the_run(fake, tmp_path, other):
    results = _results_with_run(fake, tmp_path)
    # The profile's folder (the one reports used to read) holds a set trained otherwise.
    _baseline_set(results, "quick", OTHER_SHIFT, **other)
    matching = _baseline_set(results, "quick_tiny", 0.0)
    verdict = _verdict(report_md.make_report(results / "tiny"))
    assert str(matching) in verdict and "trained with this run's data" in verdict
    assert f"({KIB8} KiB, {BASELINE_PSNR[8]:.2f} dB)" in verdict
    assert f"{BASELINE_PSNR[8] + OTHER_SHIFT:.2f}" not in verdict
    assert "quick/baselines.csv" not in verdict



def test_report_compares_with_no_baselines_when_none_matches(fake, tmp_path):
    results = _results_with_run(fake, tmp_path)
    _baseline_set(results, "quick", OTHER_SHIFT, recorded=False)  # from before baselines.yaml
    _baseline_set(results, "quick_seed2", OTHER_SHIFT, seed=2)
    _baseline_set(results, "quick_e4", OTHER_SHIFT, seed=2, budget={"epochs": 4})
    verdict = _verdict(report_md.make_report(results / "tiny"))
    assert "3 sets of uniform baselines were found" in verdict
    assert "1 without baselines.yaml" in verdict
    assert "none matches this run's data, scale, seed, search space and budget" in verdict
    assert "the closest, quick_seed2, has seed = 2, this run 1" in verdict
    assert "no baseline is compared or plotted" in verdict
    data = yaml.safe_load((results / "tiny" / "run.yaml").read_text())["data"]["data"]
    assert f"`make baselines PROFILE=quick DATA={data} EPOCHS=2 STEPS=2 BATCH=4 PATCH=8`" \
        in verdict
    assert "uniform 8-bit (" not in verdict and "nearest in size" not in verdict
    assert f"{BASELINE_PSNR[8] + OTHER_SHIFT:.2f}" not in verdict


def test_report_with_given_baselines_names_how_they_differ(fake, tmp_path):
    results = _results_with_run(fake, tmp_path)
    other = _baseline_set(results, "quick_seed2", OTHER_SHIFT, seed=2)
    verdict = _verdict(report_md.make_report(results / "tiny", other))
    assert "were not trained like this run (seed = 2 there, 1 in this run)" in verdict
    assert f"{BASELINE_PSNR[8] + OTHER_SHIFT:.2f} dB" in verdict  # compared all the same
    unknown = _baseline_set(results, "old", 0.0, recorded=False)
    verdict = _verdict(report_md.make_report(results / "tiny", unknown))
    assert "no readable baselines.yaml" in verdict and f"{BASELINE_PSNR[8]:.2f} dB" in verdict
