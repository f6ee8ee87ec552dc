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
import autoq
from solvers.run_folder import run_name
from solvers.search.distributed import (MAX_RESTARTS, core_shares, free_port,
                                        tuner_env)

TINY = ["--epochs", "1", "--retrain-epochs", "0", "--steps-per-epoch", "2", "--patch-size", "8",
        "--batch-size", "4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _launch(tmp_path, images, trials, env=None):
    with open(tmp_path / "launcher.log", "w") as log:  # the launcher keeps its own handle
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "autoq.py"), *TINY, "--trials", str(trials), "--workers",
             "2", "--data", str(images), "--results-dir", str(tmp_path / "results"),
             "--tb-dir", str(tmp_path / "tb")], stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, tmp_path / "launcher.log"


def _dying(tmp_path, who):
    """The launcher's environment, in which every process whose KERASTUNER_TUNER_ID starts with
    `who` exits with code 3 at start-up: a sitecustomize on PYTHONPATH, which the children
    inherit, so no production code knows about it."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import os\n"
        f"if os.environ.get('KERASTUNER_TUNER_ID', '').startswith({who!r}):\n"
        "    os._exit(3)\n")
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _pids(output):
    """Every process the launcher started, by the `chief started (pid N)` lines."""
    return [int(pid) for pid in
            re.findall(r"^(?:chief|tuner\d+) started \(pid (\d+)\)", output, re.MULTILINE)]


def _running(pid):
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_then_clean_up(proc, log, timeout):
    """The launcher's exit code; fails if it has not ended within `timeout` s, after taking it
    and its processes down (SIGINT: the launcher terminates its children; then SIGKILL)."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=70)
        except subprocess.TimeoutExpired:
            proc.kill()
        for pid in filter(_running, _pids(log.read_text())):
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"the launcher still ran after {timeout} s:\n{log.read_text()[-3000:]}")


def _rows(tmp_path):
    return list(csv.DictReader(open(tmp_path / "results" / "random" / "trials.csv")))


def test_two_workers_share_the_trials(tmp_path, images):
    proc, log = _launch(tmp_path, images, trials=4)
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    rows = _rows(tmp_path)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert {r["worker"] for r in rows} == {"tuner0", "tuner1"}
    output = log.read_text()
    assert re.search(r"chief oracle at 127\.0\.0\.1:\d+", output)
    assert (tmp_path / "results" / "random" / "best_model_retrained.keras").is_file()
    assert "[chief] report:" in output
    report = (tmp_path / "results" / "random" / "report.md").read_text()
    assert "| tuner0 |" in report and "| tuner1 |" in report


def test_a_killed_worker_is_restarted_and_the_search_completes(tmp_path, images):
    proc, log = _launch(tmp_path, images, trials=4)
    deadline = time.monotonic() + 300
    while not (match := re.search(r"\[tuner1\] trial \d/4 \(", log.read_text())):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    pid = int(re.search(r"tuner1 started \(pid (\d+)\)", log.read_text()).group(1))
    os.kill(pid, signal.SIGKILL)  # mid-trial
    assert proc.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert "tuner1 died (exit -9); restarting it" in log.read_text()
    rows = _rows(tmp_path)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert all(r["status"] == "COMPLETED" for r in rows), match.group(0)


def test_a_worker_that_keeps_dying_stops_the_search(tmp_path, images):
    proc, log = _launch(tmp_path, images, trials=4, env=_dying(tmp_path, "tuner"))
    code = _wait_then_clean_up(proc, log, timeout=120)
    output = log.read_text()
    assert code == 1, output[-3000:]
    # The injection works: the workers died, and were restarted until one had died too often.
    assert len(re.findall(r"tuner[01] died \(exit 3\); restarting it", output)) >= MAX_RESTARTS
    errors = [line for line in output.splitlines() if line.startswith("error: tuner")]
    assert len(errors) == 1, output[-3000:]
    assert re.match(rf"error: tuner[01] died {MAX_RESTARTS + 1} times \(exit code 3 the last "
                    r"time\); the search is stopped", errors[0]), errors
    pids = _pids(output)
    assert re.search(r"^chief started", output, re.MULTILINE) and len(pids) > MAX_RESTARTS + 2, pids
    assert not [pid for pid in pids if _running(pid)], output[-3000:]


def test_the_chief_dying_stops_the_workers_at_once(tmp_path, images):
    # The workers would wait 10 minutes for the chief's run.yaml: they are terminated instead.
    proc, log = _launch(tmp_path, images, trials=4, env=_dying(tmp_path, "chief"))
    code = _wait_then_clean_up(proc, log, timeout=45)
    output = log.read_text()
    assert code == 3, output[-3000:]
    assert "error: tuner" not in output and "restarting" not in output, output[-3000:]
    pids = _pids(output)
    assert len(pids) == 3 and not [pid for pid in pids if _running(pid)], output[-3000:]


def test_the_run_name_names_trials_csv():
    args = autoq.parse_args(["--algo", "bayesian", "--float-model", "f.keras"])
    assert run_name(args) == "bayesian_pretrained"
    assert run_name(autoq.parse_args(["--run", "mine"])) == "mine"


def test_helpers():
    assert core_shares(2, [0, 1]) == [[0], [1]]
    assert core_shares(3, [0, 1, 2, 3, 4, 5]) == [[0, 1], [2, 3], [4, 5]]
    assert core_shares(2, [0]) == [[0], [0]]  # more workers than cores: they share
    assert tuner_env("worker", "10.0.0.1:8000", 3) == {
        "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
        "KERASTUNER_TUNER_ID": "tuner3"}
    assert tuner_env("chief", "h:1")["KERASTUNER_TUNER_ID"] == "chief"
    assert 0 < free_port() < 65536
