"""`make export RUN=name [MODEL=path BACKEND= IO= REUSE= SIZE=HxW PHOTOS=n EXPORT_OUT=dir]`: a
run's chosen model as an hls4ml project in results/<RUN>/hls4ml/project/, checked by C simulation
against Keras on the run's validation photos, with export.md and export.json beside it.

The project's frame size (SIZE) defaults to the LR size the run's costs are computed at (its
goal's input_hw), so the design and the costs in export.md describe the same computation.

Exit status: 0 when the design matched Keras on every compared value (or, for io_parallel, when
its C simulation was not run, as the last line says); 1 when it did not: export.md/json are
written and say so, and stderr has one `error:` line naming the first photo, pixel and values
that differ; 2 for a bad input (one `error:` line, nothing written), including validation data
too small to verify the project at SIZE.
"""
import argparse
import io
import os
import sys
import time

import numpy as np

from solvers import config as _config
from solvers import files
from solvers.data import sources
from solvers.evaluate import EvalError, load_model
from solvers.export import graph as hgraph
from solvers.export import hls, report, verify
from solvers.search import cost

MODEL_FILES = ("best_model_retrained.keras", "best_model.keras")  # the chosen model, retrained first


def parse_size(text):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if not (1 <= h <= 4096 and 1 <= w <= 4096):
            raise ValueError
    except ValueError:
        raise hgraph.ExportError(f"SIZE: {text!r} is not HxW, the design's LR frame in pixels "
                                 "(1 to 4096 each), e.g. 64x64") from None
    return h, w


def find_model(run_dir, model_path):
    if model_path:
        return model_path
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(run_dir, name)):
            return os.path.join(run_dir, name)
    raise hgraph.ExportError(f"RUN: {run_dir}: no {' or '.join(MODEL_FILES)} (the search has "
                             "not finished); MODEL=path exports another model")


def goal_of(settings):
    goal = ((settings.get("objective") or {}).get("goal")) or {}
    return cost.Goal(**{**goal, "input_hw": tuple(goal.get("input_hw", cost.Goal().input_hw))})


def validation_pairs(settings, scale, count):
    pairs = sources.recorded_pairs(settings.get("data"), scale)[1]
    return pairs[:count] if count else pairs


def check_verifiable(pairs, crops, size):
    """ExportError unless there is a photo to simulate and one at least SIZE: a check that
    compares nothing would pass anything."""
    if not pairs:
        raise hgraph.ExportError("data: the run has no validation photos, so the C simulation "
                                 "would compare nothing")
    if not crops:
        largest = max(pairs, key=lambda p: p.lr.shape[0] * p.lr.shape[1]).lr.shape[:2]
        raise hgraph.ExportError(
            f"SIZE: no validation photo is {size[0]}x{size[1]} LR or larger, so the project "
            f"could not be run at its own frame size; choose a SIZE that fits one (the largest "
            f"is {largest[0]}x{largest[1]})")


def model_bits(model):
    """{"kernels", "biases"}: the two terms of the model's size_bits (cost.size_bits)."""
    sizes = cost.layer_sizes(model)
    return {"kernels": sum(s.weights * s.kernel_bits for s in sizes),
            "biases": sum(s.biases * s.bias_bits for s in sizes)}


def write_testbench(out_dir, model, crops):
    """(inputs .npy, expected outputs .npy) of the project's testbench: the photo crops and the
    Keras model's outputs on them; (None, None) without crops (hls4ml's default testbench).
    They stay in out_dir/testbench: hls4ml rewrites tb_data/ from them whenever it compiles."""
    if not crops:
        return None, None
    x = np.stack([crop for _, crop in crops]).astype(np.float64)
    tb = os.path.join(out_dir, "testbench")
    os.makedirs(tb, exist_ok=True)
    paths = (os.path.join(tb, "inputs.npy"), os.path.join(tb, "outputs.npy"))
    np.save(paths[0], x)
    np.save(paths[1], verify.keras_residual(model, x).reshape(len(x), -1))
    return paths


