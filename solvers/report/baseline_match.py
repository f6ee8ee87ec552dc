"""Which uniform baselines a run's report compares with: the set of <results>/baselines/*/ whose
baselines.yaml matches the run's run.yaml (or one given with --baselines, and how it differs), and
the YAML/CSV readers that report_md shares. Kept apart from report_md so that module stays short."""
import glob
import os

from solvers import files
from solvers.config import ConfigError
from solvers.report import pareto
from solvers.search import baselines as uniform


class ReportError(ConfigError):
    """A missing or unreadable run folder or file (one-line message naming the option and path)."""


def read_baselines(path):
    """Rows of baselines.csv, or None when there is no such file (not made yet)."""
    if not path or not os.path.isfile(path):
        return None
    columns, rows = pareto.read_csv(path)
    missing = [c for c in ("label", "size_bits", "val_psnr") if c not in columns]
    if missing:
        raise ReportError(f"--baselines: {path}: missing columns {', '.join(missing)}")
    return rows


def _set_settings(path):
    """A set's baselines.yaml, or None when it is missing or unreadable (settings unknown)."""
    try:
        return files.read_yaml(path, missing=None)
    except ConfigError:
        return None


def find_baselines(run, baselines_csv=None):
    """Which uniform baselines the verdict compares with, as a dict for report_text.verdict:
    path (a baselines.csv, or None: no baseline is compared or plotted) and explicit (given with
    --baselines). Given one, difference is the first (key, its value, the run's value) where its
    baselines.yaml differs from the run (solvers/search/baselines.py: MATCH_KEYS), None when equal,
    "unknown" when it has no readable baselines.yaml. Otherwise the set of <results>/baselines/*/
    (results: the run folder's parent) whose baselines.yaml matches, the one with the most rows
    and then the newest if several do; when none does, path None and folder, found (sets there),
    unrecorded (sets without baselines.yaml, which never match), closest (the set with the fewest
    differences: name and first difference) for the verdict's words."""
    wanted = uniform.run_settings_key(run["settings"])
    if baselines_csv is not None:
        path = os.fspath(baselines_csv)
        saved = _set_settings(os.path.join(os.path.dirname(path), "baselines.yaml"))
        diffs = None if saved is None else uniform.differences(saved, wanted)
        return {"path": path, "explicit": True,
                "difference": "unknown" if diffs is None else (diffs or [None])[0]}
    folder = os.path.join(os.path.dirname(os.path.normpath(run["dir"])), "baselines")
    sets = sorted({os.path.dirname(p) for name in ("baselines.csv", "baselines.yaml")
                   for p in glob.glob(os.path.join(glob.escape(folder), "*", name))})
    matching, others, unrecorded = [], [], 0
    for set_dir in sets:
        saved, csv_path = _set_settings(os.path.join(set_dir, "baselines.yaml")), \
            os.path.join(set_dir, "baselines.csv")
        if saved is None:
            unrecorded += 1
            continue
        diffs = uniform.differences(saved, wanted)
        if diffs:
            others.append((len(diffs), os.path.basename(set_dir), diffs[0]))
        elif os.path.isfile(csv_path):
            matching.append(csv_path)
    if matching:
        best = max(matching, key=lambda p: (len(read_baselines(p) or []), os.path.getmtime(p)))
        return {"path": best, "explicit": False, "difference": None, "matching": len(matching)}
    return {"path": None, "explicit": False, "folder": folder, "found": len(sets),
            "unrecorded": unrecorded, "closest": min(others)[1:] if others else None}
