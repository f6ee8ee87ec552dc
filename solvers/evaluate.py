"""Evaluate a saved base7 on a folder of images, the way SR papers report it, against bicubic.

    python -m solvers.evaluate --model M.keras --data HR_FOLDER [--lr-data LR_FOLDER] [--scale 3]
                               [--float-model F.keras] [--out DIR] [--save-images]

Per image: Y-PSNR and Y-SSIM (BT.601 luma, `scale` pixels cropped from each border) and RGB PSNR of
bicubic upscaling, of the model and of the float model when given. Prints a table and writes
<out>/eval.csv (default out: <model dir>/eval/). User errors print one line `error: ...`, exit 2.
"""
import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image
from qkeras import QConv2D

from solvers import files, metrics
from solvers.config import ArgumentParser, ConfigError
from solvers.data import sources
from solvers.networks import saved
from solvers.networks.base7 import fold_quantized_weights

SSIM_WINDOW = 11  # metrics.ssim's Gaussian window: smaller (cropped) images cannot be scored
PROBE_SIDE = 8    # LR side of the probe input that reveals a model's scale


class EvalError(ConfigError):
    """A bad model file, an image too small to score, or an unwritable --out (one-line message
    naming the option and the file)."""


def load_model(path, scale, option="--model"):
    """The Keras model saved at `path`, checked to upscale RGB images by `scale` (or EvalError)."""
    model = saved.load_keras(path, option, EvalError)
    found = model_scale(model)
    if found is None:
        raise EvalError(f"{option}: {path}: not a super-resolution model (RGB image in, "
                        "larger RGB image out)")
    if found != scale:
        raise EvalError(f"{option}: {path}: a x{found} model, but --scale is {scale}")
    return model


def for_inference(model, scale):
    """A quantized base7 with its weights quantized once (fold_quantized_weights: the same
    outputs, without re-quantizing the weights in every call); any other model as it is."""
    if not any(isinstance(layer, QConv2D) for layer in model.layers):
        return model
    try:
        return fold_quantized_weights(model, scale)
    except ValueError:  # not base7's layer names: evaluate it as it is
        return model


def model_scale(model):
    """The model's upscaling factor, read from its output on an 8x8 RGB probe; None if it does
    not map an image to a square-scaled RGB image (probing works for any architecture, unlike
    looking for a DepthToSpace layer)."""
    try:
        out = model(tf.zeros((1, PROBE_SIDE, PROBE_SIDE, 3)), training=False)
        shape = tuple(out.shape)
    except Exception:  # wrong input rank or channels, several inputs or outputs, ...
        return None
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2] or shape[1] % PROBE_SIDE:
        return None
    return shape[1] // PROBE_SIDE


def upscale(model, lr):
    """SR image (1, h·s, w·s, 3) float32 of one whole uint8 LR image (the metrics round it)."""
    # A direct call rather than predict(): every image has its own size, and predict() would
    # build a new tf.function per size only to run it once.
    return model(tf.constant(lr[None], tf.float32), training=False)


def bicubic(lr, scale):
    """Bicubic upscale (1, h·s, w·s, 3) of one uint8 LR image (no antialias: it only matters when
    downscaling)."""
    h, w = lr.shape[:2]
    return tf.image.resize(tf.constant(lr[None], tf.float32), (h * scale, w * scale), "bicubic")


def scores(hr, sr, scale):
    """(Y-PSNR, Y-SSIM, RGB PSNR) of one SR image against its HR image, `scale` border cropped."""
    hr = tf.constant(hr[None], tf.float32)
    return (float(metrics.psnr(hr, sr, scale, y_only=True)[0]),
            float(metrics.ssim(hr, sr, scale, y_only=True)[0]),
            float(metrics.psnr(hr, sr, scale, y_only=False)[0]))


