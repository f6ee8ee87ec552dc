"""Atomic writes: every file this tool writes goes to a temporary file in the same folder and is
renamed over its final name, so a kill never leaves half a file (or half a model) under that name,
and a reader never sees one. One helper for text, YAML, JSON, CSV, copies and Keras models; and the
one YAML reader (configs, run.yaml, summary.yaml, baselines.yaml, sensitivity.yaml)."""
import json
import os
import shutil

import yaml

from solvers.config_base import ConfigError

_REQUIRED = object()


def read_yaml(path, missing=_REQUIRED, expected="a YAML mapping"):
    """The mapping the YAML file at `path` holds. A missing file gives `missing` when one is
    passed (None: "not written yet"), else an error; an unreadable file, YAML that does not parse
    (with its line) or a document that is not a mapping (`expected` says what should be there)
    raise ConfigError naming the file."""
    if missing is not _REQUIRED and not os.path.isfile(path):
        return missing
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ConfigError(f"{path}: not valid YAML{line}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return data


def _tmp(path, suffix=".tmp"):
    # Same folder (os.replace is atomic only within a file system); the pid keeps two processes
    # writing the same file from sharing a temporary. Not mkstemp: its 0600 mode would stick.
    return f"{path}.{os.getpid()}{suffix}"


def write_atomic(path, write, newline=None):
    """Calls write(f) on a text file opened for `path`'s temporary, then renames it to `path`."""
    tmp = _tmp(path)
    try:
        with open(tmp, "w", newline=newline) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    write_atomic(path, lambda f: f.write(text))


def write_yaml(path, document):
    write_atomic(path, lambda f: yaml.safe_dump(document, f, sort_keys=False))


def write_json(path, document):
    write_atomic(path, lambda f: json.dump(document, f, indent=2))


def write_csv(path, columns, rows, extrasaction="raise"):
    """A CSV with a header of `columns`; rows are dicts (missing keys: empty cells; other keys:
    an error, or left out with extrasaction="ignore")."""
    import csv

    def write(f):
        writer = csv.DictWriter(f, fieldnames=list(columns), restval="",
                                extrasaction=extrasaction)
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, write, newline="")


def copy(source, path):
    tmp = _tmp(path)
    shutil.copyfile(source, tmp)
    os.replace(tmp, path)


def save_model(model, path):
    """model.save through a temporary .keras file (Keras wants that suffix) and a rename."""
    tmp = _tmp(path[: -len(".keras")], ".tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
