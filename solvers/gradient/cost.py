"""base7's cost as a differentiable function of real-valued widths: the β·cost term of the loss.

The value is the project's model-free cost (solvers/search/hp_cost.py, CostModel) at the integer
widths the quantizers use, b = ceil(clip(f, lo, hi)) (quantizers.py), so what the loss sees is
what the rounded model costs. The gradient is the cost's at the real widths, so it changes
smoothly as widths move inside a step (straight-through: value at ceil, slope at f).

No formula is re-derived here: at construction every term of hp_cost's chain decomposition,
    cost = fixed + Σ_i conv_term(i, b_in_i, b_kernel_i, b_bias_i) + Σ_j act_term(j, b_j)
(b_in_0 = goal.input_bits, b_in_i = act_{i-1}'s width), is tabulated from the CostModel at every
integer width in [lo, hi]: conv_i over (b_in, b_kernel), act_j over b_j, biases fixed. Then
  value:    the table entries at the integer widths, summed in CostModel's order (equal to
            CostModel.cost, float for float);
  gradient: the tables interpolated (bilinearly for a convolution, linearly for a ReLU) at the
            real widths. bits is linear and bops bilinear in the widths, (b_a·b_w + b_a + b_w +
            log2(n·k²)), and interpolation reproduces such functions exactly: the gradient is the
            true one, e.g. ∂bops/∂b_w = p·m·n·k²·(f_a + 1). For energy (a QTools table) it is
            the piecewise-linear slope between neighbouring widths: a per-layer linearisation.
Costs are float64 (bops reach 1e10, beyond float32's exact integers).
"""
import tensorflow as tf
from keras import ops

from solvers.gradient.quantizers import WIDTH_RANGE, integer_width
from solvers.networks.layout import layer_names


class GradientCost:
    """base7's cost for one goal (bits, bops or energy) from real-valued kernel and ReLU widths.

    cost_model: solvers.search.hp_cost.CostModel (its goal, scale, m; with an energy table for
        goal type energy, covering every width in [lo, hi] at these bias widths).
    lo, hi: the learned widths' range (the space's, 2..8); hi > lo.
    bias_bits: the biases' fixed width, an int for every convolution or {conv name: int}
        (the shipped limit: 8).
    filters: None (base7's designed counts) or {conv name: filters}, as CostModel takes them.
    """

    def __init__(self, cost_model, lo=WIDTH_RANGE[0], hi=WIDTH_RANGE[1], bias_bits=8,
                 filters=None):
        if not (isinstance(lo, int) and isinstance(hi, int) and hi > lo):
            raise ValueError(f"width range [{lo}, {hi}]: two integers with lo < hi")
        self.cost_model, self.lo, self.hi, self.filters = cost_model, lo, hi, filters
        self.convs, self.acts = layer_names(cost_model.m)
        self.bias_bits = (dict(bias_bits) if isinstance(bias_bits, dict)
                          else dict.fromkeys(self.convs, bias_bits))
        missing = [c for c in self.convs if c not in self.bias_bits]
        if missing:
            raise ValueError(f"bias_bits: no width for {', '.join(missing)}")
        widths = range(lo, hi + 1)
        input_bits = cost_model.goal.input_bits
        self.fixed = float(cost_model.fixed(filters))
        # conv_i's table: rows b_in (one row, the image's input_bits, for conv_0), columns b_kernel.
        self.conv_tables = [
            tf.constant([[float(cost_model.conv_term(i, b_in, b_k, self.bias_bits[conv], filters))
                          for b_k in widths] for b_in in (widths if i else [input_bits])],
                        tf.float64)
            for i, conv in enumerate(self.convs)]
        self.act_tables = [
            tf.constant([float(cost_model.act_term(j, b, filters)) for b in widths], tf.float64)
            for j in range(len(self.acts))]

    def __call__(self, widths):
        """The cost (float64 scalar tensor, the goal's unit) of the widths: value at the integer
        widths, gradient at the real ones (module docstring).

        widths: {(conv name, "kernel"): f} for every convolution and {(act name, "activation"): f}
            for every ReLU; f a scalar (variable, tensor or number), any real number (clipped to
            [lo, hi] as the quantizers clip it)."""
        kernels = [self._width(widths, (c, "kernel")) for c in self.convs]
        acts = [self._width(widths, (a, "activation")) for a in self.acts]
        exact = tf.constant(self.fixed, tf.float64)
        smooth = tf.constant(0.0, tf.float64)
        for i, table in enumerate(self.conv_tables):  # CostModel._chain's order: conv_i, act_i
            b_in = acts[i - 1] if i else None
            exact += self._at_integers(table, b_in, kernels[i])
            smooth += self._interpolated(table, b_in, kernels[i])
            if i < len(self.act_tables):
                exact += self._at_integers(self.act_tables[i][None, :], None, acts[i])
                smooth += self._interpolated(self.act_tables[i][None, :], None, acts[i])
        # value: exact (smooth - smooth is exactly 0); gradient: smooth's.
        return tf.stop_gradient(exact) + (smooth - tf.stop_gradient(smooth))

    def layer_bits(self, widths):
        """{(layer, kind): int bits} of the widths as the quantizers round them, biases included:
        what CostModel.cost and the YAML's quantizer strings take."""
        out = {}
        for i, conv in enumerate(self.convs):
            out[conv, "kernel"] = self._integer(widths, (conv, "kernel"))
            out[conv, "bias"] = self.bias_bits[conv]
            if i < len(self.acts):
                out[self.acts[i], "activation"] = self._integer(widths, (self.acts[i], "activation"))
        return out

    def _width(self, widths, key):
        if key not in widths:
            raise ValueError(f"widths: no {key[1]} width for {key[0]}")
        return tf.cast(ops.convert_to_tensor(widths[key]), tf.float64)

    def _integer(self, widths, key):
        return integer_width(self._width(widths, key).numpy(), self.lo, self.hi)

    def _index(self, f):
        """The table index of ceil(clip(f)), without a gradient."""
        clipped = tf.clip_by_value(tf.stop_gradient(f), float(self.lo), float(self.hi))
        return tf.cast(tf.math.ceil(clipped), tf.int32) - self.lo

    def _at_integers(self, table, f_row, f_col):
        """table[row, column] at the integer widths (row 0 where the row is fixed)."""
        row = self._index(f_row) if f_row is not None else 0
        return tf.gather_nd(table, tf.stack([row, self._index(f_col)]))

    def _interpolated(self, table, f_row, f_col):
        """table interpolated at the real widths, the row and column each (bi)linearly."""
        weights_col = self._corners(f_col)
        weights_row = self._corners(f_row) if f_row is not None else [(0, 1.0)]
        total = tf.constant(0.0, tf.float64)
        for row, w_row in weights_row:
            for col, w_col in weights_col:
                total += w_row * w_col * tf.gather_nd(table, tf.stack([row, col]))
        return total

    def _corners(self, f):
        """[(lower index, 1 - u), (upper index, u)] of the cell [k, k+1] holding f, u = f - k.
        The clip is straight-through, so that a width outside the range still has a slope."""
        clipped = f + tf.stop_gradient(tf.clip_by_value(f, float(self.lo), float(self.hi)) - f)
        k = tf.clip_by_value(tf.math.floor(tf.stop_gradient(clipped)),
                             float(self.lo), float(self.hi - 1))
        u = clipped - k
        lower = tf.cast(k, tf.int32) - self.lo
        return [(lower, 1.0 - u), (lower + 1, u)]
