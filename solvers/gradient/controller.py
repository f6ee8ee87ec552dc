"""β, the weight of the cost in loss + β·cost, steered so that the rounded model ends within the
budget: HGQ2's BetaPID (calad0i/HGQ2, src/hgq/utils/sugar/beta_pid.py, its default log mode),
as a plain object the training loop calls, not a Keras callback.

The control law, once per update (a step or an epoch, as the caller chooses):
    error     = log10(cost / budget)     > 0 over budget, < 0 under it
    integral += error
    β         = 10 ** (p·error + i·integral + d·(error - previous error)),  clipped to [min, max]
β moves multiplicatively: a cost twice the budget multiplies β by 2^p at once and by 2^i per
update after, whatever the cost's unit. The first update after the warm-up seeds the integral so
that it returns init_beta exactly (HGQ2's seeding), so β starts from a known value.

Two additions to HGQ2's law, both for "ends at or under the budget":
  band: a dead zone. A cost in [band·budget, budget] is on target (error 0: β holds), below it the
      error is log10(cost / (band·budget)). The rounded cost moves in steps, so a target of
      exactly `budget` is rarely hit and β would hunt around it; with a band (the goal's band,
      0.9 by default in the YAML) the feasible band is a resting place. band = 1: HGQ2's law.
  anti-windup: an update whose β is clipped at a bound does not integrate, so a β held at max_beta
      (or min_beta) leaves the bound as soon as the error changes sign instead of first unwinding
      everything integrated while it was held there.
"""
import math


class BetaPID:
    """β for loss + β·cost, from the cost measured at each update (HGQ2's BetaPID, log mode).

    budget: the cost to end at or under (the cost's unit, > 0).
    init_beta: β during the warm-up and the first update's output (> 0: the law is in log space).
    p, i, d: proportional, integral (> 0: the seeding divides by it) and derivative gains on
        log10(cost / budget). HGQ2's defaults (1, 2e-3, 0) are for one update per epoch; one per
        step wants a larger i relative to the number of steps.
    warmup: updates that return init_beta before the law starts.
    band: the dead zone [band·budget, budget], 0 < band <= 1 (module docstring).
    min_beta, max_beta: bounds on β.
    """

    def __init__(self, budget, init_beta, p=1.0, i=2e-3, d=0.0, warmup=0, band=1.0,
                 min_beta=0.0, max_beta=math.inf):
        if not budget > 0:
            raise ValueError(f"budget {budget!r}: a cost > 0")
        if not init_beta > 0:
            raise ValueError(f"init_beta {init_beta!r}: > 0 (the law works on log10 β)")
        if not i > 0:
            raise ValueError(f"integral gain {i!r}: > 0 (the first update divides by it)")
        if not 0 < band <= 1:
            raise ValueError(f"band {band!r}: in (0, 1]")
        if not 0 <= min_beta <= init_beta <= max_beta:
            raise ValueError(f"beta bounds: need 0 <= min_beta <= init_beta <= max_beta, got "
                             f"{min_beta}, {init_beta}, {max_beta}")
        self.budget, self.band = float(budget), float(band)
        self.p, self.i, self.d = float(p), float(i), float(d)
        self.warmup, self.min_beta, self.max_beta = int(warmup), float(min_beta), float(max_beta)
        self.beta = float(init_beta)
        self.updates = 0          # calls of update() so far
        self.integral = None      # seeded by the first update after the warm-up
        self.previous_error = 0.0

    def error(self, cost):
        """The controlled error of a cost: log10(cost / budget) over the budget, log10(cost /
        (band·budget)) under the band, 0 inside [band·budget, budget]."""
        if not cost > 0:
            raise ValueError(f"cost {cost!r}: > 0 (the error is a log)")
        if cost > self.budget:
            return math.log10(cost / self.budget)
        return min(0.0, math.log10(cost / (self.band * self.budget)))

    def update(self, cost):
        """The new β (also self.beta) after measuring `cost`, the rounded model's cost now."""
        self.updates += 1
        if self.updates <= self.warmup:
            return self.beta
        error = self.error(float(cost))
        if self.integral is None:
            # Seed so that this update returns β exactly:
            # p·e + i·(integral + e) + d·(e - 0) = log10 β.
            self.integral = (math.log10(self.beta) - (self.p + self.d) * error) / self.i - error
        integral = self.integral + error
        log_beta = (self.p * error + self.i * integral
                    + self.d * (error - self.previous_error))
        beta = 10.0 ** min(log_beta, 300.0)  # 1e300 is past any bound; 10**400 would overflow
        # Anti-windup: no integration while the error pushes β further into a bound.
        pushing_up = beta > self.max_beta and error > 0
        pushing_down = beta < self.min_beta and error < 0
        if not (pushing_up or pushing_down):
            self.integral = integral
        self.previous_error = error
        self.beta = min(max(beta, self.min_beta), self.max_beta)
        return self.beta
