"""Load and validate every YAML file and option into plain dataclasses.

Anything a user can get wrong raises ConfigError with one line naming the file or option, the key,
and what is allowed; autoq.py prints it as `error: ...` and exits 2. ConfigError and the bit-width
check live in config_base.py, the objective: and goal: sections in config_objective.py.
"""
import argparse
import math
import re
import sys
import dataclasses
from dataclasses import dataclass, field

from solvers import files, quantizer_text
from solvers.config_base import ConfigError, check_bits
from solvers.config_objective import check_band, parse_budget
from solvers.config_objective import objective as _objective
from solvers.objective_settings import ObjectiveParams


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line `error: <prog>: ...` and exit 2, like every user error
    (argparse's own prints the usage too)."""

    def error(self, message):
        print(f"error: {self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


SECTIONS = ("kernel", "bias", "activation")
OPTIONAL_SECTIONS = ("limit", "objective", "goal", "tune_filters", "tune_filters_multipliers",
                     "tune_filters_exceptions")
TUNE_FILTERS = ("none", "block", "layer")
MULTIPLIERS = (0.5, 0.75, 1.0, 1.5, 2.0)  # AutoQKeras' filter_range
LAYER_TYPES = {"Conv2D": ("kernel", "bias"), "Activation": ("activation",)}


@dataclass(frozen=True)
class SearchSpace:
    """Quantizer string → bits, for each kind of quantizer; plus the max-bits limit and objective."""
    kernel: dict
    bias: dict
    activation: dict
    limit: dict = field(default_factory=dict)   # {key: {kind: max bits or (quantizer strings)}}
    shared: dict = field(default_factory=dict)  # {regex limit key: name of its shared choice}
    objective: ObjectiveParams = ObjectiveParams()
    tune_filters: str = "none"                   # none | block | layer (search/space.py)
    tune_filters_multipliers: tuple = MULTIPLIERS
    tune_filters_exceptions: str = None          # regex: layers (whole name) kept at their filters

    def uniform_widths(self):
        """The widths every kind of quantizer offers, ascending (a uniform configuration each)."""
        return sorted(set(self.kernel.values()) & set(self.bias.values())
                      & set(self.activation.values()))

    def quantizer(self, kind, bits):
        """The quantizer string of `kind` at `bits`: the first of that width in the YAML (the one
        every uniform baseline and starting point uses), None when the section has none."""
        return next((q for q, b in getattr(self, kind).items() if b == bits), None)


@dataclass(frozen=True)
class Profile:
    """How much work one run does. Every field can be overridden from the command line."""
    trials: int            # search trials (Hyperband sets its own count from epochs)
    epochs: int            # epochs per trial (Hyperband: max epochs of a trial)
    retrain_epochs: int    # extra epochs for the winner: total budget = epochs + retrain_epochs
    batch_size: int
    patch_size: int        # LR training patch side; the HR patch is patch_size × scale
    steps_per_epoch: int
    patience: int = 0      # stop a trial after this many epochs without a better val_score (0: never)


PROFILES = {
    # quick: `make random` in minutes on 2 CPU cores (measured time in the README: 9 min with one
    # finalist at 82b987f, 20 min with three while other jobs shared the cores).
    # 20 trials: the first 10-12 are the starting points (search/starting_points.py), the rest explore.
    "quick": Profile(trials=20, epochs=4, retrain_epochs=16, batch_size=16, patch_size=32,
                     steps_per_epoch=100),
    # paper: the upstream base7 project's protocol; 1000 steps per epoch gives its two million training steps.
    "paper": Profile(trials=100, epochs=20, retrain_epochs=180, batch_size=16, patch_size=64,
                     steps_per_epoch=1000, patience=5),
}


def _quantizer_bits(path, section, text):
    """Bit width of a qkeras quantizer string, or ConfigError if qkeras could not build it (read by
    solvers/quantizer_text.py against qkeras' signatures: no TensorFlow import)."""
    where = f'{path}: {section}: "{text}"'
    try:
        return quantizer_text.bits(text)
    except quantizer_text.UnknownQuantizer as e:
        raise ConfigError(f"{where}: not a qkeras quantizer with a bit width ({e})") from None
    except ValueError as e:
        raise ConfigError(f"{where}: qkeras cannot build this quantizer ({e})") from None


def _section(path, data, section):
    entries = data.get(section)
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{path}: {section}: expected a non-empty mapping "
                          '{"quantizer(...)": bits}')
    checked = {}
    for text, bits in entries.items():
        where = f'{path}: {section}: "{text}"'
        check_bits(where, bits)
        actual = _quantizer_bits(path, section, str(text))
        if actual != bits:
            raise ConfigError(f"{where}: says {bits} bits but the quantizer has {actual}")
        checked[str(text)] = bits
    return checked


KINDS = ("kernel", "bias", "activation")
DEFAULT = "default"     # limit key: every layer no other key matches
SHARED = "shared"       # limit value key: the layers a regex matches share one choice, this name


def _layer_kinds(name):
    return LAYER_TYPES["Conv2D" if name.startswith("conv_") else "Activation"]


def _limit(path, data, layer_names, sections):
    """The `limit` section → ({key: {kind: max bits or (quantizer strings)}}, {regex key: shared
    name}). A key is a layer type (Conv2D, Activation), a layer name, `default`, or a regular
    expression over layer names (re.fullmatch); see search/space.py: search_choices for the precedence."""
    raw = data.get("limit") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: limit: expected a mapping such as {{Conv2D: [8, 8], Activation: [8]}}")
    limit, shared = {}, {}
    for key, value in raw.items():
        key, where = str(key), f"{path}: limit: {key}"
        regex = False
        if key in LAYER_TYPES:
            kinds = LAYER_TYPES[key]
        elif key in layer_names:
            kinds = _layer_kinds(key)
        elif key == DEFAULT:
            kinds = KINDS
        else:
            allowed = (f"allowed: {', '.join(LAYER_TYPES)}, {DEFAULT}, a layer name "
                       f"({', '.join(layer_names)}) or a regular expression matching whole names")
            try:
                pattern = re.compile(key)
            except re.error as e:
                raise ConfigError(f"{path}: limit: unknown layer type or name {key!r}, and not a "
                                  f"valid regular expression ({e}); {allowed}") from None
            matched = [n for n in layer_names if pattern.fullmatch(n)]
            if layer_names and not matched:
                raise ConfigError(f"{path}: limit: unknown layer type or name {key!r}, and as a "
                                  f"regular expression it matches no layer; {allowed}")
            regex = True
            kinds = tuple(k for k in KINDS if any(k in _layer_kinds(n) for n in matched)) \
                if matched else KINDS
        limit[key], name = _limit_value(where, value, kinds, sections)
        if name is not None:
            if not regex:
                raise ConfigError(f"{where}: {SHARED}: only the layers of a regular-expression "
                                  "key can share a choice")
            if not re.fullmatch(r"[A-Za-z_]\w*", name) or name in layer_names \
                    or name in shared.values():
                raise ConfigError(f"{where}: {SHARED}: {name!r} is not a new name (letters, "
                                  "digits, _; not a layer name nor another shared name)")
            shared[key] = name
    return limit, shared


def _limit_value(where, value, kinds, sections):
    """({kind: max bits or (quantizer strings)}, shared name or None) of one limit entry."""
    def one(kind, v, at):
        if isinstance(v, list) and v and all(isinstance(q, str) for q in v):
            unknown = [q for q in v if q not in sections[kind]]
            if unknown:
                raise ConfigError(f'{at}: "{unknown[0]}" is not a quantizer of section {kind}')
            return tuple(v)
        return check_bits(at, v, "an integer from 1 to 32 (max bits) or a non-empty list of "
                                  f"quantizer strings of section {kind}")

    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - set(kinds) - {SHARED})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed: "
                              f"{', '.join(kinds + (SHARED,))}")
        name = value.get(SHARED)
        if SHARED in value and not isinstance(name, str):
            raise ConfigError(f"{where}: {SHARED}: {name!r} is not a name")
        return {k: one(k, v, f"{where}: {k}") for k, v in value.items() if k != SHARED}, name
    values = value if isinstance(value, list) else [value]
    if len(kinds) == 1 and values and all(isinstance(q, str) for q in values):
        return {kinds[0]: one(kinds[0], values, where)}, None  # [quantizer strings]
    if not 1 <= len(values) <= len(kinds):
        raise ConfigError(f"{where}: expected up to {len(kinds)} max bits "
                          f"({', '.join(kinds)}), or a mapping {{{': ..., '.join(kinds)}: ...}}, "
                          f"got {value!r}")
    values = values + values[-1:] * (len(kinds) - len(values))  # [8] on Conv2D means [8, 8]
    return {k: check_bits(where, v) for k, v in zip(kinds, values)}, None


