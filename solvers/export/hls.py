"""hls4ml itself: its configuration for the rewritten base7, conversion to a project, the C++
compiler check and the one resource estimate hls4ml makes without vendor tools.

hls4ml is an optional dependency (requirements-export.txt, installed by the first `make export`),
so it is imported only here and only when called.
"""
import contextlib
import io
import os
import shutil

from solvers.export.graph import ExportError

BACKENDS = ("Vitis", "Vivado")  # the backends whose C simulation needs only g++
IO_TYPES = ("io_stream", "io_parallel")
# Written but not C-simulated: an io_parallel design unrolls a whole frame into one function, and
# its g++ build of base7 was not seen to finish when tried by hand. Nothing here measures it, so
# the reason given carries no figure; io_stream is the IO type this command verifies.
UNVERIFIED = {"io_parallel": "this command runs the C simulation of io_stream designs only; the "
                             "io_parallel project is written but its C simulation is not run"}


def hls4ml():
    try:
        import hls4ml as module
    except ImportError:
        raise ExportError("hls4ml: not installed; `make export` installs it "
                          "(pip install -r requirements-export.txt)") from None
    return module


@contextlib.contextmanager
def quiet(log):
    """hls4ml prints every layer it parses, and on stderr that da4ml (an extra we do not use) is
    missing: both go to the text stream `log` (hls4ml.log)."""
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def check_compiler():
    """The C simulation builds the design with g++ (hls4ml's build_lib.sh)."""
    if shutil.which("g++") is None:
        raise ExportError("g++: not found on PATH; the C simulation needs it "
                          "(e.g. apt install g++)")


def config(graph, types, reuse=1, trace=False):
    """hls4ml's per-layer configuration of `graph` with the exact types of `types`
    ({layer: {kind: FixedType}}); reuse: every layer's reuse factor (multipliers = weights /
    reuse)."""
    with quiet(io.StringIO()):
        cfg = hls4ml().utils.config_from_keras_model(graph, granularity="name",
                                                     default_reuse_factor=reuse)
    cfg["Model"]["ReuseFactor"] = reuse
    for name, kinds in types.items():
        layer = cfg["LayerName"].setdefault(name, {})
        layer.setdefault("Precision", {}).update({k: t.hls() for k, t in kinds.items()})
        layer["Trace"] = trace
    return cfg


def check_choices(backend, io_type):
    if backend not in BACKENDS:
        raise ExportError(f"BACKEND: {backend!r} is not one of {', '.join(BACKENDS)} (the "
                          "backends whose C simulation needs only g++)")
    if io_type not in IO_TYPES:
        raise ExportError(f"IO: {io_type!r} is not one of {', '.join(IO_TYPES)}")


def convert(graph, cfg, out_dir, backend, io_type, log, testbench=(None, None)):
    """The hls4ml model (project files written to out_dir, not compiled); hls4ml's printed
    output goes to the text stream `log`. testbench: (inputs .npy, expected outputs .npy) that
    hls4ml copies into the project's tb_data/ for the vendor's C simulation."""
    check_choices(backend, io_type)
    module = hls4ml()
    with quiet(log):
        model = module.converters.convert_from_keras_model(
            graph, hls_config=cfg, output_dir=os.fspath(out_dir), backend=backend,
            io_type=io_type, input_data_tb=testbench[0], output_data_tb=testbench[1])
        model.write()
    return model


def compile_model(model, log):
    """Builds the C simulation library with g++ (hls4ml's build_lib.sh); its output to `log`."""
    check_compiler()
    with quiet(log):
        model.compile()
    return model


def design_layers(model):
    """[{layer, class, strategy, reuse_factor, weights, weight_type, result_type, multipliers,
    arrays}] read back from the converted hls4ml model: what hls4ml will synthesize. arrays:
    {name: {count, type}} of every constant array the layer stores (a convolution's weight and
    its zero bias, a _scale layer's scale and bias). hls4ml 1.3.0 makes no resource or latency
    estimate without vendor tools (its reports parse Vivado/Vitis synthesis output, and its
    DSP-aware-pruning estimator fails on Keras 3 models: `layer.input_shape`), so these counts
    are what export.md can show."""
    rows = []
    for layer in model.get_layers():
        weight = layer.weights.get("weight") if hasattr(layer, "weights") else None
        count = int(weight.data_length) if weight is not None else 0
        reuse = int(layer.get_attr("reuse_factor", 1) or 1)
        rows.append({
            "layer": layer.name, "class": layer.class_name,
            "strategy": layer.get_attr("strategy") if count else None,
            "reuse_factor": reuse if count else None, "weights": count,
            "weight_type": str(weight.type.precision.definition_cpp()) if count else None,
            "result_type": str(layer.get_output_variable().type.precision.definition_cpp()),
            # io_stream convolutions compute one output pixel at a time: weights / reuse
            # multipliers, each used reuse times per pixel.
            "multipliers": -(-count // reuse) if count else 0,
            "arrays": {name: {"count": int(w.data_length),
                              "type": str(w.type.precision.definition_cpp())}
                       for name, w in getattr(layer, "weights", {}).items()}})
    return rows
