"""Bit widths learned by gradient descent under a cost budget (HGQ-style): fake quantizers with a
learnable width and a surrogate gradient for it (quantizers), base7's cost as a differentiable
function of real-valued widths (cost), and the controller that steers the cost's weight β so the
rounded model ends within the budget (controller). No model building here, and nothing that
imports solvers.run."""
