"""Nothing lost: a search or a retrain killed with SIGKILL continues where it stopped; the same
seed gives the same trials."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_autoq, run_autoq_patched, wrap_fit, write_images

TINY = ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("data") / "hr", count=3)


def _args(tmp_path, images, *extra):
    return [*TINY, "--data", images, "--results-dir", tmp_path / "results",
            "--tb-dir", tmp_path / "tb", "--run", "r", *extra]


def _kill_when(tmp_path, args, ready, timeout=300):
    """Starts autoq.py, SIGKILLs it as soon as ready(stdout so far) is true; returns stdout."""
    log = tmp_path / f"killed-{time.monotonic_ns()}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "autoq.py"), *map(str, args)],
                                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not ready(log.read_text()):
            assert proc.poll() is None, f"finished before the kill:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "timed out waiting to kill"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text()


def _rows(tmp_path):
    return list(csv.DictReader(open(tmp_path / "results" / "r" / "trials.csv")))


def test_a_search_killed_after_its_first_trial_continues(tmp_path, images):
    args = _args(tmp_path, images, "--trials", "4", "--retrain-epochs", "1")
    before = _kill_when(tmp_path, args, lambda out: "trial 1/4 done" in out)
    assert "trial 4/4" not in before
    result = run_autoq(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing the run" in result.stdout
    assert "trial 1/4 (" not in result.stdout  # the finished trial is not run again
    rows = _rows(tmp_path)
    assert len(rows) == 4 and len({r["trial_id"] for r in rows}) == 4
    assert [r["status"] for r in rows] == ["COMPLETED"] * 4
    assert (tmp_path / "results" / "r" / "best_model_retrained.keras").is_file()


def test_a_retrain_killed_midway_resumes_from_its_last_epoch(tmp_path, images):
    # Epochs of 60 steps: the kill lands well inside epoch 3, not while Keras writes a backup.
    args = _args(tmp_path, images, "--trials", "1", "--retrain-epochs", "4",
                 "--steps-per-epoch", "60")
    backup = tmp_path / "results" / "r" / "finalists" / "trial_0" / "retrain_backup"
    # "Epoch 3/5" is printed once epoch 2, the first of the retrain, has ended and been backed up.
    killed = _kill_when(tmp_path, args, lambda out: "Epoch 3/5" in out and backup.is_dir())
    result = run_autoq(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    context = f"before the kill:\n{killed[-1500:]}\nafter:\n{result.stdout[-1500:]}"
    assert "resuming the interrupted retrain" in result.stdout, context
    assert "Epoch 2/5" not in result.stdout and "Epoch 5/5" in result.stdout, context
    assert "trial 1/1 (" not in result.stdout  # the search was complete: no trial reruns
    assert not backup.exists()  # removed once the retrain finished
    assert (tmp_path / "results" / "r" / "best_model_retrained.keras").is_file()
    assert len(_rows(tmp_path)) == 1


def test_the_same_seed_gives_the_same_trials(tmp_path, images):
    tables = []
    for name in ("a", "b"):
        result = run_autoq(*TINY, "--data", images, "--results-dir", tmp_path / name,
                           "--tb-dir", tmp_path / "tb", "--trials", "2", "--retrain-epochs", "0",
                           "--seed", "7")
        assert result.returncode == 0, result.stderr[-3000:]
        tables.append(list(csv.DictReader(open(tmp_path / name / "random" / "trials.csv"))))
    a, b = tables
    assert len(a) == len(b) == 2
    for row_a, row_b in zip(a, b):
        quantizers = [k for k in row_a if k.startswith(("conv_", "act_"))]
        assert [row_a[k] for k in quantizers] == [row_b[k] for k in quantizers]
        assert row_a["size_bits"] == row_b["size_bits"]
        for metric in ("val_loss", "val_psnr", "val_score"):
            assert float(row_a[metric]) == pytest.approx(float(row_b[metric]), rel=1e-3)


# The retrain (the only fit call of a run whose search is complete, the second of a 1-trial run)
# is killed when its second epoch begins: the first one is backed up, as after a real kill.
KILL_IN_RETRAIN = wrap_fit("""if n == 1:
    import os, keras
    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2: os._exit(9)
    k['callbacks'] = [*k.get('callbacks', ()), Kill()]""")


def test_only_files_proven_cut_short_are_discarded_when_a_retrain_resumes(tmp_path, images):
    args = _args(tmp_path, images, "--trials", "1", "--retrain-epochs", "3")
    assert run_autoq_patched(KILL_IN_RETRAIN, *args).returncode == 9
    run_dir = tmp_path / "results" / "r"
    final = run_dir / "finalists" / "trial_0"  # the one trial is the one finalist
    backup, checkpoint = final / "retrain_backup", final / "retrain_checkpoint.partial.keras"
    assert (backup / "latest.weights.h5").is_file()
    if not checkpoint.exists():  # the first retrain epoch did not beat the searched weights
        shutil.copyfile(final / "best_model.keras", checkpoint)

    # A full disk while the resumed retrain runs: one line; the readable backup is kept.
    full = wrap_fit("import errno\n"
                    "raise OSError(errno.ENOSPC, 'No space left on device', 'retrain_backup')")
    result = run_autoq_patched(full, *args)
    assert result.returncode == 2 and "No space left on device" in result.stderr, result.stderr
    assert (backup / "latest.weights.h5").is_file() and checkpoint.is_file()

    # The whole best checkpoint fails to load for another reason (out of memory): the error
    # shows and the checkpoint stays.
    oom = ("import keras.models as _m\n_load = _m.load_model\n"
           "def _failing(path, *a, **k):\n"
           "    if str(path).endswith('partial.keras'): raise MemoryError('injected')\n"
           "    return _load(path, *a, **k)\n_m.load_model = _failing")
    result = run_autoq_patched(oom, *args)
    assert result.returncode != 0 and "MemoryError: injected" in result.stderr
    assert checkpoint.is_file()

    # A checkpoint and a backup both cut short (as a kill while Keras wrote them leaves them,
    # and no copy of the epoch before reads back): both are discarded and the retrain starts
    # again from the searched weights.
    for damaged in (checkpoint, backup / "latest.weights.h5"):
        data = damaged.read_bytes()
        damaged.write_bytes(data[: len(data) // 2])
    for copy in backup.glob("*.bkp"):
        copy.write_bytes(b"half a file")
    result = run_autoq(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "discarding the retrain's best checkpoint, cut short" in result.stdout
    assert "the retrain's backup was cut short" in result.stdout
    assert "retraining from the searched weights" in result.stdout and "Epoch 2/4" in result.stdout
    assert not backup.exists() and (run_dir / "best_model_retrained.keras").is_file()
