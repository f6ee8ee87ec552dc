"""C simulation against Keras: the exported design, built with g++ at each photo's size, run on
whole photos, its output post-processed as the host would, compared with the Keras model's output
pixel for pixel after both are rounded to 8 bits.

Why whole photos and a build per size: an io_stream design's frame size is fixed when it is
built, and tiles would not be the same computation at their borders (Keras pads every layer's
input with zeros, a tile cut from a photo has real pixels there). The builds differ only in that
size; the arithmetic, types and weights are the exported project's.
"""
import os
import shutil
import time

import keras
import numpy as np

from solvers import metrics
from solvers.export import graph as hgraph
from solvers.export import hls


def _keras_outputs(model, x):
    return np.asarray(model(x.astype(np.float32), training=False), np.float64)


def first_difference(hls_model, model, parts, x):
    """(layer, values differing, max |difference|, why) of the first layer whose output differs
    between the design (hls4ml's trace) and Keras, in the order data flows; None if none does."""
    _, trace = hls_model.trace(np.ascontiguousarray(x, np.float64))
    names = parts.in_order()
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    for name, output in zip(names, probe(x.astype(np.float32), training=False), strict=True):
        expected = np.asarray(output, np.float64)
        # A QConv2D's output is its scale layer's in the design.
        traced = hgraph.scale_name(name) if name in parts.convs else name
        found = np.asarray(trace[traced], np.float64).reshape(expected.shape)
        differ = found != expected
        if differ.any():
            why = ("Keras adds the products in float32, which rounds sums needing more than 24 "
                   "significant bits; the design's sums are exact" if name in parts.convs else
                   "the ReLU's rounding or saturation differs from qkeras' quantized_relu")
            return name, int(differ.sum()), float(np.abs(found - expected).max()), why
    return None


def compare(sr_design, sr_keras):
    """{identical_fraction, max_abs_diff, max_abs_diff_raw, pixels} of two (1, H, W, 3) SR
    outputs in [0, 255]: a pixel is identical when its three 8-bit values are."""
    design_8bit = np.asarray(metrics.to_8bit(sr_design.astype(np.float32)))
    keras_8bit = np.asarray(metrics.to_8bit(sr_keras.astype(np.float32)))
    same = np.all(design_8bit == keras_8bit, axis=-1)
    return {"pixels": int(same.size), "identical": int(same.sum()),
            "identical_fraction": float(same.mean()),
            "max_abs_diff": float(np.abs(design_8bit - keras_8bit).max()),
            "max_abs_diff_raw": float(np.abs(sr_design - sr_keras).max())}


def run(model, parts, types, pairs, work_dir, backend, io_type, reuse, log, progress=print):
    """[{name, h, w, identical_fraction, max_abs_diff, max_abs_diff_raw, pixels,
    first_difference}] over `pairs` (sources.Pair: uint8 LR), building each size once under
    work_dir (deleted afterwards)."""
    results, builds = [], {}
    try:
        for pair in pairs:
            h, w = pair.lr.shape[:2]
            started, build_seconds = time.perf_counter(), 0.0
            if (h, w) not in builds:
                graph = hgraph.hls_graph(parts, (h, w))
                cfg = hls.config(graph, types, reuse, trace=True)
                model_hls = hls.convert(graph, cfg, os.path.join(work_dir, f"{h}x{w}"), backend,
                                        io_type, log)
                builds[(h, w)] = hls.compile_model(model_hls, log)
                build_seconds = time.perf_counter() - started
            x = pair.lr[None].astype(np.float64)
            started = time.perf_counter()
            out = builds[(h, w)].predict(np.ascontiguousarray(x))
            simulate_seconds = time.perf_counter() - started
            residual = np.asarray(out, np.float64).reshape(1, h, w, -1)
            result = {"name": pair.name, "h": h, "w": w, "build_seconds": build_seconds,
                      "simulate_seconds": simulate_seconds,
                      **compare(hgraph.post_process(residual, parts.scale),
                                _keras_outputs(model, x))}
            difference = None
            if result["identical_fraction"] < 1.0 or result["max_abs_diff_raw"] > 0:
                difference = first_difference(builds[(h, w)], model, parts, x)
            result["first_difference"] = difference and dict(zip(
                ("layer", "values", "max_abs_diff", "why"), difference, strict=True))
            results.append(result)
            progress(f"C simulation {pair.name} ({h}x{w}): identical "
                     f"{result['identical_fraction']:.6f}, max |diff| {result['max_abs_diff']:g}")
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return results


def center_crops(pairs, size):
    """[(name, uint8 LR crop)]: the centred size[0] x size[1] crop of every photo at least that
    large: inputs of the project's own frame size."""
    h, w = size
    crops = []
    for pair in pairs:
        top, left = (pair.lr.shape[0] - h) // 2, (pair.lr.shape[1] - w) // 2
        if top >= 0 and left >= 0:
            crops.append((pair.name, pair.lr[top:top + h, left:left + w]))
    return crops


def keras_residual(model, x):
    """The Keras model's anchored residual (the design's output: add_anchor, before
    depth-to-space) of (n, h, w, 3) inputs, float64."""
    probe = keras.Model(model.input, model.get_layer("add_anchor").output)
    return np.asarray(probe(x.astype(np.float32), training=False), np.float64)


def project_check(project, model, parts, crops, log):
    """The written project itself (its frame size), compiled and run on `crops`, each its own
    input, against the Keras model: compare() over all crops, plus "crops"."""
    if not crops:
        return {"crops": 0}
    hls.compile_model(project, log)
    x = np.stack([crop for _, crop in crops]).astype(np.float64)
    out = np.asarray(project.predict(np.ascontiguousarray(x)), np.float64)
    residual = out.reshape(len(crops), *x.shape[1:3], -1)
    return {"crops": len(crops), **compare(hgraph.post_process(residual, parts.scale),
                                           _keras_outputs(model, x))}


def summary(results, project=None, skipped=None):
    """The figures over all photos: identical_fraction (of all pixels), max_abs_diff,
    max_abs_diff_raw, bit_exact (every pixel of every photo identical, and of the project's own
    run on crops when there was one); skipped: why there was no C simulation, or None."""
    pixels = sum(r["pixels"] for r in results)
    identical = sum(r["identical"] for r in results)
    builds = [r["build_seconds"] for r in results if r["build_seconds"]]
    lr_pixels = sum(r["h"] * r["w"] for r in results)
    return {"photos": len(results), "pixels": pixels, "skipped": skipped,
            "builds": len(builds), "seconds_per_build": sum(builds) / len(builds) if builds else None,
            "ms_per_lr_pixel": (1000 * sum(r["simulate_seconds"] for r in results) / lr_pixels
                                if lr_pixels else None),
            "identical_fraction": identical / pixels if pixels else None,
            "max_abs_diff": max((r["max_abs_diff"] for r in results), default=None),
            "max_abs_diff_raw": max((r["max_abs_diff_raw"] for r in results), default=None),
            "bit_exact": bool(results) and identical == pixels
            and (not project or not project["crops"] or project["identical"] == project["pixels"])}
