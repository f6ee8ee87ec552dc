"""A sensitivity table's provenance: what make sensitivity records beside its numbers
(sensitivity.yaml), and the check a search makes before deriving starting points from them.

What must match the run, and why (README, "Sensitivity"):
- the scale, and the data (source, LR folder, DIV2K root, training and validation image counts,
  split version): the probes were fine-tuned and scored on those images;
- the quantizer string of each (kind, width) that both the table and the run's config have: a
  drop measured for one quantizer says nothing of another at the same width;
- for a run that starts from a float model (--float-model), that file's sha256: the probes
  started from the float weights the table names;
- sensitivity.csv's sha256, as sensitivity.yaml recorded it: otherwise the record does not
  describe these numbers (a table from before the record existed fails here too).
Not compared: the config's path, limit and objective (each probe quantizes one quantizer whatever
the limit allows), the seed and the fine-tune settings, and a run from scratch's float model (it
has none; the table then only ranks the layers).
"""
import csv
import hashlib
import os
from collections import namedtuple

import yaml

from solvers.config_base import ConfigError

# The data options a table depends on (sources.DATA_KEYS but test_images: it never reads the test
# images), and the split version (sources.SPLIT_VERSION) that decides which image is which.
COMPARED_DATA_KEYS = ("data", "lr_data", "div2k_root", "train_images", "val_images", "split")
# A table a search uses: its path, run.yaml's record of it, and the differences from the run that
# --allow-sensitivity-mismatch accepted (none otherwise).
Table = namedtuple("Table", "path record accepted")
# The table's value of a key its sensitivity.yaml lacks (None is a value: val_images None = all).
NOT_RECORDED = "not recorded (a table from before make sensitivity recorded its provenance)"
HINT = ("re-run make sensitivity with this run's settings, or search without it: SENSITIVITY=none "
        "(--sensitivity none); to use it anyway: SENSITIVITY=path ALLOW_SENSITIVITY_MISMATCH=1 "
        "(--sensitivity PATH --allow-sensitivity-mismatch)")


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_record(path, space):
    """The config's part of sensitivity.yaml: its quantizer sections and its limit as written."""
    with open(path) as f:
        limit = (yaml.safe_load(f) or {}).get("limit")
    return {"quantizers": {kind: dict(getattr(space, kind))
                           for kind in ("kernel", "bias", "activation")}, "limit": limit}


def read_record(csv_path):
    """sensitivity.yaml beside `csv_path` as a dict; ConfigError naming it when missing or bad."""
    path = os.path.join(os.path.dirname(csv_path), "sensitivity.yaml")
    try:
        with open(path) as f:
            record = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: cannot read the sensitivity table's record "
                          f"({str(e).splitlines()[0]}); {HINT}") from None
    return record if isinstance(record, dict) else {}


def _measured_quantizers(csv_path):
    """{(kind, bits): sorted quantizer strings} of the table's rows."""
    found = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            found.setdefault((row["kind"], int(row["bits"])), set()).add(row["quantizer"])
    return {key: sorted(strings) for key, strings in found.items()}


def _data_value(key, value):
    if key == "data" and value is None:
        return "skimage"  # what None means (sources.load_pairs)
    return os.path.normpath(value) if isinstance(value, str) else value  # photos/ = photos


def differences(csv_path, record, scale, data, space, float_model=None):
    """[(file, key, the table's value, this run's value)] where the table does not fit the run,
    csv integrity first (its other checks mean nothing without it). data: the run's
    sources.data_options plus split; float_model: the run's --float-model, or None."""
    yaml_path = os.path.join(os.path.dirname(csv_path), "sensitivity.yaml")
    actual = sha256_of(csv_path)
    if record.get("csv_sha256") != actual:
        return [(yaml_path, "csv_sha256", record.get("csv_sha256", NOT_RECORDED), actual)]
    found = []
    if record.get("scale") != scale:
        found.append((yaml_path, "scale", record.get("scale", NOT_RECORDED), scale))
    measured_on = record.get("data") or {}
    for key in COMPARED_DATA_KEYS:
        old = _data_value(key, measured_on[key]) if key in measured_on else NOT_RECORDED
        new = _data_value(key, data.get(key))
        if old != new:
            found.append((yaml_path, f"data.{key}", old, new))
    for (kind, bits), strings in _measured_quantizers(csv_path).items():
        ours = sorted(q for q, b in getattr(space, kind, {}).items() if b == bits)
        if ours and ours != strings:
            found.append((csv_path, f"quantizers.{kind}.{bits} bits", " ".join(strings),
                          " ".join(ours)))
    if float_model is not None and os.path.isfile(float_model):  # missing: load_float_weights says so
        digest = sha256_of(float_model)
        if record.get("float_model_sha256") != digest:
            found.append((yaml_path, "float_model_sha256",
                          record.get("float_model_sha256", NOT_RECORDED),
                          f"{digest[:12]} ({float_model})"))
    return found


def describe(difference):
    """One difference as words: `key = <the table's value> in the table, <the run's> in this run`
    (hashes cut to 12 characters, long values to 80)."""
    _, key, old, new = difference
    return f"{key} = {_short(old)} in the table, {_short(new)} in this run"


def refusal(found):
    """The ConfigError for a table that does not fit: file, key and both values of the first
    difference, how many more, and what to do."""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return ConfigError(f"{found[0][0]}: the sensitivity table does not fit this run: "
                       f"{describe(found[0])}{more}; {HINT}")


def run_record(csv_path, record, found=()):
    """run.yaml's `sensitivity`: the table, its hash, and what it was measured on and with; the
    differences a --allow-sensitivity-mismatch run accepted, when any."""
    return {"table": csv_path, "csv_sha256": sha256_of(csv_path), "scale": record.get("scale"),
            "data": record.get("data"),
            "config": {"path": record.get("config"), "quantizers": record.get("quantizers"),
                       "limit": record.get("limit")},
            "float_model": {"path": record.get("float_model"),
                            "sha256": record.get("float_model_sha256")},
            **({"accepted_differences": [describe(d) for d in found]} if found else {})}


def _short(value, limit=80):
    text = value[:12] if isinstance(value, str) and _is_hash(value) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_hash(text):
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
