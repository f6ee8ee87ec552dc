"""C simulation against Keras: the exported design, built with g++ at each photo's size, run on
whole photos, compared with the Keras model value for value twice: raw (the anchored residual after
depth-to-space, before the host's clip and rounding) and as 8-bit pixels (after them). The design
is verified only when both are identical everywhere, on at least one photo and one crop at the
project's own frame size: a sub-LSB difference, or one in a pixel the clip hides, is still a design
that does not compute what Keras computes.

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


def keras_outputs(model, x):
    """(anchored residual, output) of the Keras model on (n, h, w, 3) inputs, float64: the
    design's output before the host's steps, and the model's own output after them."""
    probe = keras.Model(model.input, [model.get_layer("add_anchor").output, model.output])
    residual, output = probe(x.astype(np.float32), training=False)
    return np.asarray(residual, np.float64), np.asarray(output, np.float64)


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


def compare(design_residual, keras_residual, keras_output, scale):
    """{pixels, identical, identical_fraction, max_abs_diff, max_abs_diff_raw, first_mismatch} of
    one image: the design's residual (1, h, w, 3·scale²) against Keras' residual and output.
    Raw values are compared after depth-to-space but before the clip, so that a difference in a
    pixel the clip would hide still counts; a pixel is identical when its three 8-bit values are.
    first_mismatch: {row, col, channel, keras, design, keras_8bit, design_8bit} of the first SR
    value (row-major) that differs raw or in 8 bits, or None."""
    raw_design = hgraph.depth_to_space(design_residual, scale)
    raw_keras = hgraph.depth_to_space(keras_residual, scale)
    design_8bit = np.asarray(metrics.to_8bit(hgraph.post_process(design_residual, scale)
                                             .astype(np.float32)), np.float64)
    keras_8bit = np.asarray(metrics.to_8bit(keras_output.astype(np.float32)), np.float64)
    differ = (raw_design != raw_keras) | (design_8bit != keras_8bit)
    same = np.all(design_8bit == keras_8bit, axis=-1)
    first = None
    if differ.any():
        at = tuple(int(i) for i in np.argwhere(differ)[0])
        first = {"row": at[1], "col": at[2], "channel": at[3],
                 "keras": float(raw_keras[at]), "design": float(raw_design[at]),
                 "keras_8bit": int(keras_8bit[at]), "design_8bit": int(design_8bit[at])}
    return {"pixels": int(same.size), "identical": int(same.sum()),
            "identical_fraction": float(same.mean()),
            "max_abs_diff": float(np.abs(design_8bit - keras_8bit).max()),
            "max_abs_diff_raw": float(np.abs(raw_design - raw_keras).max()),
            "first_mismatch": first}


def bit_exact(compared):
    """True when a compare() result (or project_check's sum of them) found nothing to tell the
    design from Keras: every pixel identical in 8 bits and every value identical raw."""
    return (compared.get("pixels", 0) > 0 and compared["identical"] == compared["pixels"]
            and compared["max_abs_diff"] == 0.0 and compared["max_abs_diff_raw"] == 0.0)


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
                      **compare(residual, *keras_outputs(model, x), parts.scale)}
            difference = None
            if not bit_exact(result):
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
    return keras_outputs(model, x)[0]


def project_check(project, model, parts, crops, log):
    """The written project itself (its frame size), compiled and run on `crops`, each its own
    input, against the Keras model: compare()'s figures summed over the crops, plus "crops" and
    first_mismatch (with the crop's photo "name") of the first crop that differs."""
    if not crops:
        return {"crops": 0}
    hls.compile_model(project, log)
    x = np.stack([crop for _, crop in crops]).astype(np.float64)
    out = np.asarray(project.predict(np.ascontiguousarray(x)), np.float64)
    residuals = out.reshape(len(crops), *x.shape[1:3], -1)
    keras_residuals, keras_output = keras_outputs(model, x)
    each = [compare(residuals[i:i + 1], keras_residuals[i:i + 1], keras_output[i:i + 1],
                    parts.scale) for i in range(len(crops))]
    pixels, identical = sum(c["pixels"] for c in each), sum(c["identical"] for c in each)
    first = next(({"name": name, **c["first_mismatch"]}
                  for (name, _), c in zip(crops, each, strict=True) if c["first_mismatch"]), None)
    return {"crops": len(crops), "pixels": pixels, "identical": identical,
            "identical_fraction": identical / pixels,
            "max_abs_diff": max(c["max_abs_diff"] for c in each),
            "max_abs_diff_raw": max(c["max_abs_diff_raw"] for c in each),
            "first_mismatch": first}


def _mismatch(where, m, layer=None):
    if not m:  # bit_exact() failed without a differing value: nothing was compared
        return f"C simulation does not match Keras at {where}: no output pixel compared"
    return (f"C simulation does not match Keras at {where}, output pixel (row {m['row']}, "
            f"col {m['col']}, channel {m['channel']}): Keras {m['keras']:.9g}, C simulation "
            f"{m['design']:.9g} before rounding (8-bit: {m['keras_8bit']} vs {m['design_8bit']})"
            + (f"; first differing layer {layer['layer']}" if layer else ""))


def failure(results, project, frame):
    """Why the design is not verified, in one line, or None when it is: every photo of `results`
    (run()) and every crop of `project` (project_check()) identical to Keras, raw and in 8 bits,
    with at least one of each compared. frame: the project's (h, w)."""
    if not results:
        return "C simulation compared no validation photo: the design is not verified"
    if not project or not project.get("crops"):
        return (f"C simulation compared no {frame[0]}x{frame[1]} crop: the project at its own "
                "frame size is not verified")
    for r in results:
        if not bit_exact(r):
            return _mismatch(f"photo {r['name']} ({r['h']}x{r['w']} LR)", r["first_mismatch"],
                             r["first_difference"])
    if not bit_exact(project):
        m = project.get("first_mismatch") or {}
        return _mismatch(f"photo {m.get('name')} (its centred {frame[0]}x{frame[1]} crop, run by "
                         "the project itself)", m)
    return None


def summary(results, project, frame, skipped=None):
    """The figures over all photos: identical_fraction (of all pixels), max_abs_diff,
    max_abs_diff_raw; failure: failure()'s line (None when skipped); bit_exact: verified, no
    failure; skipped: why there was no C simulation, or None."""
    pixels = sum(r["pixels"] for r in results)
    identical = sum(r["identical"] for r in results)
    builds = [r["build_seconds"] for r in results if r["build_seconds"]]
    lr_pixels = sum(r["h"] * r["w"] for r in results)
    reason = None if skipped else failure(results, project, frame)
    return {"photos": len(results), "pixels": pixels, "skipped": skipped,
            "builds": len(builds), "seconds_per_build": sum(builds) / len(builds) if builds else None,
            "ms_per_lr_pixel": (1000 * sum(r["simulate_seconds"] for r in results) / lr_pixels
                                if lr_pixels else None),
            "identical_fraction": identical / pixels if pixels else None,
            "max_abs_diff": max((r["max_abs_diff"] for r in results), default=None),
            "max_abs_diff_raw": max((r["max_abs_diff_raw"] for r in results), default=None),
            "failure": reason, "bit_exact": not skipped and reason is None}
