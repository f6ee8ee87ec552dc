"""make profile-ops: where a train step's time goes, by TensorFlow op type, from TensorFlow's profiler.

`python -m solvers.bench.profile_ops [--patch 64] [--batch 16] [--steps 10] [--out results/profile]`
captures --steps train steps (after warm-up) of three base7 variants: float32, quantized as the
tool trains it (QReLU), and quantized with qkeras' own quantized_relu. Each capture goes to
<out>/<variant>/ (TensorBoard's Profile tab shows it when the profile plugin is installed). Then
xprof, the profiler's back end (`make profile-ops` installs it, pinned, in the venv), turns each
capture into per-op statistics; the self time of every op type is summed per step and printed
side by side, and written to <out>/profile.json.

Self time is summed over TensorFlow's threads: on 2 cores a step's total is up to twice its wall
time, and IDLE is the time the threads spent waiting for work.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import time
from collections import Counter

import solvers  # noqa: F401  (first: TensorFlow, when imported, starts quietly)
import tensorflow as tf
from qkeras import QActivation

from solvers import c_stderr_silenced, files
from solvers.bench.speed import fixed_quantizers, make_model
from solvers.networks.fast_relu import QReLU

VARIANTS = ("float", "quant", "quant_qkeras")
SEED = 1


def build(variant, quantizers):
    """The compiled model of one variant, as make bench builds it."""
    if variant == "float":
        return make_model(None, False)
    return make_model(quantizers, False, QActivation if variant == "quant_qkeras" else QReLU)


def capture(model, x, y, steps, logdir):
    """Profiles `steps` train steps (after 3 unprofiled ones); returns (xplane path, wall s/step)."""
    for _ in range(3):
        model.train_on_batch(x, y)
    shutil.rmtree(logdir, ignore_errors=True)
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    wall = (time.perf_counter() - start) / steps
    tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    return paths[0], wall


def self_time_by_type(op_stats, steps):
    """{op type: self time in ms per step} from xprof's framework_op_stats (a Google
    Visualization table, or a list whose first item is one), largest first."""
    table = op_stats[0] if isinstance(op_stats, list) else op_stats
    columns = [c["id"] for c in table["cols"]]
    totals = Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]]))
        totals[cells["type"]] += (cells["total_self_time"] or 0.0) / 1e3 / steps  # us -> ms
    return dict(totals.most_common())


def op_stats(xplane_path):
    """xprof's framework_op_stats of one capture, parsed from its JSON."""
    from xprof.convert import raw_to_tool_data  # optional: installed by `make profile-ops`
    with c_stderr_silenced():  # xprof logs every conversion stage at INFO level
        data, _ = raw_to_tool_data.xspace_to_tool_data([xplane_path], "framework_op_stats", {})
    if not data:
        raise RuntimeError(f"xprof could not read {xplane_path}")
    return json.loads(data)


def print_table(result, rows=14):
    """The op types with the most self time in any variant, in ms per step, one column each."""
    types = sorted({t for v in result["variants"].values() for t in v["ms_per_step"]},
                   key=lambda t: -max(v["ms_per_step"].get(t, 0.0)
                                      for v in result["variants"].values()))
    print(f"\nself time per train step (ms, summed over threads), batch {result['batch']} of "
          f"{result['patch']}x{result['patch']} LR patches, {result['steps']} steps profiled\n")
    print(f"{'op type':<40}" + "".join(f"{v:>14}" for v in result["variants"]))
    for t in types[:rows]:
        print(f"{t:<40}" + "".join(f"{v['ms_per_step'].get(t, 0.0):>14.2f}"
                                   for v in result["variants"].values()))
    print(f"{'total (all op types)':<40}" + "".join(
        f"{sum(v['ms_per_step'].values()):>14.2f}" for v in result["variants"].values()))
    print(f"{'wall time per step':<40}" + "".join(
        f"{v['wall_ms_per_step']:>14.2f}" for v in result["variants"].values()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=64, help="LR patch side (the upstream project's: 64)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps per variant")
    parser.add_argument("--out", default="results/profile")
    args = parser.parse_args(argv)
    if min(args.patch, args.batch, args.steps) < 1:
        parser.error("--patch, --batch and --steps must be at least 1")
    try:
        import xprof.convert.raw_to_tool_data  # noqa: F401
    except ImportError:
        print("error: xprof is not installed; `make profile-ops` installs it", file=sys.stderr)
        return 2
    x = tf.random.uniform((args.batch, args.patch, args.patch, 3), 0, 255, seed=SEED)
    hr = args.patch * 3
    y = tf.random.uniform((args.batch, hr, hr, 3), 0, 255, seed=SEED)
    quantizers = fixed_quantizers()
    result = {"batch": args.batch, "patch": args.patch, "steps": args.steps, "variants": {}}
    for variant in VARIANTS:
        path, wall = capture(build(variant, quantizers), x, y, args.steps,
                             os.path.join(args.out, variant))
        result["variants"][variant] = {
            "wall_ms_per_step": wall * 1e3, "capture": path,
            "ms_per_step": self_time_by_type(op_stats(path), args.steps)}
    print_table(result)
    files.write_json(path := os.path.join(args.out, "profile.json"), result)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
