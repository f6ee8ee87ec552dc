"""solvers/report/pareto.py: the front on hand-made tables, and trials.csv / pareto.csv on disk."""
import csv
import os

from solvers.report import pareto


def _rows(*points, status="COMPLETED"):
    """Trial rows from (size_bits, val_psnr) points, ids 00, 01, ... as Keras Tuner names them."""
    return [{"trial_id": f"{i:02d}", "status": status, "size_bits": str(size),
             "val_psnr": str(psnr)} for i, (size, psnr) in enumerate(points)]


def _front_ids(rows):
    return [r["trial_id"] for r, flag in zip(rows, pareto.pareto_flags(rows)) if flag]


def _brute_force(rows):
    """The definition itself: a row is dominated if another is <= in size and >= in PSNR with one
    strict; exact duplicates keep only their first row."""
    done = [r for r in rows if r["status"] == "COMPLETED" and pareto.number(r["size_bits"])
            is not None and pareto.number(r["val_psnr"]) is not None]
    points = [(float(r["size_bits"]), float(r["val_psnr"])) for r in done]
    ids = []
    for k, (s, p) in enumerate(points):
        dominated = any(s2 <= s and p2 >= p and (s2 < s or p2 > p) for s2, p2 in points)
        duplicate = any((s2, p2) == (s, p) for s2, p2 in points[:k])
        if not dominated and not duplicate:
            ids.append(done[k]["trial_id"])
    return ids


def test_simple_front():
    rows = _rows((100, 28.0), (200, 29.0), (150, 27.0), (300, 29.5), (250, 28.5))
    assert _front_ids(rows) == ["00", "01", "03"]


def test_ties_in_size_keep_the_higher_psnr():
    rows = _rows((100, 28.0), (100, 28.7), (200, 29.0), (200, 28.9))
    assert _front_ids(rows) == ["01", "02"]


def test_ties_in_psnr_keep_the_smaller_size():
    rows = _rows((300, 29.0), (100, 29.0), (200, 29.0), (400, 29.5))
    assert _front_ids(rows) == ["01", "03"]


def test_exact_duplicates_keep_the_first_trial_only():
    rows = _rows((200, 29.0), (100, 28.0), (100, 28.0), (200, 29.0))
    assert _front_ids(rows) == ["00", "01"]


def test_one_point_front():
    # Trial 02 is both the smallest and the best: it dominates all the others.
    rows = _rows((300, 28.0), (200, 28.5), (100, 29.9), (400, 29.0))
    assert _front_ids(rows) == ["02"]
    assert _front_ids(_rows((123, 27.0))) == ["00"]


def test_failed_unfinished_and_empty_rows_are_ignored():
    rows = _rows((100, 28.0), (200, 29.0))
    rows.append({"trial_id": "02", "status": "FAILED", "size_bits": "", "val_psnr": ""})
    # A failed trial with numbers (even ones that would dominate) is not on the front either.
    rows.append({"trial_id": "03", "status": "FAILED", "size_bits": "50", "val_psnr": "40"})
    rows.append({"trial_id": "04", "status": "RUNNING", "size_bits": "50", "val_psnr": "40"})
    rows.append({"trial_id": "05", "status": "COMPLETED", "size_bits": "50", "val_psnr": "nan"})
    assert pareto.pareto_flags(rows) == [True, True, False, False, False, False]
    assert pareto.pareto_flags([]) == []


def test_all_points_on_a_line():
    # PSNR rising with size: every point is on the front.
    rows = _rows(*[(100 * k, 27.0 + 0.5 * k) for k in range(1, 7)])
    assert _front_ids(rows) == [r["trial_id"] for r in rows]
    # PSNR falling with size: only the smallest one is.
    rows = _rows(*[(100 * k, 30.0 - 0.5 * k) for k in range(1, 7)])
    assert _front_ids(rows) == ["00"]


def test_matches_the_definition_on_random_tables():
    import random
    rng = random.Random(3)
    for _ in range(200):
        # Few distinct values, so that ties and duplicates are common.
        points = [(rng.choice([100, 150, 200, 250]), rng.choice([27.5, 28.0, 28.5, 29.0]))
                  for _ in range(rng.randint(1, 9))]
        rows = _rows(*points)
        rows[0]["status"] = rng.choice(["COMPLETED", "FAILED"])
        assert _front_ids(rows) == _brute_force(rows)


def test_helpers():
    assert pareto.bits_of('quantized_bits(4,0,alpha="auto_po2")') == 4
    assert pareto.bits_of("quantized_relu(3,8)") == 3
    assert pareto.bits_of("") is None and pareto.bits_of(None) is None
    assert pareto.number("") is None and pareto.number("inf") is None
    assert pareto.number("1.5") == 1.5
    row = {"conv_0_kernel": "quantized_bits(5,0)", "conv_0_bias": "quantized_bits(3,0)",
           "act_0_activation": "quantized_relu(7,8)", "conv_1_kernel": "quantized_bits(8,0)",
           "conv_1_bias": "quantized_bits(2,0)"}
    assert pareto.bits_summary(row) == "5/3/7 8/2"
    # trials.csv with width hyperparameters: the integer column wins (no string needed).
    widths = {"conv_0_kernel_bits": "4", "conv_0_bias_bits": "6", "act_0_activation_bits": "2",
              "conv_1_kernel_bits": "3", "conv_1_bias": "quantized_bits(7,0)"}
    assert pareto.bits_summary(widths) == "4/6/2 3/7"
    assert pareto.bits_summary({**row, "conv_0_kernel_bits": "6"}) == "6/3/7 8/2"
    assert pareto.layer_bits({}, "conv_0_kernel") is None
    assert sorted(["10", "9", "x"], key=lambda t: pareto.trial_key({"trial_id": t})) == \
        ["9", "10", "x"]


def test_update_run_writes_the_column_and_pareto_csv(tmp_path):
    rows = _rows((300, 29.5), (100, 28.0), (200, 27.0))
    rows.append({"trial_id": "03", "status": "FAILED", "size_bits": "", "val_psnr": ""})
    columns = ["trial_id", "status", "size_bits", "val_psnr"]
    with open(tmp_path / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.chmod(tmp_path / "trials.csv", 0o644)
    pareto.update_run(tmp_path)
    first = (tmp_path / "trials.csv").read_text()
    with open(tmp_path / "trials.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["pareto"] for r in written] == ["true", "true", "false", "false"]
    assert list(written[0]) == columns + ["pareto"]
    with open(tmp_path / "pareto.csv", newline="") as f:
        front = list(csv.DictReader(f))
    assert [r["trial_id"] for r in front] == ["01", "00"]  # sorted by size
    # Idempotent: a second run changes nothing (no second pareto column), leaves no temp file,
    # and keeps the file readable by others.
    pareto.update_run(tmp_path)
    assert (tmp_path / "trials.csv").read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto.csv", "trials.csv"]
    assert os.stat(tmp_path / "trials.csv").st_mode & 0o044
