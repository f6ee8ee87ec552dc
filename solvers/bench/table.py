"""make bench's printed table: the ratios first, then the absolute numbers (median [min-max])
they come from, read from the result that solvers.bench.speed writes to bench.json."""


def _fmt(s):
    return f"{s['median'] * 1e3:9.2f} ms [{s['min'] * 1e3:.2f}-{s['max'] * 1e3:.2f}]"


def print_table(r):
    """The ratios first, then the absolute numbers they come from (median [min-max])."""
    m, peak, p, i, s = (r[k] for k in ("machine", "peak_matmul", "pipeline", "inference", "search"))
    print(f"\nbench on {m['cpu']} ({m['cores']} cores), {r['repeats']} repeats"
          f"{' (smoke)' if r['smoke'] else ''}\n\n{'train step':<28}{'quant/float':>12}"
          f"{'XLA/no-XLA float':>18}{'XLA/no-XLA quant':>18}{'qkeras/float':>14}")
    for name, t in r["train_step"]["settings"].items():
        q, label = t["ratios"], f"{name} b{t['batch']} p{t['patch']}"
        print(f"{label + ' no XLA':<28}{q['quant/float']:>12.2f}{q['float_xla/float']:>18.2f}"
              f"{q['quant_xla/quant']:>18.2f}{q['quant_qkeras/float']:>14.2f}\n{label + ' XLA':<28}{q['quant_xla/float_xla']:>12.2f}")
    print(f"\npeak: {peak['n']}x{peak['n']} matmul {_fmt(peak['seconds']['matmul'])} "
          f"= {peak['gflop_s']:.1f} GFLOP/s")
    for name, t in r["train_step"]["settings"].items():
        print(f"{name} ({t['gflop_per_step']:.2f} GFLOP/step)")
        for v, sec in t["seconds"].items():
            print(f"  {v:<10}{_fmt(sec)}/step  {t['gflop_s'][v]:7.1f} GFLOP/s  "
                  f"{t['peak_fraction'][v]:6.1%} of peak")
    print(f"\ninput pipeline (b{p['batch']} p{p['patch']}, quant, {p['steps_per_fit']} steps/fit): "
          f"real/in-memory time per step {p['ratios']['real/memory']:.2f}")
    for k, sec in p["seconds"].items():
        print(f"  {k:<10}{_fmt(sec)}/step  {p['steps_per_s'][k]:.1f} steps/s")
    print(f"\ninference {i['width']}x{i['height']} LR: quant/float {i['ratios']['quant/float']:.2f}, "
          f"weights folded once {i['ratios']['quant_folded/float']:.2f}, "
          f"qkeras' quantized_relu {i['ratios']['quant_qkeras/float']:.2f}")
    for k, sec in i["seconds"].items():
        print(f"  {k:<10}{_fmt(sec)}")
    q = {k.split("/")[0]: v for k, v in s["ratios"].items()}
    print(f"\nsearch ({s['trials']} trials x {s['epochs']} epoch x {s['steps_per_epoch']} steps, "
          f"b{s['batch']} p{s['patch']}): overhead per trial / quick trial training "
          f"{q['overhead_per_trial']:.1%} = tracing {q['overhead_tracing_per_trial']:.1%} "
          f"+ validation {q['overhead_validation_per_trial']:.1%} "
          f"+ the rest {q['overhead_other_per_trial']:.1%}")
    for k, sec in s["seconds"].items():
        print(f"  {k:<30}{_fmt(sec)}")
