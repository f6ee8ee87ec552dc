"""export.json (every figure) and export.md (the same for people) of one export."""
import os

from solvers import files
from solvers.export.graph import scale_name

HOST_STEPS = (("depth-to-space: output pixel (y·s + dy, x·s + dx), colour c, is channel "
              "(dy·s + dx)·3 + c of the design's output pixel (y, x); pure data movement"),
              "clip to [0, 255] (the model's last layer)",
              "round half to even to 8 bits (how the tool stores and scores every image)")


def weight_memory(design, convs):
    """{kind: bits} of every constant array the design stores (hls4ml's declared width times its
    count), by what it is: kernels (the convolutions' mantissas), biases and scales (of the
    `_scale` layers), anchor (its 0/1 weights), zero_biases (the ones hls4ml gives each
    convolution and the anchor, which add nothing)."""
    scales = {scale_name(c) for c in convs}
    bits = dict.fromkeys(("kernels", "biases", "scales", "anchor", "zero_biases"), 0)
    for row in design:
        for array, held in row["arrays"].items():
            if row["layer"] in scales:
                kind = {"bias": "biases", "scale": "scales"}[array]
            elif row["layer"] in (*convs, "anchor"):
                kind = {"weight": "anchor" if row["layer"] == "anchor" else "kernels",
                        "bias": "zero_biases"}[array]
            else:
                raise ValueError(f"weight_memory: unexpected array {array} of {row['layer']}")
            bits[kind] += held["count"] * _width(held["type"])
    return bits


def document(*, model_path, parts, types, bounds, backend, io_type, reuse, size, design, results,
             summary, project_check, costs, model_bits, goal, seconds, out_dir):
    """The export.json document (plain types only); model_bits: {"kernels", "biases"}, the two
    terms of size_bits."""
    layers = []
    names = [m for n in parts.in_order()
             for m in ((n, scale_name(n)) if n in parts.convs else (n,))]
    for name in ["lr", *names, "anchor", "add_anchor"]:
        layers.append({"layer": name, "qkeras": parts.quantizers.get(name),
                       "types": {k: t.hls() for k, t in types[name].items()},
                       "sum_range": list(bounds[name]) if name in bounds else None})
    return {
        "model": model_path, "out_dir": out_dir, "project": os.path.join(out_dir, "project"),
        "backend": backend, "io_type": io_type, "reuse_factor": reuse,
        "frame_lr": list(size), "scale": parts.scale, "seconds": round(seconds, 1),
        "host_post_processing": list(HOST_STEPS), "layers": layers, "hls4ml_design": design,
        "costs": {k: float(v) for k, v in costs.items()},
        "weight_memory": {"design": weight_memory(design, parts.convs),
                          "model": {k: int(v) for k, v in model_bits.items()}},
        "goal": {"type": goal.type, "input_hw": list(goal.input_hw)},
        "verification": {**summary, "photos_detail": results, "project": project_check},
    }