def evaluate(model, pairs, scale, float_model=None, image_dir=None):
    """Rows of scores, one per Pair then the `average` row (column means).

    Columns: image, then y_psnr, y_ssim, rgb_psnr for bicubic, model and (when given) float, then
    gain_db (model Y-PSNR minus bicubic Y-PSNR). With image_dir, each model SR image is saved there
    as <name>_x<scale>.png.
    """
    methods = [("bicubic", None), ("model", model)]
    if float_model is not None:
        methods.append(("float", float_model))
    for pair in pairs:  # all checked before any work, so a bad image fails at once
        hr_h, hr_w = pair.hr.shape[:2]
        if min(hr_h, hr_w) - 2 * scale < SSIM_WINDOW:
            raise EvalError(f"EVAL_DATA: {pair.name}: HR {hr_h}x{hr_w} is too small: SSIM needs "
                            f"{SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping {scale} per border")
    rows = []
    for pair in pairs:
        row = {"image": pair.name}
        for method, net in methods:
            sr = bicubic(pair.lr, scale) if net is None else upscale(net, pair.lr)
            row.update(zip((f"{method}_y_psnr", f"{method}_y_ssim", f"{method}_rgb_psnr"),
                           scores(pair.hr, sr, scale)))
            if method == "model" and image_dir is not None:
                save_image(os.path.join(image_dir, f"{pair.name}_x{scale}.png"), sr)
        row["gain_db"] = row["model_y_psnr"] - row["bicubic_y_psnr"]
        rows.append(row)
    if rows:
        # The mean of per-image scores, as papers average PSNR (not the PSNR of a pooled MSE);
        # one exact image (inf dB) makes the average inf, which is the honest answer.
        rows.append({"image": "average", **{k: float(np.mean([r[k] for r in rows]))
                                            for k in rows[0] if k != "image"}})
    return rows


def save_image(path, sr):
    """Writes one (1, h, w, 3) SR output as an 8-bit PNG, rounded and clipped like the metrics."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(metrics.to_8bit(sr)[0].numpy().astype(np.uint8)).save(path)


def _text(key, value):
    """One cell: PSNRs with 2 decimals, SSIMs with 4 (the precision papers print)."""
    if isinstance(value, str):
        return value
    return f"{value:.4f}" if key.endswith("ssim") else f"{value:.2f}"


def format_table(rows):
    """The rows as a plain-text table, one line per row, columns right-aligned."""
    keys = list(rows[0])
    cells = [keys] + [[_text(k, r[k]) for k in keys] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths))) for line in cells)


def write_csv(path, rows):
    """Writes rows (dicts with the same keys) to `path` as CSV, numbers with 6 decimals.

    Through a temporary file in the same folder and os.replace, so a crash never leaves a
    half-written eval.csv where an earlier complete one stood."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_csv(path, list(rows[0]), [
        {k: v if isinstance(v, str) else f"{v:.6f}" for k, v in r.items()} for r in rows])


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m solvers.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the .keras model to evaluate")
    p.add_argument("--data", required=True, help="folder of HR PNG/JPEG images")
    p.add_argument("--lr-data", default=None, help="folder of matching LR images (default: "
                   "antialiased bicubic downscales of the HR images)")
    p.add_argument("--scale", type=int, choices=sources.SCALES, default=3)
    p.add_argument("--float-model", default=None, help="a float32 .keras model to compare with")
    p.add_argument("--out", default=None, help="folder for eval.csv and images (default: "
                   "<model dir>/eval)")
    p.add_argument("--save-images", action="store_true",
                   help="also save each SR image as <out>/<name>_x<scale>.png")
    return p.parse_args(argv)


def main(argv=None):
    """Command line entry point; returns the exit status (0, or 2 after a one-line error)."""
    args = parse_args(argv)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.model)), "eval")
    try:
        # Models first: they fail fast, before a possibly large folder is decoded.
        model = for_inference(load_model(args.model, args.scale), args.scale)
        float_model = (load_model(args.float_model, args.scale, "--float-model")
                       if args.float_model else None)
        pairs = sources.eval_pairs(args.data, args.scale, args.lr_data)
        try:
            rows = evaluate(model, pairs, args.scale, float_model,
                            out if args.save_images else None)
            write_csv(os.path.join(out, "eval.csv"), rows)
        except OSError as e:
            raise EvalError(f"--out: {out}: cannot write ({e.strerror or e})") from None
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"wrote {os.path.join(out, 'eval.csv')}"
          + (f" and {len(pairs)} SR images (*_x{args.scale}.png)" if args.save_images else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