def export(args, progress=print):
    """Writes the project and the reports; returns the export.json document."""
    run_dir = args.run_dir
    if not os.path.isdir(run_dir) and not args.model:
        raise hgraph.ExportError(f"RUN: {run_dir}: no such run folder")
    model_path = find_model(run_dir, args.model)
    run_yaml = os.path.join(run_dir, "run.yaml")
    settings = files.read_yaml(run_yaml, missing={})
    hls.hls4ml()  # before any work: the one-line message if it is missing
    hls.check_compiler()
    scale = int(settings.get("scale", 3))
    try:
        model = load_model(model_path, scale, "MODEL")
    except EvalError as e:
        raise hgraph.ExportError(str(e)) from None
    parts = hgraph.describe(model)
    goal = goal_of(settings)
    size = parse_size(args.size) if args.size else tuple(goal.input_hw)
    pairs = validation_pairs(settings, scale, args.photos)
    crops = verify.center_crops(pairs, size)
    skipped = hls.UNVERIFIED.get(args.io)
    if not skipped:
        check_verifiable(pairs, crops, size)
    out_dir = args.out or os.path.join(run_dir, "hls4ml")
    types, bounds = hgraph.layer_types(parts)
    log = io.StringIO()
    started = time.time()
    design = hgraph.hls_graph(parts, size)
    cfg = hls.config(design, types, args.reuse)
    project = hls.convert(design, cfg, os.path.join(out_dir, "project"), args.backend, args.io,
                          log, write_testbench(out_dir, model, crops))
    progress(f"hls4ml project: {os.path.join(out_dir, 'project')} ({args.backend}, {args.io}, "
             f"{size[0]}x{size[1]} LR frame)")
    if skipped:
        results, project_result = [], {"crops": 0}
    else:
        project_result = verify.project_check(project, model, parts, crops, log)
        results = verify.run(model, parts, types, pairs, os.path.join(out_dir, "csim"),
                             args.backend, args.io, args.reuse, log, progress)
    document = report.document(
        model_path=model_path, parts=parts, types=types, bounds=bounds, backend=args.backend,
        io_type=args.io, reuse=args.reuse, size=size, design=hls.design_layers(project),
        results=results, summary=verify.summary(results, project_result, size, skipped),
        project_check=project_result, costs=cost.costs(model, goal), model_bits=model_bits(model),
        goal=goal, seconds=time.time() - started, out_dir=out_dir)
    report.write(out_dir, document, log.getvalue())
    return document


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", required=True, help="results/<RUN>")
    p.add_argument("--model", help="a .keras quantized base7 (default: the run's chosen model)")
    p.add_argument("--backend", default="Vitis", help=f"one of {', '.join(hls.BACKENDS)}")
    p.add_argument("--io", default="io_stream", help=f"one of {', '.join(hls.IO_TYPES)}")
    p.add_argument("--reuse", type=int, default=1, help="reuse factor of every layer")
    p.add_argument("--size", help="HxW LR frame of the project (default: the goal's input_hw)")
    p.add_argument("--photos", type=int, default=0, help="verify on the first n validation "
                   "photos only (0: all)")
    p.add_argument("--out", help="output folder (default: <run-dir>/hls4ml)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.reuse < 1:
            raise hgraph.ExportError(f"REUSE: {args.reuse} is not a reuse factor (1 or more)")
        hls.check_choices(args.backend, args.io)
        document = export(args)
    except _config.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = document["verification"]
    md = os.path.join(document["out_dir"], "export.md")
    if s["skipped"]:
        print(f"C simulation not run ({args.io}): {s['skipped']}; {md}")
        return 0
    if s["failure"]:
        # 1, not 2: the input was fine and the files are written; the design is what is wrong.
        print(f"error: {s['failure']}; {md}", file=sys.stderr)
        return 1
    print(f"C simulation on {s['photos']} validation photos: bit-exact, raw and in 8 bits "
          f"(identical_fraction {s['identical_fraction']:.6f}, max_abs_diff {s['max_abs_diff']:g}, "
          f"before rounding {s['max_abs_diff_raw']:g}); {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