def verification_lines(doc):
    """The C simulation section of export.md."""
    v = doc["verification"]
    h, w = doc["frame_lr"]
    lines = ["## C simulation against Keras", ""]
    if v["skipped"]:
        return lines + [f"**Not run** for `{doc['io_type']}`: {v['skipped']}.", ""]
    verdict = (f"**Bit-exact** on {v['photos']} validation photos" if v["bit_exact"] else
               f"**Verification failed**: {v['failure']}.\n\nOn {v['photos']} validation photos")
    lines += [
        (f"{verdict} ({v['pixels']} output pixels): identical_fraction "
         f"{_figure(v['identical_fraction'], '.6f')}, max_abs_diff {_figure(v['max_abs_diff'])} "
         f"(8-bit levels), before rounding {_figure(v['max_abs_diff_raw'])}."),
        "",
        ("The design was built with g++ at each photo's size (the arithmetic, types and weights are "
        "the project's; an io_stream design's frame size is fixed at build time) and run on the "
        "whole LR photo. Its output is compared with the Keras model's twice: before rounding "
        "(the anchored residual after depth-to-space, before the clip, so a difference the clip "
        "would hide counts) and after the host's steps below, in 8 bits. A pixel is identical "
        "when its three 8-bit values are; the design is verified only when every value is "
        "identical both ways."), "",
        ("| photo | LR size | pixels | identical_fraction | max_abs_diff | before rounding | "
        "first differing value (row, col, channel: Keras, C simulation) | "
        "first differing layer |"),
        "|---|---|---:|---:|---:|---:|---|---|"]
    for r in v["photos_detail"]:
        first = r["first_difference"]
        where = (f"{first['layer']}: {first['values']} values, up to {first['max_abs_diff']:g} "
                 f"({first['why']})" if first else "none")
        lines.append(f"| {r['name']} | {r['h']}x{r['w']} | {r['pixels']} | "
                     f"{r['identical_fraction']:.6f} | {r['max_abs_diff']:g} | "
                     f"{r['max_abs_diff_raw']:g} | {_value(r['first_mismatch'])} | {where} |")
    if v["builds"]:
        lines += ["", (f"{v['builds']} builds with g++, {v['seconds_per_build']:.1f} s each; the "
                  f"simulation ran {v['ms_per_lr_pixel']:.2f} ms per LR pixel.")]
    p = v["project"]
    lines += [""]
    if p["crops"]:
        lines.append(
            f"The project as written ({h}x{w} frame), compiled and run on the centred {h}x{w} crop "
            f"of each validation photo at least that large ({p['crops']} crops, each its own "
            f"input): identical_fraction {p['identical_fraction']:.6f}, max_abs_diff "
            f"{p['max_abs_diff']:g}, before rounding {p['max_abs_diff_raw']:g}; first differing "
            f"value {_value(p['first_mismatch'])}. Its testbench "
            "(`tb_data/`) holds these crops and the Keras model's outputs for the vendor's C "
            "simulation (`csim_design`).")
    else:
        lines.append(f"No validation photo is {h}x{w} or larger: the project was not run at "
                     "its own frame size (not verified), and its testbench is hls4ml's default.")
    return lines


def _figure(value, spec="g"):
    return "none" if value is None else format(value, spec)


def _value(m):
    """A first_mismatch as a table cell."""
    if not m:
        return "none"
    photo = f"{m['name']}: " if "name" in m else ""
    return (f"{photo}({m['row']}, {m['col']}, {m['channel']}): {m['keras']:.9g}, "
            f"{m['design']:.9g} (8-bit {m['keras_8bit']}, {m['design_8bit']})")


