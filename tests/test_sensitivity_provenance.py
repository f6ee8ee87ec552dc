"""A search's sensitivity table and its provenance (run.sensitivity_table, autoq.py --sensitivity,
solvers/search/sensitivity_provenance.py): the default table is used when it was measured for this
run, and run.yaml records where it came from; a table measured on other data, at another scale,
with other quantizers, from another float model, edited, or from before its provenance was
recorded is refused with one error line; a table the user names is checked alike, and used anyway
only with --allow-sensitivity-mismatch, with a warning line per difference. The tables are
written by make sensitivity's own writer (sensitivity.write_outputs), from synthetic rows."""
import hashlib
import shutil

import pytest
import yaml

import autoq
from conftest import REPO
from solvers import run
from solvers.config import ConfigError, load_search_space
from solvers.networks.base7 import layer_names
from solvers.search import sensitivity, starting_points
from solvers.search.space import search_choices

CONFIG = str(REPO / "quantization_config.yaml")
DATA = "/data/my photos"  # never read: the checks compare settings, not images


def _sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _measure_into(folder, float_model, *options):
    """sensitivity.csv/.yaml as `make sensitivity --float-model F OPTIONS` writes them, with a
    few synthetic rows (the quantizers of the shipped config) instead of measured ones."""
    args = sensitivity.parse_args(["--float-model", str(float_model), "--data", DATA,
                                   "--config", CONFIG, *options])
    space = load_search_space(CONFIG)
    rows = [{"layer": layer, "kind": kind, "bits": bits, "quantizer": q, "val_psnr": 30.0,
             "psnr_drop": 0.1 * (8 - bits), "seconds": 1.0}
            for layer, kind in (("conv_0", "kernel"), ("conv_0", "bias"), ("act_0", "activation"))
            for q, bits in getattr(space, kind).items() if bits in (2, 4, 8)]
    settings = {"float_model": str(float_model), "scale": args.scale, "seed": args.seed,
                **sensitivity.provenance_of(args, space), "config": CONFIG, "finetune_steps": 0,
                "float_val_psnr": 30.0}
    folder.mkdir(parents=True, exist_ok=True)
    sensitivity.write_outputs(str(folder), rows, settings)
    return folder / "sensitivity.csv"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A float model file (only its bytes matter here) and a table measured from it."""
    folder = tmp_path_factory.mktemp("measured")
    float_model = folder / "float_model.keras"
    float_model.write_bytes(b"float model A")
    return float_model, _measure_into(folder / "sensitivity", float_model)


@pytest.fixture
def results(tmp_path, measured):
    """A results folder holding that table where a search looks by default."""
    shutil.copytree(measured[1].parent, tmp_path / "results" / "sensitivity")
    return tmp_path / "results"


def _args(results, *options):
    return autoq.parse_args(["--algo", "random", "--results-dir", str(results), "--data", DATA,
                             *options])


def _settings(args):
    """run.yaml's contents for these options (run.run_settings, as search_setup calls it)."""
    conv, act = layer_names()
    space = load_search_space(args.config, conv + act)
    return run.run_settings(args, "random", run.profile_settings(args), space,
                            search_choices(space, conv, act, args.config))


def _starting_points(args, monkeypatch):
    """(the table run.starting_points_of hands to for_search, the points' count), for_search
    itself replaced (test_starting_points covers it)."""
    given = []
    monkeypatch.setattr(starting_points, "plan",
                        lambda space, choices, filters, scale, table=None, **kwargs: given.append(
                            table) or starting_points.Plan([("uniform 8-bit", {})], {}, []))
    conv, act = layer_names()
    space = load_search_space(args.config, conv + act)
    points = run.starting_points_of(args, space, search_choices(space, conv, act), None)
    return (given or [None])[0], len(points)


def test_a_matching_default_table_is_used_and_run_yaml_records_its_provenance(
        results, measured, tmp_path, monkeypatch, capsys):
    float_model, _ = measured
    table = results / "sensitivity" / "sensitivity.csv"
    record = _settings(_args(results))["sensitivity"]
    assert record["table"] == str(table)
    assert record["csv_sha256"] == _sha256(table)
    assert record["data"]["data"] == DATA and record["scale"] == 3
    assert record["config"]["path"] == CONFIG
    assert record["config"]["quantizers"]["activation"]["quantized_relu(2,8)"] == 2
    assert record["config"]["limit"] == {"Conv2D": {"bias": ["quantized_bits(8,0,alpha=1.0)"]}}
    assert record["float_model"] == {"path": str(float_model), "sha256": _sha256(float_model)}
    assert "accepted_differences" not in record
    yaml.safe_dump(record)  # run.yaml is written with safe_dump: plain types only
    assert _starting_points(_args(results), monkeypatch) == (str(table), 1)
    assert "warning" not in capsys.readouterr().out
    # A search from the same float model, even under another path (a copy), fits it too.
    copy = tmp_path / "copy.keras"
    shutil.copy(float_model, copy)
    assert "sensitivity" in _settings(_args(results, "--float-model", str(copy)))


def _edit_csv(results):
    path = results / "sensitivity" / "sensitivity.csv"
    text = path.read_bytes()
    path.write_bytes(text.replace(b",0.4,", b",0.0,", 1))  # one drop changed by hand
    assert path.read_bytes() != text


