"""solvers.bench.profile_ops: the op-stats table is summed right; a capture really holds a profile."""
import json
import os

import pytest
import tensorflow as tf

from solvers.bench import profile_ops
from solvers.bench.speed import fixed_quantizers


def gviz_table(rows):
    """A framework_op_stats-shaped table: (type, self time in us) rows, plus unrelated columns."""
    cols = [{"id": "rank"}, {"id": "type"}, {"id": "operation"}, {"id": "total_self_time"}]
    return [{"cols": cols, "rows": [{"c": [{"v": i}, {"v": t}, {"v": f"op{i}"}, {"v": us}]}
                                    for i, (t, us) in enumerate(rows)]}]


def test_self_time_is_summed_per_type_and_per_step_largest_first():
    table = gviz_table([("Conv", 3000.0), ("Relu", 500.0), ("Conv", 1000.0), ("IDLE", 2000.0),
                        ("Empty", None)])
    got = profile_ops.self_time_by_type(table, steps=2)
    assert got == {"Conv": 2.0, "IDLE": 1.0, "Relu": 0.25, "Empty": 0.0}  # ms per step
    assert list(got) == ["Conv", "IDLE", "Relu", "Empty"]
    assert profile_ops.self_time_by_type(table[0], steps=1)["Conv"] == 4.0  # a bare table too


def test_capture_writes_an_xplane_of_the_profiled_steps(tmp_path):
    model = profile_ops.build("quant", fixed_quantizers())
    x = tf.random.uniform((2, 8, 8, 3), 0, 255, seed=1)
    y = tf.random.uniform((2, 24, 24, 3), 0, 255, seed=1)
    path, wall = profile_ops.capture(model, x, y, 2, str(tmp_path / "quant"))
    assert path.endswith(".xplane.pb") and os.path.getsize(path) > 1000 and wall > 0


def test_main_profiles_every_variant_or_says_xprof_is_missing(tmp_path, capsys):
    out = tmp_path / "profile"
    code = profile_ops.main(["--patch", "8", "--batch", "2", "--steps", "2", "--out", str(out)])
    try:
        import xprof  # noqa: F401
    except ImportError:
        assert code == 2
        assert capsys.readouterr().err == "error: xprof is not installed; `make profile-ops` installs it\n"
        return
    assert code == 0
    result = json.loads((out / "profile.json").read_text())
    assert set(result["variants"]) == set(profile_ops.VARIANTS)
    for variant in result["variants"].values():
        assert variant["ms_per_step"] and all(v >= 0 for v in variant["ms_per_step"].values())
    # the quantized step runs the fused op, qkeras' does not
    assert "QuantizeAndDequantizeV4" in result["variants"]["quant"]["ms_per_step"]
    assert "QuantizeAndDequantizeV4" not in result["variants"]["quant_qkeras"]["ms_per_step"]


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--patch", "0"]])
def test_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as e:
        profile_ops.main(bad)
    assert e.value.code == 2
