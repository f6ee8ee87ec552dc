"""A run's folder: the settings that define it (run.yaml), and the checks that keep one folder to
one search: a continuation, a worker or a baseline set with other settings is refused with one line
naming the first difference."""
import os
import time

from solvers import files
from solvers.config import ConfigError


def run_name(args):
    """The run's name: --run, else the algorithm (+ _pretrained when starting from a float model)."""
    return args.run or args.algo + ("_pretrained" if args.float_model else "")


# What must not change between a run and its continuation (versions and paths may).
RESUME_KEYS = ("algo", "profile", "settings", "seed", "scale", "learning_rate", "float_model",
               "data", "objective", "search_space", "tune_filters")
# A continuation must also derive its starting points from the same sensitivity table (run.yaml's
# `sensitivity` record: path and hashes), or run.yaml would describe a table the run did not use.
# Not a worker's check: workers never read the table (the chief's oracle hands out the points).
CONTINUE_KEYS = RESUME_KEYS + ("sensitivity",)


def differences(saved, wanted, keys, prefix=""):
    """[(dotted key, saved value, wanted value)] of the settings that differ, in `keys` order,
    looking inside mappings so that a key names e.g. settings.epochs or data.data; [] if equal."""
    found = []
    for key in keys:
        # A tuple (goal.input_hw) reads back from YAML as a list: the same setting.
        old, new = (_plain((saved or {}).get(key)), _plain((wanted or {}).get(key)))
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            found += differences(old, new, list(dict.fromkeys([*old, *new])), f"{prefix}{key}.")
        else:
            found.append((f"{prefix}{key}", old, new))
    return found


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def first_difference(saved, wanted, keys):
    """The first of `differences`, or None."""
    return next(iter(differences(saved, wanted, keys)), None)


def prepare_run_dir(run_dir, tb_dir, settings, fresh=False):
    """Makes results/<RUN> ready: continues an earlier run with the same settings, refuses one
    with different settings (one line naming the first difference), or with `fresh` moves the
    old run and its TensorBoard logs aside (never deleting them). Writes run.yaml."""
    path = os.path.join(run_dir, "run.yaml")
    if fresh and os.path.exists(run_dir):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for folder in (run_dir, tb_dir):
            if os.path.exists(folder):
                os.replace(folder, f"{folder}.old-{stamp}")
                print(f"FRESH=1: moved {folder} to {folder}.old-{stamp}")
    elif os.path.exists(path):
        diff = first_difference(files.read_yaml(path), settings, CONTINUE_KEYS)
        if diff:
            key, old, new = diff
            raise ConfigError(
                f"{path}: this run was started with {key} = {short(old)}, now {short(new)}; "
                "use another RUN, or FRESH=1 to start over")
        print(f"continuing the run in {run_dir} (FRESH=1 starts over)")
    os.makedirs(run_dir, exist_ok=True)
    files.write_yaml(path, settings)


CHIEF_WAIT = 600  # seconds a worker waits for the chief's run.yaml


def check_worker_settings(run_dir, settings, wait=CHIEF_WAIT):
    """A worker's settings must be the chief's (run.yaml, which the chief writes before serving
    its oracle): a worker with other EPOCHS or DATA would feed the search incomparable trials.
    Waits for run.yaml (a worker may start before its chief); ConfigError naming the first
    difference, or when no run.yaml appears."""
    path = os.path.join(run_dir, "run.yaml")
    deadline = time.monotonic() + wait
    if not os.path.exists(path):
        print(f"waiting for the chief's {path}", flush=True)
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise ConfigError(f"{path}: not written by a chief within {wait} s; start `make "
                              "chief` first, with the same RUN and results folder")
        time.sleep(1)
    diff = first_difference(files.read_yaml(path), settings, RESUME_KEYS)
    if diff:
        key, old, new = diff
        raise ConfigError(f"{path}: the chief runs this search with {key} = {short(old)}, this "
                          f"worker was started with {short(new)}; start the worker with the "
                          "chief's variables")


def short(value, limit=80):
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
