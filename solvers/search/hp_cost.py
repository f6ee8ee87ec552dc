"""What a base7 configuration costs, from layer bits and filter counts alone: cost.py's numbers
without building a model, for an oracle that costs thousands of proposals.

size_bits, bits and bops are cost.py's formulas (see its docstring) on base7's layout (layout.py:
3x3 'same' stride-1 convolutions conv_0..conv_{m+2}, a ReLU act_j after conv_j, RGB in and out),
exact for any filter counts and with no TensorFlow. energy_pj comes from an EnergyTable of QTools'
per-layer energies, built once per search (build_energy_table, which does import TensorFlow).

Every cost is a chain, which an exact allocation (a dynamic programme along it) can use:
    cost = fixed(filters) + Σ_i conv_term(i, b_in_i, b_kernel_i, b_bias_i, filters)
                          + Σ_j act_term(j, b_j, filters)
with b_in_0 = goal.input_bits and b_in_i = the bits of act_{i-1} (i >= 1). A (layer, kind) missing
from layer_bits is float, FLOAT_BITS, as cost.py counts a layer without a quantizer.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from solvers.networks.layout import base_filters, layer_names
from solvers.objective_settings import Goal

FLOAT_BITS = 32   # cost.FLOAT_BITS (cost.py imports keras; tests check the two agree)
KERNEL_AREA = 9   # k² of base7's 3x3 convolutions
RGB = 3           # base7's input and output channels
COLUMNS = {"bits": "bits", "bops": "bops", "energy": "energy_pj"}  # goal type -> costs() column
# The Goal fields QTools' energy depends on: a table fits any goal that agrees on these.
ENERGY_SETTINGS = ("input_hw", "input_bits", "output_bits", "process", "parameters_on_memory",
                   "activations_on_memory", "min_sram_size", "rd_wr_on_io")


@dataclass(frozen=True)
class EnergyTable:
    """QTools' per-layer energies of base7 at its designed filters, in pJ (build_energy_table).

    conv: {(i, b_in, b_kernel, b_bias): (input reads, parameter reads, MAC op cost, merge)};
        merge is the anchor Add's additions for the last convolution (they depend on its
        accumulator), 0 otherwise. b_kernel = b_bias = FLOAT_BITS: a float Conv2D.
    act: {(j, bits): act_j's output writes}.
    fixed: every other layer: the anchor Concatenate's input reads and the output (clip) write.
    goal, scale, m: what it was built for; seconds: how long building it took.
    """
    goal: Goal
    scale: int
    m: int
    conv: dict
    act: dict
    fixed: float
    seconds: float = 0.0


class _Conv(NamedTuple):
    """One convolution's geometry at some filter counts, and the ratios that scale its energy
    terms from the designed counts (an approximation: see CostModel)."""
    n_in: int
    n_out: int
    weights: int
    fan_in: int
    log_fan_in: float
    input_ratio: float      # input reads ∝ n_in·H·W·b_in
    parameter_ratio: float  # parameter reads ∝ weights + biases
    mac_ratio: float        # MAC op cost ∝ MACs = H·W·k²·n_in·n_out
    output_ratio: float     # the ReLU's output writes ∝ n_out


class CostModel:
    """Costs of base7 configurations for one goal.

    goal: solvers.objective_settings.Goal (type, input_hw, input_bits, output_bits; the rest
        only through the energy table). scale, m: base7's upscaling factor and middle layers.
    energy_table: an EnergyTable for this goal (its ENERGY_SETTINGS), scale and m: needed for
        goal type "energy", otherwise optional (adds "energy_pj" to costs()).
    Filter counts other than the designed ones are exact for size_bits, bits and bops; energy
    scales each QTools term of the designed network by the ratio of what it is proportional to
    (_Conv's ratios), ignoring the memory model's log2(size) factor and a wider accumulator.
    """

    def __init__(self, goal, scale=3, m=4, energy_table=None):
        if goal.type not in COLUMNS:
            raise ValueError(f"goal type {goal.type!r}: expected one of {', '.join(COLUMNS)}")
        if energy_table is None and goal.type == "energy":
            raise ValueError("goal type energy needs an energy_table (build_energy_table)")
        if energy_table is not None and (
                any(getattr(energy_table.goal, f) != getattr(goal, f) for f in ENERGY_SETTINGS)
                or (energy_table.scale, energy_table.m) != (scale, m)):
            raise ValueError(f"energy_table was built for {energy_table.goal} at scale "
                             f"{energy_table.scale}, m {energy_table.m}, not this goal/scale/m")
        self.goal, self.scale, self.m, self.energy_table = goal, scale, m, energy_table
        self.convs, self.acts = layer_names(m)
        self.base = base_filters(scale, m=m)
        self._pixels = goal.input_hw[0] * goal.input_hw[1]
        self._column = COLUMNS[goal.type]
        self._geometries = {}

    def costs(self, layer_bits, filters=None):
        """{"size_bits", "bits", "bops", "cost"} (+ "energy_pj" with an energy table) of the
        configuration: layer_bits {(layer, kind): bits}, filters None or {conv name: filters}."""
        geometry = self._geometry(filters)
        columns = ["size_bits", "bits", "bops"] + ["energy_pj"] * (self.energy_table is not None)
        values = {c: self._chain(c, layer_bits, geometry) for c in columns}
        values["bits"] = float(values["bits"])  # as cost.bits
        values["cost"] = values[self._column]
        return values

    def cost(self, layer_bits, filters=None):
        """The goal type's cost (bits, bops or energy_pj) of the configuration, as a float."""
        return float(self._chain(self._column, layer_bits, self._geometry(filters)))

    def fixed(self, filters=None):
        """The goal's cost that no width changes: for bits the input image and the SR output."""
        return self._fixed(self._column, self._geometry(filters))

    def conv_term(self, i, b_in, b_kernel, b_bias, filters=None):
        """conv_i's part of the goal's cost when it reads b_in-bit inputs with a b_kernel-bit
        kernel and b_bias-bit biases (FLOAT_BITS: float)."""
        return self._conv(self._column, i, b_in, b_kernel, b_bias, self._geometry(filters))

    def act_term(self, j, bits, filters=None):
        """act_j's part of the goal's cost at `bits` (0 for bops: only convolutions count)."""
        return self._act(self._column, j, bits, self._geometry(filters))

    def _chain(self, column, layer_bits, geometry):
        """fixed + every conv_term and act_term along base7, in cost.py's order (bops: the same
        float sum)."""
        get = layer_bits.get
        total = self._fixed(column, geometry)
        b_in = self.goal.input_bits
        for i, conv in enumerate(self.convs):
            total += self._conv(column, i, b_in, get((conv, "kernel"), FLOAT_BITS),
                                get((conv, "bias"), FLOAT_BITS), geometry)
            if i < len(self.acts):
                b_in = get((self.acts[i], "activation"), FLOAT_BITS)
                total += self._act(column, i, b_in, geometry)
        return total

    def _fixed(self, column, geometry):
        if column == "bits":
            h, w = self.goal.input_hw
            s = self.scale  # as cost.activation_bits: the input image and the SR output
            return (h * w * RGB * self.goal.input_bits
                    + (h * s) * (w * s) * RGB * self.goal.output_bits)
        if column == "energy_pj":
            return self.energy_table.fixed
        return 0.0 if column == "bops" else 0

    def _conv(self, column, i, b_in, b_kernel, b_bias, geometry):
        c = geometry[0][i]
        if column in ("size_bits", "bits"):
            return c.weights * b_kernel + c.n_out * b_bias
        if column == "bops":  # cost.bops: p·m·n·k²·(b_a·b_w + b_a + b_w + log2(n·k²))
            return (self._pixels * c.n_out * c.fan_in
                    * (b_in * b_kernel + b_in + b_kernel + c.log_fan_in))
        entry = self.energy_table.conv.get((i, b_in, b_kernel, b_bias))
        if entry is None:
            raise ValueError(f"energy table: no {self.convs[i]} with {b_in}-bit inputs, a "
                             f"{b_kernel}-bit kernel and {b_bias}-bit biases")
        inputs, parameters, ops, merge = entry
        return inputs * c.input_ratio + parameters * c.parameter_ratio + ops * c.mac_ratio + merge

    def _act(self, column, j, bits, geometry):
        if column == "bits":
            return self._pixels * geometry[1][j] * bits
        if column != "energy_pj":
            return 0
        pj = self.energy_table.act.get((j, bits))
        if pj is None:
            raise ValueError(f"energy table: no {self.acts[j]} at {bits} bits")
        return pj * geometry[0][j].output_ratio

    def _geometry(self, filters):
        """(one _Conv per convolution, ReLU channels) at these filters, cached per filters."""
        key = tuple(sorted(filters.items())) if filters else ()
        geometry = self._geometries.get(key)
        if geometry is None:
            if len(self._geometries) > 100_000:  # filter searches offer far fewer; bound memory
                self._geometries.clear()
            geometry = self._geometries[key] = self._make_geometry(dict(key))
        return geometry

    def _make_geometry(self, filters):
        unknown = sorted(set(filters) - set(self.base))
        if unknown:
            raise ValueError(f"filters: no convolution {unknown[0]!r} in base7")
        last = self.convs[-1]
        if filters.get(last, self.base[last]) != self.base[last]:
            raise ValueError(f"filters: {last} must keep {self.base[last]} outputs")
        counts = {**self.base, **{k: int(n) for k, n in filters.items()}}
        if min(counts.values()) < 1:
            raise ValueError(f"filters: every layer needs at least 1, got {filters}")
        convs = []
        for i, name in enumerate(self.convs):
            n_in, n_out = (RGB if i == 0 else counts[self.convs[i - 1]]), counts[name]
            n_in0, n_out0 = (RGB if i == 0 else self.base[self.convs[i - 1]]), self.base[name]
            params, params0 = (KERNEL_AREA * n_in + 1) * n_out, (KERNEL_AREA * n_in0 + 1) * n_out0
            convs.append(_Conv(n_in, n_out, KERNEL_AREA * n_in * n_out, KERNEL_AREA * n_in,
                               math.log2(KERNEL_AREA * n_in), n_in / n_in0, params / params0,
                               n_in * n_out / (n_in0 * n_out0), n_out / n_out0))
        return tuple(convs), tuple(counts[name] for name in self.convs[:len(self.acts)])


def layer_bits_of(values, choices, bits_of):
    """{(layer, kind): bits} of hyperparameter values.

    values: {hyperparameter name: value}; choices: {name: QuantizerChoice-like} (attributes
    layers, kind, name, by_bits: space.search_choices); bits_of: {quantizer string: bits}, for
    choices whose values are quantizer strings (a by_bits choice's value is the width). A shared
    choice sets all its layers; a choice without a value leaves its layers out (float)."""
    out = {}
    for choice in choices.values():
        if choice.name not in values:
            continue
        value = values[choice.name]
        bits = int(value) if choice.by_bits else int(bits_of[value])
        for layer in choice.layers:
            out[layer, choice.kind] = bits
    return out


def build_energy_table(goal, scale=3, widths=range(2, 9), m=4, bias_widths=None,
                       quantizer=None):
    """EnergyTable of base7 at its designed filters from QTools, as energy.energy_pj calls it.

    widths: the kernel and activation widths to cover (add FLOAT_BITS for float layers);
    bias_widths: the bias widths (default: the largest quantized width, 8, the shipped space's
    only one). One whole model per (activation, kernel, bias) widths gives every conv_i (i >= 1)
    its (b_in, b_kernel, b_bias) entry at once (conv_0 always reads input_bits): bias bits are a
    dimension of their own, not a correction, because QTools' accumulator is as wide as the
    product or the bias needs (a max), so a bias width changes the MAC cost only at some widths.
    quantizer(kind, bits) -> quantizer string: default the shipped quantization_config.yaml's
    (config.SearchSpace.quantizer)."""
    from qkeras import quantized_bits
    from qkeras.qtools import run_qtools
    from qkeras.qtools import settings as qtools_settings

    from solvers.config import load_search_space
    from solvers.networks.base7 import base7
    from solvers.search import energy

    start = time.perf_counter()
    if quantizer is None:
        shipped = Path(__file__).resolve().parents[2] / "quantization_config.yaml"
        quantizer = load_search_space(shipped).quantizer
    widths = sorted(set(widths))
    bias_widths = sorted(set(bias_widths or [max(w for w in widths if w != FLOAT_BITS)]))
    convs, acts = layer_names(m)
    include = qtools_settings.cfg.include_energy

    def per_layer(b_act, b_kernel, b_bias):
        """{layer name: (class name, {energy key: pJ})}, the keys QTools' sum counts."""
        quantizers = {} if b_kernel == FLOAT_BITS else {
            c: {"kernel": quantizer("kernel", b_kernel), "bias": quantizer("bias", b_bias)}
            for c in convs}
        if b_act != FLOAT_BITS:
            quantizers.update({a: {"activation": quantizer("activation", b_act)} for a in acts})
        if None in [q for layer in quantizers.values() for q in layer.values()]:
            raise ValueError("build_energy_table: no quantizer for activation/kernel/bias "
                             f"widths {b_act}/{b_kernel}/{b_bias}")
        clone, _ = energy.costing_clone(base7(scale=scale, m=m, quantizers=quantizers), goal)
        source = quantized_bits(goal.input_bits, goal.input_bits, keep_negative=False, alpha=1)
        with energy._quiet():  # as energy.energy_pj, which only returns the sum
            q = run_qtools.QTools(clone, process=goal.process, source_quantizers=[source],
                                  is_inference=True, weights_path=None,
                                  keras_quantizer=energy.FLOAT, keras_accumulator=energy.FLOAT,
                                  for_reference=False)
            pe = q.pe(weights_on_memory=goal.parameters_on_memory,
                      activations_on_memory=goal.activations_on_memory,
                      min_sram_size=goal.min_sram_size, rd_wr_on_io=goal.rd_wr_on_io)
        return {name: (e["class_name"], {k: e["energy"][k] for k in
                                         include.get(e["class_name"], include["default"])})
                for name, e in pe.items() if name != "total_cost"}

    conv, act, fixed = {}, {}, 0.0
    for b_bias in bias_widths:
        for b_act in widths:
            for b_kernel in widths:
                if b_kernel == FLOAT_BITS and b_bias != bias_widths[0]:
                    continue  # a float Conv2D has no bias width: built once
                layers = per_layer(b_act, b_kernel, b_bias)
                energies = {name: e for name, (_, e) in layers.items()}
                b_b = FLOAT_BITS if b_kernel == FLOAT_BITS else b_bias
                for i, name in enumerate(convs):
                    e = energies.pop(name)
                    conv[i, b_act if i else goal.input_bits, b_kernel, b_b] = [
                        e.get("inputs", 0.0), e.get("parameters", 0.0), e.get("op_cost", 0.0), 0.0]
                # The anchor Add sums the last convolution's accumulator: its cost goes there.
                adds = [name for name, (kind, _) in layers.items() if kind == "Add"]
                conv[len(convs) - 1, b_act, b_kernel, b_b][3] = sum(
                    sum(energies.pop(name).values()) for name in adds)
                act.update({(j, b_act): sum(energies.pop(a).values()) for j, a in enumerate(acts)})
                fixed = sum(sum(e.values()) for e in energies.values())  # the same in every model
    return EnergyTable(goal, scale, m, {k: tuple(v) for k, v in conv.items()}, act, fixed,
                       time.perf_counter() - start)
