"""The objective: and goal: sections of a search-space YAML, checked into ObjectiveParams and Goal
(solvers/config.py reads the rest of the file)."""
import math

from solvers.config_base import ConfigError, check_bits
from solvers.objective_settings import Goal, ObjectiveParams


def objective(path, data):
    """ObjectiveParams from the `objective:` section (and its goal from `goal:`)."""
    raw = data.get("objective") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: objective: expected a mapping of delta_p, delta_n, rate, "
                          "stress, ref_bits")
    defaults = ObjectiveParams()
    keys = [k for k in defaults.__dataclass_fields__ if k not in NOT_YAML_KEYS]
    unknown = set(raw) - set(keys)
    if unknown:
        raise ConfigError(f"{path}: objective: unknown key {min(map(str, unknown))!r}; allowed: "
                          f"{', '.join(keys)} (the cost model and a budget are the top-level "
                          "goal: section)")
    values = {**defaults.__dict__, **raw}
    for key in ("delta_p", "delta_n", "rate", "stress"):
        if isinstance(values[key], bool) or not isinstance(values[key], (int, float)):
            raise ConfigError(f"{path}: objective: {key}: {values[key]!r} is not a number")
    check_bits(f"{path}: objective: ref_bits", values["ref_bits"])
    if not 0 <= values["delta_p"] < 100 or values["delta_n"] < 0:
        raise ConfigError(f"{path}: objective: delta_p must be in [0, 100) and delta_n >= 0")
    if values["rate"] <= 1 or values["stress"] <= 0:
        raise ConfigError(f"{path}: objective: rate must be > 1 and stress > 0")
    # The score divides by 1 + delta; the largest model (all float32) must keep it positive. (With
    # activations, BOPs or energy, float32 costs more than 32/ref_bits times the reference; this
    # bound is the weights' ratio, and blended_score rejects what it cannot score.)
    worst = math.log(values["ref_bits"] * values["stress"] / 32) / math.log(values["rate"])
    if worst < 0 and 1 + worst * values["delta_n"] / 100 <= 0:
        raise ConfigError(f"{path}: objective: delta_n {values['delta_n']} is too large: a float32 "
                          f"model would get a non-positive divisor; use delta_n < {-100 / worst:.1f}")
    return ObjectiveParams(**{k: values[k] for k in keys}, goal=goal(path, data))


NOT_YAML_KEYS = ("goal", "budget_cost")  # goal: its own section; budget_cost: resolved per run
GOAL_TYPES = ("bits", "bops", "energy")
BUDGET_FORMS = ("a cost in the goal's unit (a number > 0), uniformN (the cost of every layer at N "
                "bits as the limit leaves it), P% (of the reference: every layer at ref_bits), "
                "{uniform: N} or {fraction: F}")


def parse_budget(where, value):
    """A budget as the user writes it (YAML value or --budget text) -> ("cost", c) |
    ("uniform", bits) | ("fraction", f), or None for none; ConfigError naming `where` and the
    forms allowed otherwise."""
    def bad():
        return ConfigError(f"{where}: {value!r} is not a budget; allowed: {BUDGET_FORMS}")
    if value is None:
        return None
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in ("uniform", "fraction", "cost"):
            raise bad()
        kind, number = next(iter(value.items()))
        if kind == "uniform":
            return "uniform", check_bits(f"{where}: uniform", number)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not number > 0:
            raise bad()
        return kind, float(number)
    if isinstance(value, bool):
        raise bad()
    if isinstance(value, (int, float)):
        if not 0 < value < math.inf:
            raise bad()
        return "cost", float(value)
    text = str(value).strip().replace(" ", "").lower()
    try:
        if text.startswith("uniform"):
            return "uniform", check_bits(where, int(text[len("uniform"):]))
        if text.endswith("%"):
            fraction = float(text[:-1]) / 100
            if not 0 < fraction < math.inf:
                raise bad()
            return "fraction", fraction
        return parse_budget(where, float(text))
    except ValueError:
        raise bad() from None
# The values QTools knows (qkeras/qtools: config_public.py, run_qtools.py) and AutoQKeras passes.
GOAL_CHOICES = {"type": GOAL_TYPES, "process": ("horowitz",),
                "parameters_on_memory": ("sram", "dram", "fixed"),
                "activations_on_memory": ("sram", "dram"),
                "reference_internal": ("fp32", "fp16", "int8"),
                "reference_accumulator": ("fp32", "fp16", "int32")}


def goal(path, data):
    """Goal from the `goal:` section ({type: bits|bops|energy, and that type's parameters})."""
    raw = data.get("goal") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: goal: expected a mapping such as {{type: energy}}; allowed "
                          f"types: {', '.join(GOAL_TYPES)}")
    fields = Goal.__dataclass_fields__
    unknown = sorted(set(map(str, raw)) - set(fields))
    if unknown:
        raise ConfigError(f"{path}: goal: unknown key {unknown[0]!r}; allowed: {', '.join(fields)}")
    values = {**Goal().__dict__, **raw}
    for key, allowed in GOAL_CHOICES.items():
        if values[key] not in allowed:
            raise ConfigError(f"{path}: goal: {key}: {values[key]!r} is not one of "
                              f"{', '.join(allowed)}")
    for key in ("input_bits", "output_bits"):
        check_bits(f"{path}: goal: {key}", values[key])
    hw = values["input_hw"]
    hw = [hw, hw] if isinstance(hw, int) and not isinstance(hw, bool) else hw
    if not (isinstance(hw, (list, tuple)) and len(hw) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4096 for v in hw)):
        raise ConfigError(f"{path}: goal: input_hw: {values['input_hw']!r} is not [height, width] "
                          "of the reference LR input in pixels (1 to 4096 each)")
    values["input_hw"] = tuple(hw)
    values["budget"] = parse_budget(f"{path}: goal: budget", values["budget"])
    values["band"] = check_band(f"{path}: goal: band", values["band"])
    if not isinstance(values["rd_wr_on_io"], bool):
        raise ConfigError(f"{path}: goal: rd_wr_on_io: {values['rd_wr_on_io']!r} is not true or false")
    if isinstance(values["min_sram_size"], bool) or not isinstance(values["min_sram_size"], int) \
            or values["min_sram_size"] < 0:
        raise ConfigError(f"{path}: goal: min_sram_size: {values['min_sram_size']!r} is not an "
                          "integer >= 0")
    return Goal(**values)


def check_band(where, band):
    """The budget band's lower fraction, a number in (0, 1]."""
    if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 < band <= 1:
        raise ConfigError(f"{where}: {band!r} is not a number in (0, 1] (proposals are kept "
                          "between band x budget and the budget)")
    return float(band)
