"""report.md's "Budget and finalists" section, from summary.yaml's records (search/finalists.py):
the budget the user named and what it cost in proposals, then every finalist's PSNR after its
trial and after its retrain to the full budget, and where the answer came from."""
from solvers.search.budget import UNITS


def section(summary, rows=()):
    """Markdown lines ([] for a summary without finalists: an older run); rows: trials.csv's, to
    count the trained trials over the budget (there should be none)."""
    if not summary or not summary.get("finalists"):
        return []
    lines = ["## Budget and finalists\n"]
    budget, proposals = summary.get("budget"), summary.get("proposals") or {}
    if budget:
        lines.append(f"Budget: {budget['spec']} = {budget['cost']:.6g} {UNITS[budget['goal']]} "
                     f"({budget['goal']}); proposals kept within [{budget['band']:g} x budget, "
                     f"budget]: {proposals.get('redrawn', 0)} redrawn, "
                     f"{proposals.get('repaired', 0)} repaired before they became trials. "
                     f"{_over_budget(rows, budget['cost'])}\n")
    else:
        lines.append("No budget: the finalists are the best trials by the blended val_score.\n")
    lines += [("| finalist | trial | starting point | val PSNR after the trial (dB) | "
               "val PSNR after the retrain (dB) |"), "|---:|---|---|---:|---:|"]
    for rank, f in enumerate(summary["finalists"], 1):
        lines.append(f"| {rank} | {f['trial_id']} | {f['start'] or '(proposed by the search)'} | "
                     f"{f['trial_val_psnr']:.3f} | {f['final_val_psnr']:.3f} |")
    winner = summary.get("winner") or {}
    lines.append(f"\nThe answer: trial {winner.get('trial_id')}, {winner.get('source')}"
                 + (f" ({winner['start']})" if winner.get("start") else "")
                 + ", the best finalist on the validation images after its retrain.\n")
    return lines


def _over_budget(rows, budget_cost):
    """The sentence that counts trained trials over the budget, from trials.csv's cost column."""
    trained = [r for r in rows if r.get("status") == "COMPLETED" and r.get("cost") not in ("", None)]
    over = [r["trial_id"] for r in trained if float(r["cost"]) > budget_cost * (1 + 1e-9)]
    if over:
        return f"**{len(over)} trained trial(s) cost more than the budget: {', '.join(over)}.**"
    return f"None of the {len(trained)} trained trials costs more than the budget."
