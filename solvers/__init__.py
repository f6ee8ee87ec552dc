"""autoq solvers: configuration, data, network, cost, objective, training and search."""
