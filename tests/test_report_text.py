"""solvers/report/report_text.py: which images the verdict and the summary judge on (validation,
the selection's; test, held out). Plain dicts, no model or file: milliseconds."""
from solvers.report import report_text

PARAMS = 42539
# Validation says the chosen model (29.18 dB) beats uniform 4-bit (29.00 dB); the held-out test
# images say it loses (28.50 against 28.70): a verdict on test must say "worse".
BASELINES = [{"label": f"uniform {b}-bit", "width": b, "size_bits": PARAMS * b, "val_psnr": v,
              "test_psnr": t} for b, v, t in ((4, 29.00, 28.70), (8, 29.40, 29.10))]


def _run(test=True):
    chosen = {"trial_id": "02", "status": "COMPLETED", "size_bits": PARAMS * 4, "val_psnr": "29.18",
              "val_score": "4.7", "pareto": "true"}
    sizes = {"size_bits": PARAMS * 4, "float32_bits": PARAMS * 32, "uniform8_bits": PARAMS * 8,
             "val_psnr_search": 29.18, "val_psnr_retrained": 29.5, "val_images": 8 if test else None,
             "test": {"psnr": 28.9, "loss": 5.1, "psnr_search": 28.5, "loss_search": 5.3,
                      "images": 6} if test else None}
    return {"name": "tiny", "chosen": chosen, "sizes": sizes, "rows": [chosen], "front": [chosen],
            "column": "size_bits", "settings": {"settings": {"epochs": 2}}, "layers": []}


MATCH = {"path": "baselines.csv", "explicit": True, "difference": None}


def test_verdict_compares_on_test_psnr_when_run_and_baselines_have_it():
    text = report_text.verdict(_run(), BASELINES, MATCH)
    assert "on the test images (held out, 6 images), which no selection step saw" in text
    assert "uniform 4-bit (" in text and "28.70 dB" in text and "0.20 dB worse (-0.20 dB)" in text
    assert "29.10 dB" in text and "29.00 dB" not in text  # baselines' validation PSNR unused
    assert "29.18 dB on the validation images (selection, 8 images)" in text
    assert "28.50 dB on the test images" in text and "28.90 dB on the test images" in text
    assert "uniform 4-bit: no costlier" in text  # as cheap and better on test


def test_verdict_falls_back_to_validation_and_says_why():
    no_column = [{k: v for k, v in b.items() if k != "test_psnr"} for b in BASELINES]
    text = report_text.verdict(_run(), no_column, MATCH)
    assert "on validation PSNR (selection, 8 images)" in text
    assert "its baselines have no test_psnr column" in text
    assert "0.18 dB better (+0.18 dB)" in text  # 29.18 against 29.00
    old = report_text.verdict(_run(test=False), BASELINES, MATCH)  # a run from before the split
    assert "this run has no test figures" in old and "0.18 dB better (+0.18 dB)" in old
    assert "28.70" not in old


def test_summary_and_splits_name_both_splits():
    summary = report_text.summary_md(dict(_run(), layers=[{
        "name": "conv_0", "weights": 1, "biases": 1, "kernel_bits": 4, "bias_bits": 4,
        "activation_bits": 4}]))
    assert "validation Y-PSNR (selection, 8 images): 29.18 dB" in summary
    assert "test Y-PSNR (held out, 6 images): 28.50 dB after the search trial, **28.90 dB**" \
        in summary
    assert "Test (held out, 6 images)" in report_text.splits_md(_run())
    assert "predates the held-out test split" in report_text.splits_md(_run(test=False))
    # make baselines for a run with TEST_IMAGES passes it on.
    assert "TEST_IMAGES=3" in report_text.baselines_command(
        {"profile": "quick", "data": {"test_images": 3}})
