"""Benchmark: where a search's time goes on this machine, as ratios measured in one run.

`python -m solvers.bench [--smoke] [--repeats N] [--out results/bench]` measures train steps
(quantized vs float32, XLA on vs off), their achieved GFLOP/s against a matmul peak, the input
pipeline vs in-memory tensors, whole-image inference, and the per-trial overhead of a tiny search.
Things compared are timed in turn (A B A B ...), after a warm-up call each, so drift and noise
from other jobs on a shared machine hit both sides alike; only ratios are meant to be compared
across runs. Writes <out>/bench.json: per section the seconds as min/median/max over repeats,
the ratios, and the raw timings they come from ("raw", "per_call"; the search's runs call by call).
"""
import argparse
import functools
import os
import platform
import statistics
import sys
import time

import solvers  # noqa: F401  (first: TensorFlow, when imported, starts quietly)
import keras
import keras_tuner
import numpy as np
import qkeras
import tensorflow as tf
from qkeras import QActivation

from solvers import files, train
from solvers.bench.search_overhead import overhead_parts, run_tiny_search
from solvers.bench.table import print_table
from solvers.data import pipeline, sources
from solvers.config import PROFILES, load_search_space
from solvers.networks.base7 import base7, fold_quantized_weights, layer_names
from solvers.networks.fast_relu import QReLU

tf.get_logger().setLevel("ERROR")  # every model retraces; the retracing warning is expected

SCALE, SEED = 3, 1
# (batch, LR patch) per setting; smoke keeps the same structure with tiny shapes.
FULL = dict(settings={"paper": (16, 64), "quick": (16, 32)}, steps=10, image=(678, 1020),
            matmul=2048, search=(2, 1, 20), pipeline_steps=50, repeats=5)
SMOKE = dict(settings={"paper": (2, 8), "quick": (2, 8)}, steps=2, image=(48, 64),
             matmul=256, search=(1, 1, 2), pipeline_steps=3, repeats=1)
# The fixed mixed assignment, by bit width, looked up in the search space of the config file.
BITS = {"kernel": 4, "bias": 8, "activation": 4}


def stats(values):
    """{min, median, max} of a list of seconds."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def alternate(fns, repeats):
    """{name: [seconds per call]}: every fn called once to warm up (tracing, XLA compiling,
    oneDNN primitive caches), then all called in turn, repeat by repeat (A B A B ...), so a slow
    spell of the shared machine hits every side instead of one."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def section(times, per=1, ratios=()):
    """{"seconds": {name: stats of time/per}, "ratios": {"a/b": median a / median b}}, with the
    raw material: "raw" {name: [seconds of each timed call]} and "per_call" (the steps one call
    runs), so that every statistic and ratio can be checked against the timings it comes from."""
    seconds = {name: stats([t / per for t in ts]) for name, ts in times.items()}
    return {"seconds": seconds, "ratios": {f"{a}/{b}": seconds[a]["median"] / seconds[b]["median"]
                                           for a, b in ratios},
            "raw": {name: list(ts) for name, ts in times.items()}, "per_call": per}


def fixed_quantizers(config="quantization_config.yaml"):
    """base7's quantizers argument: every conv and ReLU at BITS, strings from the config file."""
    space = load_search_space(config)
    pick = {kind: next(q for q, b in getattr(space, kind).items() if b == bits)
            for kind, bits in BITS.items()}
    convs, acts = layer_names()
    return {**{c: {"kernel": pick["kernel"], "bias": pick["bias"]} for c in convs},
            **{a: {"activation": pick["activation"]} for a in acts}}


def make_model(quantizers, jit, activation_layer=QReLU):
    """A compiled base7 (train.compile_model), XLA on or off. Keras falls back to jit off with a
    warning if a layer does not support XLA; the effective value is read back by the caller."""
    keras.utils.set_random_seed(SEED)
    model = train.compile_model(base7(SCALE, quantizers=quantizers,
                                      activation_layer=activation_layer), border=SCALE)
    model.jit_compile = jit  # before the first step: the train function is built lazily
    return model


