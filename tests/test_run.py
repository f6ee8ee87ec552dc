"""Run folders: continuing a run, refusing a changed one, FRESH=1 moving the old one aside."""
import pytest
import yaml

from solvers.config import ConfigError
from conftest import run_autoq, write_images
from solvers.run_folder import check_worker_settings, first_difference, prepare_run_dir

SETTINGS = {"run": "r", "algo": "random", "profile": "quick",
            "settings": {"trials": 2, "epochs": 1}, "seed": 1, "scale": 3, "learning_rate": 0.001,
            "float_model": None, "data": {"data": None}, "objective": {"delta_p": 8.0},
            "search_space": {"conv_0_kernel": ["a", "b"]}, "versions": {"keras": "3"}}


def test_same_settings_continue_and_keep_earlier_files(tmp_path, capsys):
    run_dir, tb_dir = tmp_path / "results" / "r", tmp_path / "tb" / "r"
    prepare_run_dir(str(run_dir), str(tb_dir), SETTINGS)
    (run_dir / "trials.csv").write_text("kept\n")
    prepare_run_dir(str(run_dir), str(tb_dir), {**SETTINGS, "versions": {"keras": "4"}})
    assert (run_dir / "trials.csv").read_text() == "kept\n"
    assert "continuing the run" in capsys.readouterr().out
    assert yaml.safe_load(open(run_dir / "run.yaml"))["versions"] == {"keras": "4"}


@pytest.mark.parametrize("key, value", [("algo", "bayesian"), ("settings", {"trials": 3, "epochs": 1}),
                                        ("search_space", {"conv_0_kernel": ["a"]}), ("seed", 2),
                                        ("sensitivity", {"csv_sha256": "other table"})])
def test_changed_settings_are_refused_naming_the_difference(tmp_path, key, value):
    run_dir = tmp_path / "r"
    prepare_run_dir(str(run_dir), str(tmp_path / "tb"), SETTINGS)
    with pytest.raises(ConfigError) as e:
        prepare_run_dir(str(run_dir), str(tmp_path / "tb"), {**SETTINGS, key: value})
    assert str(e.value).startswith(f"{run_dir / 'run.yaml'}: this run was started with {key}")
    assert "FRESH=1" in str(e.value) and "\n" not in str(e.value)
    assert yaml.safe_load(open(run_dir / "run.yaml")).get(key) == SETTINGS.get(key)  # not overwritten


def test_fresh_moves_the_old_run_and_logs_aside(tmp_path):
    run_dir, tb_dir = tmp_path / "results" / "r", tmp_path / "tb" / "r"
    prepare_run_dir(str(run_dir), str(tb_dir), SETTINGS)
    (run_dir / "trials.csv").write_text("old\n")
    tb_dir.mkdir(parents=True)
    prepare_run_dir(str(run_dir), str(tb_dir), {**SETTINGS, "seed": 5}, fresh=True)
    moved = [p for p in (tmp_path / "results").iterdir() if p.name.startswith("r.old-")]
    assert len(moved) == 1 and (moved[0] / "trials.csv").read_text() == "old\n"
    assert len([p for p in (tmp_path / "tb").iterdir() if p.name.startswith("r.old-")]) == 1
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.yaml"]


def test_profile_values_are_overridden_by_options():
    import autoq
    from solvers.run import profile_settings
    args = autoq.parse_args(["--profile", "paper", "--epochs", "3", "--patience", "0"])
    profile = profile_settings(args)
    assert (profile.epochs, profile.patience, profile.trials) == (3, 0, 100)
    assert profile_settings(autoq.parse_args(["--profile", "paper"])).patience == 5


def test_the_first_difference_is_named_inside_mappings():
    changed = {**SETTINGS, "settings": {"trials": 2, "epochs": 4}}
    assert first_difference(SETTINGS, changed, ["seed", "settings"]) == ("settings.epochs", 1, 4)
    assert first_difference(SETTINGS, dict(SETTINGS), ["seed", "settings", "data"]) is None


def test_a_worker_refuses_settings_other_than_the_chiefs(tmp_path):
    prepare_run_dir(str(tmp_path / "r"), str(tmp_path / "tb"), SETTINGS)  # as the chief does
    check_worker_settings(str(tmp_path / "r"), dict(SETTINGS))  # the same: accepted
    # A worker reads no sensitivity table, so the chief's record of one is not its to match.
    prepare_run_dir(str(tmp_path / "t"), str(tmp_path / "tb"), {**SETTINGS, "sensitivity": {"a": 1}})
    check_worker_settings(str(tmp_path / "t"), dict(SETTINGS))
    with pytest.raises(ConfigError, match=r"run.yaml: the chief runs this search with "
                                          r"data.data = None, this worker was started with x"):
        check_worker_settings(str(tmp_path / "r"), {**SETTINGS, "data": {"data": "x"}})
    with pytest.raises(ConfigError, match="not written by a chief within 0 s"):
        check_worker_settings(str(tmp_path / "nothing"), SETTINGS, wait=0)


def test_make_worker_with_other_epochs_stops_before_joining(tmp_path):
    images = write_images(tmp_path / "hr")
    common = ["--steps-per-epoch", "2", "--patch-size", "8", "--batch-size", "4", "--data", images,
              "--results-dir", tmp_path / "results", "--tb-dir", tmp_path / "tb", "--run", "r"]
    run_dir = tmp_path / "results" / "r"
    # The chief's run.yaml, as a chief started with --epochs 1 writes it before serving.
    import autoq
    from solvers import run
    chief = autoq.parse_args([*map(str, common), "--epochs", "1", "--retrain-epochs", "0",
                              "--trials", "1"])
    prepare_run_dir(str(run_dir), str(tmp_path / "tb" / "r"), run.search_setup(chief)[-1])
    # No chief listens at this port: without the check the worker would wait for it (timeout).
    result = run_autoq(*common, "--epochs", "2", "--retrain-epochs", "0", "--trials", "1",
                       "--role", "worker", "--oracle", "127.0.0.1:9", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {run_dir / 'run.yaml'}: the chief runs this search with settings.epochs = 1, "
        "this worker was started with 2; start the worker with the chief's variables"]
