"""The search: what a trial costs (cost), how it is scored (objective), the Keras Tuner that runs
the trials (tuners), the winner's retrain (retrain), the uniform baselines (baselines) and the
chief/worker launcher of a distributed search (distributed)."""
