"""solvers/search/baselines.py and `autoq.py --baselines`: baselines.yaml (the settings that define
a set), the set's default folder name, the match with a search's run.yaml, and the refusal to put
two different sets in one folder."""
import csv

import pytest
import yaml

import autoq
from conftest import REPO, run_autoq, write_images
from solvers import run
from solvers.config import PROFILES, load_search_space
from solvers.search.space import search_choices
from solvers.networks.base7 import layer_names
from solvers.search import baselines

# Real training kept tiny: 1 epoch of 2 steps, LR patch 8, batch 4, widths 4 and 8 only.
TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8", "--batch-size", "4"]


def _tiny_config(folder):
    """quantization_config.yaml keeping only widths 4 and 8 (two uniform baselines)."""
    text = (REPO / "quantization_config.yaml").read_text()
    for bits in (2, 3, 5, 6, 7):
        text = "\n".join(line for line in text.splitlines() if f"({bits}," not in line)
    path = folder / "q.yaml"
    path.write_text(text + "\n")
    return path


@pytest.fixture(scope="module")
def space():
    return load_search_space(str(REPO / "quantization_config.yaml"))


def _set_settings(argv, space):
    """What `autoq.py --baselines ARGV` records in baselines.yaml, and its default folder name
    (the steps of solvers/run.py: uniform_baselines)."""
    args = autoq.parse_args(["--baselines", *argv])
    profile = run.profile_settings(args)
    wanted = baselines.set_settings(vars(args), args.scale, args.seed, args.learning_rate,
                                    args.baseline_epochs or profile.epochs, profile, space)
    return wanted, baselines.default_name(args.profile, PROFILES[args.profile], wanted, args.config)


def _run_key(argv, space):
    """What a search with ARGV writes to run.yaml (read back), reduced to the matched settings."""
    # --sensitivity none: a local results/sensitivity/ must not change what the test reads
    args = autoq.parse_args(["--algo", "random", "--sensitivity", "none", *argv])
    conv, act = layer_names()
    settings = run.run_settings(args, "random", run.profile_settings(args), space,
                                search_choices(space, conv, act))
    return baselines.run_settings_key(yaml.safe_load(yaml.safe_dump(settings)))


def test_default_names_differ_where_the_settings_do(space):
    def name(*argv):
        return _set_settings(list(argv), space)[1]
    assert name() == "quick"  # the profile's defaults keep the profile's name
    assert name("--epochs", "4", "--seed", "1", "--scale", "3") == "quick"  # the defaults, given
    assert name("--data", "div2k", "--seed", "2", "--scale", "4") == "quick_div2k_seed2_x4"
    assert name("--profile", "paper", "--data", "/x/my photos/", "--baseline-epochs", "8") == \
        "paper_my-photos_e8"
    assert name("--data", "d", "--val-images", "10", "--steps-per-epoch", "50", "--config",
                "cfg/small.yaml", "--learning-rate", "0.0005") == \
        "quick_d_val10_small_steps50_lr0.0005"
    names = {name(), name("--seed", "2"), name("--data", "div2k"), name("--scale", "2"),
             name("--epochs", "2"), name("--batch-size", "8"), name("--patch-size", "16")}
    assert len(names) == 7


def test_a_search_matches_the_baselines_made_with_its_options(space):
    options = [*TINY, "--data", "photos", "--seed", "3"]
    wanted, _ = _set_settings(options, space)
    saved = yaml.safe_load(yaml.safe_dump(wanted))  # as baselines.yaml is read back
    assert baselines.differences(saved, _run_key(options, space)) == []
    # Each of these makes the set another one: named by the first difference.
    for extra, first in ((["--seed", "2"], ("seed", 2, 3)),
                         (["--data", "div2k"], ("data.data", "div2k", "photos")),
                         (["--scale", "4"], ("scale", 4, 3)),
                         (["--baseline-epochs", "2"], ("budget.epochs", 2, 1)),
                         (["--steps-per-epoch", "5"], ("budget.steps_per_epoch", 5, 2)),
                         (["--learning-rate", "0.01"], ("learning_rate", 0.01, 0.001))):
        other, _ = _set_settings([*options, *extra], space)
        assert baselines.differences(other, _run_key(options, space))[0] == first, extra
    smaller = dict(wanted, quantizers={**wanted["quantizers"],
                                       "bias": {"quantized_bits(8,0,alpha=1.0)": 8}})
    assert baselines.differences(smaller, _run_key(options, space))[0][0].startswith(
        "quantizers.bias.")


def test_baselines_write_their_settings_and_refuse_other_settings_in_their_folder(tmp_path):
    images = write_images(tmp_path / "data" / "hr", count=3)
    config = _tiny_config(tmp_path)
    options = [*TINY, "--data", images, "--config", config]
    name = "quick_hr_q_e1_steps2_batch4_patch8"  # baselines.default_name of these options
    folder = tmp_path / "results" / "baselines" / name
    folder.mkdir(parents=True)
    (folder / "baselines.csv").write_text("label,size_bits,val_psnr\nuniform 4-bit,1,2\n")  # old
    result = run_autoq("--baselines", *options, "--results-dir", tmp_path / "results",
                       "--tb-dir", tmp_path / "tb")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"outputs: {folder}/baselines.csv, baselines.yaml and models/" in result.stdout

    rows = list(csv.DictReader(open(folder / "baselines.csv")))
    # No hand rule: this space has no 2- or 3-bit quantizer.
    assert [r["label"] for r in rows] == ["uniform 4-bit", "uniform 8-bit", "float32"]
    # Each row's model (make eval), scored on the held-out test image too.
    assert all((folder / r["model"]).is_file() and float(r["test_psnr"]) > 0 for r in rows)
    assert len(list(folder.glob("baselines.csv.old-*"))) == 1  # the old set, moved aside
    saved = yaml.safe_load((folder / "baselines.yaml").read_text())
    assert saved["name"] == name and saved["profile"] == "quick"
    assert saved["data"] == {"data": str(images), "lr_data": None, "div2k_root": None,
                             "train_images": None, "val_images": None, "test_images": None,
                             "split": 2}
    assert (saved["scale"], saved["seed"], saved["learning_rate"]) == (3, 1, 0.001)
    assert saved["budget"] == {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4,
                               "patch_size": 8}
    space = load_search_space(str(config))
    assert saved["quantizers"] == {
        "kernel": {f'quantized_bits({b},0,alpha="auto_po2")': b for b in (4, 8)},
        "bias": {f"quantized_bits({b},0,alpha=1.0)": b for b in (4, 8)},
        "activation": {f"quantized_relu({b},8)": b for b in (4, 8)}}
    assert baselines.differences(saved, _run_key([str(o) for o in options], space)) == []

    # The same folder with another seed: one line naming the file and the first difference.
    result = run_autoq("--baselines", *options, "--seed", "2", "--run", name,
                       "--results-dir", tmp_path / "results", "--tb-dir", tmp_path / "tb")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert f"{folder / 'baselines.yaml'}: these baselines were trained with seed = 1, now 2" \
        in result.stderr
    assert yaml.safe_load((folder / "baselines.yaml").read_text()) == saved