def load_search_space(path, layer_names=()):
    """SearchSpace from quantization_config.yaml; layer_names are the names a limit may use."""
    data = files.read_yaml(path, expected=f"a mapping with sections {', '.join(SECTIONS)}")
    unknown = set(data) - set(SECTIONS) - set(OPTIONAL_SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section {min(map(str, unknown))!r}; allowed: "
                          f"{', '.join(SECTIONS + OPTIONAL_SECTIONS)}")
    sections = {s: _section(path, data, s) for s in SECTIONS}
    limit, shared = _limit(path, data, list(layer_names), sections)
    return SearchSpace(**sections, limit=limit, shared=shared,
                       objective=_objective(path, data), **_tune_filters(path, data))


def _tune_filters(path, data):
    """The tune_filters keys, checked: mode, multipliers (a tuple of positive numbers) and the
    exceptions regex (None when unset)."""
    mode = "none" if data.get("tune_filters") is None else data["tune_filters"]  # empty: none
    if mode not in TUNE_FILTERS:
        raise ConfigError(f"{path}: tune_filters: {mode!r} is not one of {', '.join(TUNE_FILTERS)}")
    multipliers = data.get("tune_filters_multipliers", list(MULTIPLIERS))
    if not isinstance(multipliers, list) or not multipliers or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < math.inf
            for x in multipliers):
        raise ConfigError(f"{path}: tune_filters_multipliers: {multipliers!r} is not a non-empty "
                          "list of positive numbers, e.g. [0.5, 0.75, 1, 1.5, 2]")
    exceptions = data.get("tune_filters_exceptions")
    if exceptions is not None:
        if not isinstance(exceptions, str):
            raise ConfigError(f"{path}: tune_filters_exceptions: {exceptions!r} is not a regular "
                              'expression string, e.g. "conv_[05]"')
        try:
            re.compile(exceptions)
        except re.error as e:
            raise ConfigError(f"{path}: tune_filters_exceptions: {exceptions!r} is not a valid "
                              f"regular expression ({e})") from None
    return {"tune_filters": mode, "tune_filters_multipliers": tuple(float(x) for x in multipliers),
            "tune_filters_exceptions": exceptions}


def with_goal_options(space, goal=None, budget=None, band=None):
    """`space` with the command line's --goal (a goal type), --budget (text: a budget form, or
    "none" to drop the YAML's) and --band applied over the YAML's goal: section; None keeps it."""
    changes = {}
    if goal is not None:
        changes["type"] = goal
    if budget is not None:
        changes["budget"] = None if budget == "none" else parse_budget("--budget", budget)
    if band is not None:
        changes["band"] = check_band("--band", band)
    if not changes:
        return space
    objective = dataclasses.replace(space.objective,
                                    goal=dataclasses.replace(space.objective.goal, **changes))
    return dataclasses.replace(space, objective=objective)
