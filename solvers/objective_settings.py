"""The YAML's `objective:` and `goal:` sections as plain values (config_objective.py checks and
builds them; search/objective.py and search/cost.py use them). Nothing here imports TensorFlow, so
a config is parsed without it."""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Goal:
    """The YAML `goal:` section: which cost the objective weighs, and the cost models' settings."""
    type: str = "bits"           # "bits" | "bops" | "energy": the cost the objective uses
    input_hw: tuple = (64, 64)   # reference LR input size (base7 is fully convolutional)
    input_bits: int = 8          # AutoQKeras' input_bits / output_bits
    output_bits: int = 8
    process: str = "horowitz"    # QTools energy parameters, as AutoQKeras exposes them
    parameters_on_memory: str = "sram"
    activations_on_memory: str = "sram"
    min_sram_size: int = 0
    rd_wr_on_io: bool = False
    reference_internal: str = "int8"
    reference_accumulator: str = "int32"
    # A budget the user names (config_objective.parse_budget's normal form): ("cost", c) in the
    # goal's unit, ("uniform", b) the cost of every layer at b bits as the limit leaves it, or
    # ("fraction", f) of the reference (the network at ref_bits); None: the blended objective.
    budget: tuple = None
    band: float = 0.9            # proposals are kept within [band * budget, budget]

    def budget_text(self):
        """The budget as the user writes it (uniform3, 35%, 1.2e+09), or None."""
        if self.budget is None:
            return None
        kind, value = self.budget
        return {"uniform": f"uniform{value}", "fraction": f"{value * 100:g}%"}.get(kind, f"{value:g}")


@dataclass(frozen=True)
class ObjectiveParams:
    """The YAML `objective:` section: the blended score's parameters (search/objective.py)."""
    # 3 % of L1 per halving of cost is about 0.5 dB of PSNR per halving (make study measures it:
    # 1 dB of validation PSNR is 5.9 % of L1 over its trials): between the uniform curve's slope
    # below 6 bits (0.8-2.8 dB per halving) and above, so the score picks the knee. AutoQKeras' 8
    # forgave 1.3 dB per halving and picked cheaper, clearly worse models (README, The objective).
    delta_p: float = 3.0
    delta_n: float = 3.0
    rate: float = 2.0
    stress: float = 1.0
    ref_bits: int = 8
    goal: Goal = field(default_factory=Goal)  # the YAML's `goal:` section: what costs
    # The budget in the goal's unit, resolved from goal.budget for this run's network and space
    # (search/budget.py); None without a budget. Not a YAML key: run.search_setup sets it. With
    # it, val_score is the negated validation PSNR (search/objective.py).
    budget_cost: float = None
