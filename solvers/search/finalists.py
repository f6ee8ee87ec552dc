"""The pick at the full budget: the search's best trials, each retrained to the whole epoch budget,
and the best of them on the validation images is the answer.

Four-epoch trials mis-rank configurations within ~0.2 dB (docs/study.md), so the winner is not the
best trial but the best finalist after the retrain every answer gets anyway. Finalists are the
best completed trials by the search's objective (val_score: the blended score, or under a budget
the negated validation PSNR), only those within the budget, one per configuration; Hyperband's
trials are compared at equal epochs (its last round's first: a 2-epoch score is not set against
a 4-epoch one). Each finalist is retrained in results/<RUN>/finalists/trial_<id>/ (resumable: a
finished one is read back from its final.yaml), then the winner's two models are copied to
results/<RUN>/best_model.keras and best_model_retrained.keras.
"""
import os
import warnings

import keras

from solvers import files
from solvers.config import ConfigError
from solvers.search import cost, retrain, starting_points
from solvers.search.objective import blended_score, reference_cost


def epochs_of(trial, default):
    """The epochs a trial was trained for (Hyperband's tuner/epochs, else the search's)."""
    return int(trial.hyperparameters.values.get("tuner/epochs", default))


def values_of(trial):
    """A trial's hyperparameter values without Keras Tuner's own (tuner/epochs...)."""
    return {k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")}


def trial_cost(trial):
    """The goal's cost a trial recorded (ScoreCallback's `cost` metric), or None."""
    metrics = trial.metrics
    return metrics.get_last_value("cost") if metrics.exists("cost") else None


def choose(trials, count, epochs, budget_cost=None):
    """The finalists, best first: completed, scored trials within `budget_cost` (when given),
    one per configuration (its most-trained trial), ranked by (most epochs, best val_score)."""
    scored = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    if budget_cost is not None:
        scored = [t for t in scored if (c := trial_cost(t)) is not None
                  and c <= budget_cost * (1 + 1e-9)]
    ranked = sorted(scored, key=lambda t: (-epochs_of(t, epochs), t.score, int(t.trial_id)))
    chosen, seen = [], []
    for trial in ranked:
        if values_of(trial) not in seen:
            seen.append(values_of(trial))
            chosen.append(trial)
    return chosen[:count]


def _final_score(after, model, objective):
    """The objective after the retrain: lower is better (the same rule as val_score)."""
    if objective.budget_cost is not None:
        return -float(after["psnr"])
    trial_cost_ = cost.costs(model, objective.goal)["cost"]
    return blended_score(after["loss"], trial_cost_, reference_cost(model, objective), objective)


def retrain_all(tuner, finalists, data, epochs, total_epochs, steps_per_epoch, objective, run_dir,
                tb_dir):
    """Retrains every finalist (data: (train, val) pipelines) from its best epoch to
    `total_epochs`; returns [{trial_id, before, after, final_score}] in finalist order and copies
    the winner's (lowest final_score) models into run_dir."""
    train_ds, val_ds = data
    results = []
    for rank, trial in enumerate(finalists, 1):
        out_dir = os.path.join(run_dir, "finalists", f"trial_{trial.trial_id}")
        record_path = os.path.join(out_dir, "final.yaml")
        record = files.read_yaml(record_path, missing=None)
        if record is None or not os.path.exists(os.path.join(out_dir, "best_model_retrained.keras")):
            print(f"\nfinalist {rank}/{len(finalists)}: trial {trial.trial_id} "
                  f"(val_score {trial.score:.4f})", flush=True)
            with warnings.catch_warnings():  # the checkpoint holds no optimizer state
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model = tuner.load_model(trial)
            before, after = retrain.retrain_model(
                model, train_ds, val_ds, epochs_of(trial, epochs), total_epochs, steps_per_epoch,
                objective, out_dir, os.path.join(tb_dir, "retrain", f"trial_{trial.trial_id}"))
            record = {"trial_id": trial.trial_id,
                      "before": {k: float(v) for k, v in before.items()},
                      "after": {k: float(v) for k, v in after.items()},
                      "final_score": float(_final_score(after, model, objective))}
            files.write_yaml(record_path, record)
            keras.backend.clear_session()
        results.append(record)
    winner = min(results, key=lambda r: (r["final_score"], [f.trial_id for f in finalists]
                                         .index(r["trial_id"])))
    source = os.path.join(run_dir, "finalists", f"trial_{winner['trial_id']}")
    for name in ("best_model.keras", "best_model_retrained.keras"):
        files.copy(os.path.join(source, name), os.path.join(run_dir, name))
    return results, winner


def pick(tuner, count, profile, objective, data, run_dir, tb_dir, write_trials_csv):
    """The answer: `count` finalists retrained to the whole epoch budget (profile: epochs,
    retrain_epochs, steps_per_epoch), the best on validation. write_trials_csv(oracle, finals)
    rewrites trials.csv with their results. Returns (its values, val metrics before and after
    its retrain, summary.yaml's budget/proposals/finalists/winner records)."""
    oracle = tuner.oracle
    chosen = choose(oracle.trials.values(), count, profile.epochs, objective.budget_cost)
    if not chosen:
        raise ConfigError(f"{run_dir}: no completed trial within the budget; see trials.csv")
    results, winner = retrain_all(
        tuner, chosen, data, profile.epochs, profile.epochs + profile.retrain_epochs,
        profile.steps_per_epoch, objective, run_dir, tb_dir)
    finals = {r["trial_id"]: (rank, r["after"]["psnr"]) for rank, r in enumerate(results, 1)}
    write_trials_csv(oracle, finals)
    values = values_of(oracle.get_trial(winner["trial_id"]))
    start = oracle.start_label(values) or ""
    source = ("proposed" if not start else "exact allocation"
              if start == starting_points.EXACT_ALLOCATION else "starting point")
    goal = objective.goal
    record = {
        "finalists": [{"trial_id": r["trial_id"],
                       "start": oracle.start_label(values_of(t)) or "",
                       "trial_val_psnr": r["before"]["psnr"], "final_val_psnr": r["after"]["psnr"]}
                      for r, t in zip(results, chosen)],
        "winner": {"trial_id": winner["trial_id"], "start": start, "source": source},
        "proposals": oracle.proposal_counts() if hasattr(oracle, "proposal_counts") else {}}
    if objective.budget_cost is not None:
        record["budget"] = {"spec": goal.budget_text(), "goal": goal.type,
                            "cost": float(objective.budget_cost), "band": goal.band}
    print(f"\nthe answer: trial {winner['trial_id']} ({source}{': ' + start if start else ''}), "
          f"val PSNR {winner['after']['psnr']:.2f} dB after its retrain, best of "
          f"{len(results)} finalist(s)", flush=True)
    if objective.budget_cost is not None:
        print(f"proposals brought into the budget's band before they became trials: "
              f"{record['proposals'].get('redrawn', 0)} redrawn, "
              f"{record['proposals'].get('repaired', 0)} repaired", flush=True)
    return values, winner["before"], winner["after"], record