def bench_train(cfg, quantizers, repeats, peak_gflops):
    """Section 1-2: train_on_batch time per step on fixed random tensors, 4 variants per setting."""
    out = {}
    for name, (batch, patch) in cfg["settings"].items():
        x = tf.random.uniform((batch, patch, patch, 3), 0, 255, seed=SEED)
        y = tf.random.uniform((batch, patch * SCALE, patch * SCALE, 3), 0, 255, seed=SEED)
        models = {f"{kind}{'_xla' if jit else ''}": make_model(q, jit) for jit in (False, True)
                  for kind, q in (("float", None), ("quant", quantizers))}
        # qkeras' own quantized_relu, which QReLU replaces: what the fused op saves.
        models["quant_qkeras"] = make_model(quantizers, False, QActivation)

        def steps(model, x=x, y=y):  # this batch size's tensors, bound now
            for _ in range(cfg["steps"]):
                model.train_on_batch(x, y)
        times = alternate({n: functools.partial(steps, m) for n, m in models.items()}, repeats)
        result = section(times, cfg["steps"], [("quant", "float"), ("quant_qkeras", "float"),
                                                ("quant_xla", "float_xla"),
                                                ("float_xla", "float"), ("quant_xla", "quant")])
        # MACs per LR pixel = the sum of the kernel sizes (42,345); a train step ~ 3 forward
        # passes (forward, gradients wrt activations and wrt weights); quantizer ops not counted.
        macs = sum(int(np.prod(models["float"].get_layer(c).kernel.shape)) for c in layer_names()[0])
        gflop = 3 * 2 * macs * batch * patch ** 2 / 1e9
        gflops = {n: gflop / s["median"] for n, s in result["seconds"].items()}
        out[name] = {"batch": batch, "patch": patch, **result, "gflop_per_step": gflop,
                     "gflop_s": gflops,
                     "peak_fraction": {n: g / peak_gflops for n, g in gflops.items()},
                     "jit_effective": {n: bool(m.jit_compile) for n, m in models.items()}}
    return {"steps_per_repeat": cfg["steps"], "quantizers": quantizers["conv_0"] | quantizers["act_0"],
            "settings": out}


def bench_peak(n, steps, repeats):
    """A float32 n×n @ n×n matmul in a tf.function: this machine's practical GFLOP/s."""
    a, b = tf.random.uniform((n, n), seed=SEED), tf.random.uniform((n, n), seed=SEED + 1)
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))  # the sum forces completion
    result = section(alternate({"matmul": lambda: [matmul().numpy() for _ in range(steps)]},
                               repeats), steps)
    result["n"], result["gflop_s"] = n, 2 * n ** 3 / 1e9 / result["seconds"]["matmul"]["median"]
    return result


def bench_pipeline(cfg, quantizers, train_pairs, repeats):
    """Section 3: model.fit steps/s from pipeline.train_dataset vs the same-shaped tensors in memory."""
    batch, patch = cfg["settings"]["quick"]
    n = cfg["pipeline_steps"]
    real = pipeline.train_dataset(train_pairs, SCALE, patch, batch, SEED)
    x, y = next(iter(real))
    # Prefetched like the real one: unprefetched, even in-memory tensors made a step 25 % slower.
    memory = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(1)
    model = make_model(quantizers, False)  # Keras' "auto" resolves to no XLA on a CPU machine
    model.steps_per_execution = train.execution_steps(n)  # as train.fit runs it
    fit = functools.partial(model.fit, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False)
    times = alternate({"real": functools.partial(fit, real),
                       "memory": functools.partial(fit, memory)}, repeats)
    result = section(times, n, [("real", "memory")])
    result.update(batch=batch, patch=patch, steps_per_fit=n,
                  steps_per_s={k: 1 / s["median"] for k, s in result["seconds"].items()})
    return result


