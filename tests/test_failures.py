"""Failures that tell the truth: a diverged trial is a result and the search goes on; trials that
raise stop the search after 3 in a row with one line; trials.csv is there after every trial.

Faults are injected by replacing solvers.train.fit in the child process (run_autoq_patched), not
through an option of the production command line."""
import csv
import json

import pytest

from conftest import run_autoq_patched, wrap_fit, write_images

TINY = ["--epochs", "1", "--retrain-epochs", "0", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4"]


def diverge(*trials):  # the loss of these trials becomes NaN, as with a diverging configuration
    return wrap_fit(f"if n in {set(trials)!r}: model.optimizer.learning_rate.assign(float('nan'))")


def raise_in(*trials):  # these trials raise, as a bug or an out-of-memory error would
    return wrap_fit(f"if n in {set(trials)!r}: raise RuntimeError('injected fault in trial ' + str(n))")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _run(tmp_path, images, prelude, *args):
    return run_autoq_patched(prelude, *TINY, "--data", images, "--results-dir",
                             tmp_path / "results", "--tb-dir", tmp_path / "tb", "--run", "r", *args)


def _rows(tmp_path):
    return list(csv.DictReader(open(tmp_path / "results" / "r" / "trials.csv")))


def test_diverging_trials_are_recorded_as_failed_and_never_stop_the_search(tmp_path, images):
    # Three diverged trials in a row (the limit for errors): a result each, not an error, so all
    # four trials run.
    result = _run(tmp_path, images, diverge(0, 1, 2), "--trials", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["FAILED"] * 3 + ["COMPLETED"]
    assert rows[1]["reason"].endswith("loss became nan in epoch 1")
    assert rows[1]["val_score"] == "" and rows[3]["reason"] == ""
    assert "trial 2/4 done: FAILED (" in result.stdout
    assert (tmp_path / "results" / "r" / "best_model_retrained.keras").is_file()


def test_a_search_where_every_trial_diverges_ends_with_a_clear_error(tmp_path, images):
    result = _run(tmp_path, images, diverge(0, 1), "--trials", "2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'results' / 'r'}: every trial failed; see trials.csv"]
    assert [r["status"] for r in _rows(tmp_path)] == ["FAILED", "FAILED"]


def test_trials_that_raise_stop_the_search_after_three_in_a_row(tmp_path, images):
    # A bug must not burn the whole budget. Two errors, then a diverged trial (which trained: the
    # code runs, so the row starts again), then errors only: the search stops at the third of
    # those, 6 trials of the 9 asked.
    prelude = raise_in(0, 1, *range(3, 9)) + "\n" + diverge(2)
    result = _run(tmp_path, images, prelude, "--trials", "9")
    assert result.returncode == 1, result.stdout[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the search stopped: 3 trials in a row "
                                                   "raised an error"), result.stderr[-3000:]
    assert "RuntimeError: injected fault in trial 5" in lines[0]
    traceback_file = lines[0].rsplit("full traceback: ", 1)[1].rstrip(")")
    message = json.load(open(traceback_file))["message"]
    assert "Traceback" in message and "injected fault in trial 5" in message
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["FAILED"] * 6
    assert rows[0]["reason"] == "RuntimeError: injected fault in trial 0"
    assert rows[2]["reason"].endswith("loss became nan in epoch 1")


def test_trials_csv_is_written_after_every_trial(tmp_path, images):
    # The process dies (as with a kill) when the third trial starts: the two finished trials are
    # already in trials.csv, before the search ends.
    result = _run(tmp_path, images, wrap_fit("if n == 2: import os; os._exit(9)"), "--trials", "4")
    assert result.returncode == 9
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["COMPLETED", "COMPLETED"]
    assert all(float(r["val_psnr"]) > 0 for r in rows)
