"""WORKERS=N: a search on several worker processes through Keras Tuner's distributed mode."""
import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, write_images
from solvers.search.distributed import core_shares, free_port, tuner_env

TINY = ["--epochs", "1", "--retrain-epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _launch(tmp_path, images, trials):
    log = open(tmp_path / "launcher.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "autoq.py"), *TINY, "--trials", str(trials), "--workers", "2",
         "--data", str(images), "--results-dir", str(tmp_path / "results"),
         "--tb-dir", str(tmp_path / "tb")], stdout=log, stderr=subprocess.STDOUT)
    return proc, tmp_path / "launcher.log"


def _rows(tmp_path):
    return list(csv.DictReader(open(tmp_path / "results" / "random" / "trials.csv")))


def test_two_workers_share_the_trials(tmp_path, images):
    proc, log = _launch(tmp_path, images, trials=6)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    rows = _rows(tmp_path)
    assert len(rows) == 6 and len({r["trial_id"] for r in rows}) == 6
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert {r["worker"] for r in rows} == {"tuner0", "tuner1"}
    output = log.read_text()
    assert re.search(r"chief oracle at 127\.0\.0\.1:\d+", output)
    assert (tmp_path / "results" / "random" / "best_model_retrained.keras").is_file()
    assert "[chief] report:" in output
    report = (tmp_path / "results" / "random" / "report.md").read_text()
    assert "| tuner0 |" in report and "| tuner1 |" in report


def test_a_killed_worker_is_restarted_and_the_search_completes(tmp_path, images):
    proc, log = _launch(tmp_path, images, trials=5)
    deadline = time.monotonic() + 300
    while not (match := re.search(r"\[tuner1\] trial \d/5 \(", log.read_text())):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    pid = int(re.search(r"tuner1 started \(pid (\d+)\)", log.read_text()).group(1))
    os.kill(pid, signal.SIGKILL)  # mid-trial
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "tuner1 died (exit -9); restarting it" in log.read_text()
    rows = _rows(tmp_path)
    assert len(rows) == 5 and len({r["trial_id"] for r in rows}) == 5
    assert all(r["status"] == "COMPLETED" for r in rows), match.group(0)


def test_helpers():
    assert core_shares(2, [0, 1]) == [[0], [1]]
    assert core_shares(3, [0, 1, 2, 3, 4, 5]) == [[0, 1], [2, 3], [4, 5]]
    assert core_shares(2, [0]) == [[0], [0]]  # more workers than cores: they share
    assert tuner_env("worker", "10.0.0.1:8000", 3) == {
        "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
        "KERASTUNER_TUNER_ID": "tuner3"}
    assert tuner_env("chief", "h:1")["KERASTUNER_TUNER_ID"] == "chief"
    assert 0 < free_port() < 65536