def bench_inference(cfg, quantizers, repeats):
    """Section 4: one forward pass on a whole LR image, the model called directly (eager)."""
    h, w = cfg["image"]
    image = tf.random.uniform((1, h, w, 3), 0, 255, seed=SEED)
    quant = base7(SCALE, quantizers=quantizers)
    # quant_folded: the weights quantized once (what make eval runs), not in every call;
    # quant_qkeras: qkeras' own activation quantizer instead of QReLU's fused op.
    models = {"float": base7(SCALE), "quant": quant,
              "quant_folded": fold_quantized_weights(quant, SCALE),
              "quant_qkeras": base7(SCALE, quantizers=quantizers, activation_layer=QActivation)}
    models["quant_qkeras"].set_weights(quant.get_weights())
    times = alternate({k: functools.partial(lambda m: m(image, training=False).numpy(), m)
                       for k, m in models.items()}, repeats)
    return {"height": h, "width": w, **section(times, 1, [
        ("quant", "float"), ("quant_folded", "float"), ("quant_qkeras", "float")])}


def bench_search(cfg, train_pairs, val_pairs, repeats, quick_step):
    """Section 5: per-trial overhead = (wall - train steps x the step time) / trials, split into
    tracing (each fit's first call beyond its steps), validation and the rest (building, tuner
    bookkeeping, checkpoints, callbacks), each also as a share of one quick-profile trial's
    training (epochs x steps x the step time). The step time is the median per step of the
    search's own later calls (quick_step, train_on_batch's, if every fit made only one call)."""
    trials, epochs, steps = cfg["search"]
    batch, patch = cfg["settings"]["quick"]
    train_ds = pipeline.train_dataset(train_pairs, SCALE, patch, batch, SEED)
    val_ds = pipeline.val_dataset(val_pairs)
    # Nothing to alternate with; the first run warms up (imports, first tuner, oneDNN caches).
    runs = [run_tiny_search(train_ds, val_ds, trials, epochs, steps, SCALE, SEED)
            for _ in range(repeats + 1)][1:]
    quick = PROFILES["quick"]
    per_run = [overhead_parts(wall, timer, trials, quick_step["median"],
                              quick.epochs * quick.steps_per_epoch) for wall, timer in runs]
    parts = {name: [run[name] for run in per_run] for name in per_run[0]}
    # raw: each part per run; runs: what each run measured (wall, validation, every train call
    # as [seconds, steps, first call of its fit?]), from which the parts follow.
    result = {"seconds": {name: stats(values) for name, values in parts.items()},
              "raw": parts, "per_call": 1,
              "runs": [{"wall": wall, "validation": timer.validation,
                        "calls": [list(call) for call in timer.calls]} for wall, timer in runs]}
    sec = result["seconds"]
    result["ratios"] = {f"{k}/quick_trial_training": sec[k]["median"] / sec["quick_trial_training"][
        "median"] for k in parts if k.startswith("overhead")}
    result.update(trials=trials, epochs=epochs, steps_per_epoch=steps, batch=batch, patch=patch,
                  steps_per_execution=train.execution_steps(steps))
    return result


def machine():
    """CPU model, cores and library versions."""
    model = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "keras_tuner": keras_tuner.__version__, "qkeras": getattr(qkeras, "__version__", "?")}


def main(argv=None):
    """Runs every measurement, prints the table, writes <out>/bench.json; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 repeat, tiny shapes (for tests)")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement")
    parser.add_argument("--out", default="results/bench", help="folder for bench.json")
    args = parser.parse_args(argv)
    cfg = SMOKE if args.smoke else FULL
    repeats = args.repeats or cfg["repeats"]
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    quantizers = fixed_quantizers()
    train_pairs, val_pairs, _ = sources.load_pairs(None, SCALE)  # the test split is not timed
    peak = bench_peak(cfg["matmul"], max(1, cfg["steps"] // 2), repeats)
    train_step = bench_train(cfg, quantizers, repeats, peak["gflop_s"])
    result = {"machine": machine(), "smoke": args.smoke, "repeats": repeats,
              "peak_matmul": peak, "train_step": train_step,
              # The difference measured is a few percent of a step, within this shared machine's
              # step-to-step swings (18-26 ms at quick shapes): three times the repeats.
              "pipeline": bench_pipeline(cfg, quantizers, train_pairs, 3 * repeats),
              "inference": bench_inference(cfg, quantizers, repeats),
              "search": bench_search(cfg, train_pairs, val_pairs, repeats,
                                     train_step["settings"]["quick"]["seconds"]["quant"])}
    print_table(result)
    os.makedirs(args.out, exist_ok=True)
    files.write_json(path := os.path.join(args.out, "bench.json"), result)
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