def markdown(doc):
    v = doc["verification"]
    h, w = doc["frame_lr"]
    lines = [
        f"# Export to hls4ml: `{doc['model']}`", "",
        (f"Project: `{doc['project']}` ({doc['backend']} backend, `{doc['io_type']}`, reuse factor "
        f"{doc['reuse_factor']}, LR frame {h}x{w}, x{doc['scale']}). Written in "
        f"{doc['seconds']:.0f} s; " + ("C simulation not run" if v["skipped"] else
                                       "verified" if v["bit_exact"] else
                                       "**verification failed**") + "."), ""]
    lines += verification_lines(doc)
    lines += ["", "## What runs where", "",
              ("On the accelerator (hls4ml): each convolution (b-bit mantissas, then `_scale`: a "
              "power of 2 per channel and the bias), the quantized ReLUs, the anchor as a "
              f"1x1 convolution with 0/1 weights (channel k copies input colour k mod 3, the "
              f"input repeated {doc['scale'] ** 2} times as base7's concatenation does) and the "
              "add. Input: 8-bit RGB pixels, `ufixed<8,8>`. Output: "
              f"{3 * doc['scale'] ** 2} values per LR pixel (the anchored residual)."), "",
              "On the host, as the verification does it:", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(doc["host_post_processing"], 1)]
    lines += ["", ("hls4ml 1.3.0 has no depth-to-space layer and merges only two inputs; "
              "`solvers/export/graph.py` says what a later release would have to add."), "",
              "## Fixed-point types", "",
              ("Every type holds the quantized values exactly; sums cannot overflow for any input "
              "in range (the range column: the extreme partial sums). Each convolution multiplies "
              "by its kernel's mantissas (as many bits as its qkeras quantizer: auto_po2 stores "
              "b-bit values times a power of 2 per output channel); the `_scale` layer after it "
              "applies those powers of 2 and adds the bias, and its result is the QConv2D's "
              "output."), "",
              "| layer | qkeras | weight | bias | accumulator / result | sum range |",
              "|---|---|---|---|---|---|"]
    layer_names = {layer["layer"] for layer in doc["layers"]}
    for layer in doc["layers"]:
        t, q = layer["types"], layer["qkeras"] or {}
        qk = ", ".join(f"{k}: `{v}`" for k, v in q.items()) or \
            ("8-bit input" if layer["layer"] == "lr" else "")
        result = t.get("accum", t.get("result"))
        weight = t.get("weight", "") or (f"scale {t['scale']}" if "scale" in t else "")
        span = (f"[{layer['sum_range'][0]:g}, {layer['sum_range'][1]:g}]"
                if layer["sum_range"] else "")
        # A convolution's (zero) bias type is hls4ml's formality; its bias is in `_scale`.
        bias = "" if "weight" in t and scale_name(layer['layer']) in layer_names \
            else t.get("bias", "")
        lines.append(f"| {layer['layer']} | {qk} | {weight} | {bias} | "
                     f"{result} | {span} |")
    lines += ["", "## Estimates and costs", "",
              ("hls4ml 1.3.0 makes no resource or latency estimate without vendor tools: its "
              "reports read Vivado/Vitis synthesis output, and its one vendor-free estimator "
              "(the DSP objective of DSP-aware pruning) fails on Keras 3 models. What hls4ml "
              "will synthesize, read back from the converted model:"), "",
              "| layer | class | strategy | reuse | weights | weight type | multipliers |",
              "|---|---|---|---:|---:|---|---:|"]
    for row in doc["hls4ml_design"]:
        if row["weights"]:
            lines.append(f"| {row['layer']} | {row['class']} | {row['strategy']} | "
                         f"{row['reuse_factor']} | {row['weights']} | `{row['weight_type']}` | "
                         f"{row['multipliers']} |")
    multipliers = sum(r["multipliers"] for r in doc["hls4ml_design"])
    lines.append(f"| total | | | | {sum(r['weights'] for r in doc['hls4ml_design'])} | | "
                 f"{multipliers} |")
    lines += ["", ("Weight memory, like for like: the constant arrays the design stores (count "
              "times hls4ml's declared width) against the two terms of this tool's `size_bits` "
              "(count times the qkeras bits); the last four rows are what only the design "
              "stores."), ""]
    lines += memory_lines(doc["weight_memory"], doc["costs"]["size_bits"])
    c = doc["costs"]
    gh, gw = doc["goal"]["input_hw"]
    lines += ["",
              (f"This tool's costs of the same model (goal `{doc['goal']['type']}`, {gh}x{gw} LR "
              "input):"), "",
              "| size_bits | bits | BOPs | energy (pJ) |", "|---:|---:|---:|---:|",
              (f"| {c['size_bits']:.0f} | {c['bits']:.0f} | {c['bops']:.4g} | "
              f"{c['energy_pj']:.4g} |"), ""]
    return "\n".join(lines)


def memory_lines(memory, size_bits):
    """The weight-memory table: like against like in the first three rows, then what only the
    design stores."""
    d, m = memory["design"], memory["model"]
    return ["| stored | design bits | model bits |", "|---|---:|---:|",
            f"| kernel weights (b-bit mantissas in the design) | {d['kernels']} | {m['kernels']} |",
            f"| biases (in the `_scale` layers) | {d['biases']} | {m['biases']} |",
            (f"| kernels and biases | {d['kernels'] + d['biases']} | "
             f"{m['kernels'] + m['biases']} (`size_bits` {size_bits:.0f}) |"),
            f"| per-channel powers of 2 (`_scale`) | {d['scales']} | not counted |",
            f"| anchor 0/1 weights | {d['anchor']} | none (a concatenation) |",
            (f"| zero biases hls4ml declares (convolutions, anchor) | {d['zero_biases']} | "
             "none |"),
            f"| all | {sum(d.values())} | {m['kernels'] + m['biases']} |"]


def _width(definition):
    """Width of an ap_fixed / ap_ufixed / ap_int definition string."""
    inside = definition[definition.index("<") + 1:definition.index(">")]
    return int(inside.split(",")[0])


def write(out_dir, doc, log_text):
    os.makedirs(out_dir, exist_ok=True)
    files.write_json(os.path.join(out_dir, "export.json"), doc)
    files.write_text(os.path.join(out_dir, "export.md"), markdown(doc))
    files.write_text(os.path.join(out_dir, "hls4ml.log"), log_text)
