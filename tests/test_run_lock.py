"""One process per run folder: a second process on the same RUN is refused at once, naming the
holder's pid, and touches nothing; a worker of the run is not refused; a holder killed with SIGKILL
leaves nothing locked, and the rerun continues its run."""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_autoq, write_images

from solvers import run_lock
from solvers.config_base import ConfigError

# A process holding `folder`'s lock until killed. It imports run_lock without solvers/__init__.py,
# which imports TensorFlow (seconds): only the lock is under test here.
HOLDER = """import sys, time, types
package = types.ModuleType("solvers"); package.__path__ = [{solvers!r}]
sys.modules["solvers"] = package
from solvers import run_lock
run_lock.hold({folder!r}); print("held", flush=True); time.sleep(600)
"""


def _hold_elsewhere(folder):
    """A process (Popen) that holds `folder`'s lock, returned once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(solvers=str(REPO / "solvers"), folder=str(folder))],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n", "the holder process did not take the lock"
    return proc


def _within(seconds, call):
    """call(), failing the test if it takes longer than `seconds` (a lock that waits for its
    holder instead of refusing would otherwise hang the test)."""
    def too_long(*_):
        raise AssertionError(f"still waiting after {seconds} s: the lock waits, it does not refuse")
    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(seconds)
    try:
        return call()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _pid_in(lock_file):
    return int(Path(lock_file).read_text().split()[0])


def test_a_held_folder_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path):
    folder = tmp_path / "results" / "r"
    holder = _hold_elsewhere(folder)
    try:
        with pytest.raises(ConfigError) as refused:
            _within(10, lambda: run_lock.hold(str(folder)))
        message = str(refused.value)
        assert f"in use by process {holder.pid} " in message and "\n" not in message, message
        assert _pid_in(run_lock.lock_path(folder)) == holder.pid  # the refused one wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)  # no exit handler runs: only the kernel unlocks
        holder.wait()
    path = run_lock.hold(str(folder))
    assert _pid_in(path) == os.getpid()
    assert run_lock.hold(str(folder)) == path  # this process again: it already holds it


def test_the_lock_stays_with_the_run_when_fresh_moves_its_folder_aside(tmp_path):
    # FRESH=1 moves results/<RUN> away (os.replace): a lock inside it would go along, and the
    # name would be free for a second process while the first still runs.
    folder = tmp_path / "results" / "r"
    holder = _hold_elsewhere(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trials.csv").write_text("first run\n")
        os.replace(folder, tmp_path / "results" / "r.old-1")
        with pytest.raises(ConfigError, match=f"process {holder.pid} "):
            run_lock.hold(str(folder))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


# Tiny settings, as in test_resume. Three trials: the first run is paused after its first one.
TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8", "--batch-size", "4",
        "--trials", "3", "--retrain-epochs", "0"]

# A worker run stops (exit 0, saying so) where it would build its tuner: past the point where the
# chief takes the lock, without needing a chief's oracle to talk to.
STOP_AT_TUNER = """import solvers.search.tuners as _tuners
def _stop(*args, **kwargs):
    print("worker: past the lock", flush=True)
    raise SystemExit(0)
_tuners.make_tuner = _stop"""


def _files(*folders):
    """{path: (size, mtime_ns, sha256)} of every file under `folders`."""
    found = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                stat = os.stat(path)
                found[path] = (stat.st_size, stat.st_mtime_ns,
                               hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return found


def _autoq(*args, prelude=None):
    """autoq.py (after the Python code `prelude`, if any) as a Popen with captured text output."""
    script = str(REPO / "autoq.py")
    if prelude is None:
        command = [sys.executable, script, *map(str, args)]
    else:
        command = [sys.executable, "-c", "\n".join([
            f"import sys; sys.path.insert(0, {str(REPO)!r})", prelude, "import runpy",
            f"sys.argv = [{script!r}, *{list(map(str, args))!r}]",
            f"runpy.run_path({script!r}, run_name='__main__')"])]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_search_on_a_running_run_is_refused_and_a_killed_run_continues(tmp_path):
    images = write_images(tmp_path / "hr", count=3)
    results, tb = tmp_path / "results", tmp_path / "tb"
    args = [*TINY, "--data", images, "--results-dir", results, "--tb-dir", tb, "--run", "r"]
    lock_file = run_lock.lock_path(results / "r")
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        first = subprocess.Popen([sys.executable, str(REPO / "autoq.py"), *map(str, args)],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while "trial 1/3 done" not in log.read_text():
            assert first.poll() is None, f"the first run ended early:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the first run took too long to finish a trial"
            time.sleep(0.1)
        # Paused, so that any change to its files from now on is the other processes' doing.
        first.send_signal(signal.SIGSTOP)
        assert first.poll() is None and _pid_in(lock_file) == first.pid
        before = _files(results, tb)
        assert str(results / "r" / "trials.csv") in before  # there is something to protect

        started = time.monotonic()
        second = _autoq(*args)
        worker = _autoq(*args, "--role", "worker", "--oracle", "127.0.0.1:1", prelude=STOP_AT_TUNER)
        out, err = second.communicate(timeout=120)
        seconds = time.monotonic() - started
        assert second.returncode == 2, err[-3000:]
        assert err.startswith("error: ") and err.strip().count("\n") == 0, err
        assert f"in use by process {first.pid} " in err, err
        assert seconds < 30, f"refused only after {seconds:.0f} s"
        worker_out, worker_err = worker.communicate(timeout=120)
        # Nothing of the first run touched (not even the lock file), by either process.
        assert _files(results, tb) == before
        assert worker.returncode == 0 and "worker: past the lock" in worker_out, worker_err[-3000:]
    finally:
        first.send_signal(signal.SIGKILL)  # also ends a stopped process
        first.wait()

    # The kernel released the killed run's lock: the rerun takes it and continues the search.
    rerun = run_autoq(*args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "continuing the run" in rerun.stdout
    assert "trial 1/3 (" not in rerun.stdout and "trial 3/3 done" in rerun.stdout
    assert (results / "r" / "best_model_retrained.keras").is_file()