def _from_before_provenance(results):
    path = results / "sensitivity" / "sensitivity.yaml"
    record = yaml.safe_load(path.read_text())
    for key in ("csv_sha256", "float_model_sha256", "quantizers", "limit"):
        del record[key]
    del record["data"]["split"]
    path.write_text(yaml.safe_dump(record))


def _other_quantizers(tmp_path):
    config = tmp_path / "q.yaml"  # 2-bit activations over [0, 64) instead of [0, 256)
    config.write_text((REPO / "quantization_config.yaml").read_text().replace(
        '"quantized_relu(2,8)": 2', '"quantized_relu(2,6)": 2'))
    return ["--config", str(config)]


def _other_float_model(tmp_path):
    other = tmp_path / "other.keras"
    other.write_bytes(b"float model B")
    return ["--float-model", str(other)]


# (options of the search or a change to the table, the file named, the key, the table's value)
MISMATCHES = {
    "data": (["--data", "div2k"], "sensitivity.yaml", "data.data", DATA),
    "validation images": (["--val-images", "4"], "sensitivity.yaml", "data.val_images", "None"),
    "scale": (["--scale", "4"], "sensitivity.yaml", "scale", "3"),
    "quantizers": (_other_quantizers, "sensitivity.csv", "quantizers.activation.2 bits",
                   "quantized_relu(2,8)"),
    "float model": (_other_float_model, "sensitivity.yaml", "float_model_sha256", None),
    "csv edited": (_edit_csv, "sensitivity.yaml", "csv_sha256", None),
    "before provenance": (_from_before_provenance, "sensitivity.yaml", "csv_sha256",
                          "not recorded (a table from before make sensitivity recorded"),
}


def _mismatch(name, results, tmp_path):
    """The search options of one MISMATCHES case, the table changed where the case says so."""
    change = MISMATCHES[name][0]
    if isinstance(change, list):
        return change
    if change in (_edit_csv, _from_before_provenance):
        change(results)
        return []
    return change(tmp_path)


@pytest.mark.parametrize("name", list(MISMATCHES))
def test_a_default_table_that_does_not_fit_is_refused(name, results, tmp_path):
    _, file, key, old = MISMATCHES[name]
    options = _mismatch(name, results, tmp_path)
    with pytest.raises(ConfigError) as refused:
        _settings(_args(results, *options))
    message = str(refused.value)
    assert message.startswith(f"{results / 'sensitivity' / file}: the sensitivity table does "
                              f"not fit this run: {key} = "), message
    assert old is None or f"= {old}" in message, message
    assert "re-run make sensitivity" in message and "\n" not in message


def test_a_refusal_is_one_error_line_and_touches_nothing(results, tmp_path, capsys):
    status = autoq.main(["--algo", "random", "--results-dir", str(results), "--data", "div2k",
                         "--tb-dir", str(tmp_path / "tb"), "--run", "r"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: {results / 'sensitivity' / 'sensitivity.yaml'}: the "
                             f"sensitivity table does not fit this run: data.data = {DATA} in "
                             "the table, div2k in this run"), err
    assert not (results / "r").exists() and not (tmp_path / "tb").exists()


def test_a_named_table_is_checked_alike_and_used_only_with_the_override(
        results, measured, monkeypatch, capsys):
    _, table = measured  # outside the results folder, named with --sensitivity
    with pytest.raises(ConfigError, match="data.data"):
        _settings(_args(results, "--sensitivity", str(table), "--data", "div2k"))
    args = _args(results, "--sensitivity", str(table), "--data", "div2k", "--val-images", "4",
                 "--allow-sensitivity-mismatch")
    record = _settings(args)["sensitivity"]
    assert record["table"] == str(table)
    assert record["accepted_differences"] == [
        f"data.data = {DATA} in the table, div2k in this run",
        "data.val_images = None in the table, 4 in this run"]
    assert _starting_points(args, monkeypatch)[0] == str(table)
    warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert warnings == [f"warning: {table}: used although {difference} "
                        "(--allow-sensitivity-mismatch)"
                        for difference in record["accepted_differences"]]


def test_no_table_when_told_or_not_searching_from_starting_points(results, monkeypatch):
    """--sensitivity none, --no-starting-points and a worker use no table (not even a default
    one that does not fit): nothing refused, nothing recorded."""
    for options in (["--sensitivity", "none"], ["--no-starting-points"],
                    ["--role", "worker", "--oracle", "localhost:8000"]):
        args = _args(results, "--data", "div2k", *options)
        assert "sensitivity" not in _settings(args), options
        assert run.sensitivity_table(args, load_search_space(CONFIG)) is None, options
    assert _starting_points(_args(results, "--data", "div2k", "--sensitivity", "none"),
                            monkeypatch) == (None, 1)
    with pytest.raises(ConfigError, match="--sensitivity: .*missing.csv: no such file"):
        _settings(_args(results, "--sensitivity", str(results / "missing.csv")))


def test_the_override_needs_a_named_table(capsys):
    for options in ([], ["--sensitivity", "none"]):
        with pytest.raises(SystemExit) as stopped:
            autoq.parse_args(["--allow-sensitivity-mismatch", *options])
        assert stopped.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [("error: autoq.py: --allow-sensitivity-mismatch needs --sensitivity "
                        "PATH: name the table to use")]
