"""solvers/search/retrain.py: which files a resumed retrain proves cut short, and what it keeps."""
import json

import h5py
import numpy as np

from solvers.search.retrain import cut_short, repair_backup


def _h5(path, size=50_000):
    with h5py.File(path, "w") as f:
        f["weights"] = np.arange(size, dtype="float32")
    return path


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_cut_short_reads_every_file_to_its_end(tmp_path):
    assert cut_short(str(_h5(tmp_path / "a.h5"))) is None
    assert "truncated" in cut_short(str(_cut(_h5(tmp_path / "b.h5"))))
    (tmp_path / "c.h5").write_bytes(b"half a file")
    assert "not an HDF5 file" in cut_short(str(tmp_path / "c.h5"))
    (tmp_path / "m.json").write_text('{"epoch": 3, "batch": 0}')
    assert cut_short(str(tmp_path / "m.json")) is None
    (tmp_path / "n.json").write_text('{"epoch": 3, "ba')
    assert cut_short(str(tmp_path / "n.json"))


def test_a_cut_short_backup_falls_back_to_the_epoch_before(tmp_path):
    _h5(tmp_path / "latest.weights.h5", size=10)
    _cut(_h5(tmp_path / "latest.weights.h5"))
    _h5(tmp_path / "latest.weights.h5.bkp", size=7)
    (tmp_path / "training_metadata.json").write_text('{"epoch": 4, "batch": 0}')
    (tmp_path / "training_metadata.json.bkp").write_text('{"epoch": 3, "batch": 0}')
    note = repair_backup(str(tmp_path))
    assert note.startswith("the last backup was cut short") and "epoch before" in note
    with h5py.File(tmp_path / "latest.weights.h5") as f:
        assert f["weights"].shape == (7,)
    assert json.loads((tmp_path / "training_metadata.json").read_text())["epoch"] == 3


def test_a_backup_with_nothing_readable_is_discarded_and_a_whole_one_kept(tmp_path):
    whole = tmp_path / "whole"
    whole.mkdir()
    _h5(whole / "latest.weights.h5")
    assert repair_backup(str(whole)) is None and (whole / "latest.weights.h5").is_file()
    broken = tmp_path / "broken"
    broken.mkdir()
    _cut(_h5(broken / "latest.weights.h5"))
    assert repair_backup(str(broken)).startswith("discarded") and not broken.exists()
