"""The search: its hyperparameters (space), what a trial costs (cost, energy), how it is scored
(objective), the Keras Tuner that runs the trials (tuners), the winner's retrain (retrain), the
uniform baselines (baselines) and the chief/worker launcher of a distributed search (distributed)."""
