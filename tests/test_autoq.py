"""autoq.py's command line: every bad input is one line `error: ...`, exit 2, nothing overwritten."""

import subprocess
import sys

import pytest
from PIL import Image

import autoq
from conftest import REPO, run_autoq, write_images
from solvers.networks.base7 import base7

TINY = ["--trials", "1", "--epochs", "1", "--retrain-epochs", "0", "--steps-per-epoch", "1",
        "--patch-size", "8", "--batch-size", "2"]


@pytest.fixture
def earlier_run(tmp_path):
    """A results folder holding an earlier run's trials.csv, which no failed command may touch."""
    run_dir = tmp_path / "results" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "trials.csv").write_text("earlier run\n")
    return run_dir


def _bad_inputs(tmp_path):
    """(arguments, text the error line must contain) for each malformed input."""
    empty = tmp_path / "empty"
    empty.mkdir()
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for i in range(3):  # a folder needs 3 images: training, validation, test
        Image.new("RGB", (12, 12)).save(tiny / f"{i}.png")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kernel: [unclosed\n")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(open("quantization_config.yaml").read().replace(
        "quantized_bits(4,0,alpha=1.0)", "quantized_bitz(4,0)", 1))
    wrong_scale = tmp_path / "x2.keras"
    base7(scale=2).save(wrong_scale)
    not_a_model = tmp_path / "junk.keras"
    not_a_model.write_text("not a zip")
    return [
        (["--algo", "annealing"], "argument --algo: invalid choice: 'annealing'"),
        (["--trials", "0"], "argument --trials: '0' must be at least 1"),
        (["--epochs", "two"], "argument --epochs: 'two' is not an integer"),
        (["--scale", "5"], "argument --scale: invalid choice"),
        (["--learning-rate", "-1"], "--learning-rate: -1.0 must be > 0"),
        (["--train-float"], "--train-float needs --float-model"),
        (["--data", str(tmp_path / "missing")], f"DATA: {tmp_path / 'missing'}"),
        (["--data", str(empty)], "no PNG/JPEG images"),
        (["--data", str(tiny), "--patch-size", "32"], "smaller than the 32x32 training patch"),
        (["--config", str(broken)], f"{broken}: not valid YAML at line"),
        (["--config", str(unknown)], 'bias: "quantized_bitz(4,0)": not a qkeras quantizer with a bit width'),
        (["--config", str(tmp_path / "none.yaml")], "none.yaml: cannot read"),
        (["--float-model", str(tmp_path / "none.keras")], "none.keras: no such file"),
        (["--float-model", str(wrong_scale)], "not a float32 base7 at scale 3 (layer conv_5"),
        (["--float-model", str(not_a_model)], "junk.keras: not a loadable .keras model"),
    ]


def test_every_bad_input_is_one_error_line_and_exit_2(tmp_path, earlier_run, capsys):
    for args, expected in _bad_inputs(tmp_path):
        argv = [*TINY, *args, "--run", "r", "--results-dir", str(earlier_run.parent),
                "--tb-dir", str(tmp_path / "tb")]
        try:
            code = autoq.main(argv)
        except SystemExit as e:  # argparse's errors
            code = e.code
        err = capsys.readouterr().err.strip()
        assert code == 2, (args, err)
        assert err.startswith("error: ") and "\n" not in err, (args, err)
        assert expected in err, (args, err)
        assert sorted(p.name for p in earlier_run.iterdir()) == ["trials.csv"], args
        assert (earlier_run / "trials.csv").read_text() == "earlier run\n", args


@pytest.mark.parametrize("args", [["--algo", "nope"], ["--config", "missing.yaml"]])
def test_a_real_process_prints_no_traceback(args):
    result = run_autoq(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout


def test_an_output_folder_that_cannot_be_written_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the results folder should be")
    code = autoq.main([*TINY, "--data", str(write_images(tmp_path / "hr")), "--results-dir",
                       str(blocker), "--tb-dir", str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot write ") and "\n" not in err
    assert blocker.read_text().startswith("a file")


def test_a_full_disk_is_one_error_line(tmp_path, capsys, monkeypatch):
    import errno

    from solvers import files

    def full(path, write, newline=None):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(files, "write_atomic", full)
    code = autoq.main([*TINY, "--data", str(write_images(tmp_path / "hr")), "--results-dir",
                       str(tmp_path / "results"), "--tb-dir", str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot write ")
    assert "run.yaml: No space left on device" in err


def test_a_failed_import_shows_what_the_silenced_stderr_captured():
    # TensorFlow's C++ side writes the reason of a failed import to file descriptor 2, which is
    # captured while it imports: the reason must reach the user with the exception.
    code = ("import os, solvers\n"
            "with solvers.c_stderr_silenced():\n"
            "    os.write(2, b'F0000 fatal: libtensorflow_framework.so.2: cannot open\\n')\n"
            "    raise ImportError('no TensorFlow')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert "F0000 fatal: libtensorflow_framework.so.2: cannot open" in result.stderr
    assert result.stderr.rstrip().endswith("ImportError: no TensorFlow")


def test_import_solvers_is_quiet():
    result = subprocess.run([sys.executable, "-c", "import solvers"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
