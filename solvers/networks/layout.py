"""base7's layout without TensorFlow: layer names, hyperparameter names and filter counts, so the
config parser, the command lines and the reports can name layers and count filters before (or
without) building a model (solvers/networks/base7.py builds them)."""
import math

FILTERS_MULTIPLIER = "filters_multiplier"  # the one hyperparameter of tune_filters: block


def layer_names(m=4):
    """(conv names, activation names) of base7 with m middle layers: m+3 convolutions, m+2 ReLUs."""
    return [f"conv_{i}" for i in range(m + 3)], [f"act_{i}" for i in range(m + 2)]


def hp_name(layer, kind):
    """Name of one layer's quantizer string: the trials.csv column and best_config.yaml key (and
    the hyperparameter where widths do not name the quantizers), e.g. conv_3_kernel, act_0_activation."""
    return f"{layer}_{kind}"


def base_filters(scale=3, num_fea=28, m=4, out_channels=3):
    """{conv name: output channels} of base7 as designed: num_fea for conv_0..conv_m, and
    out_channels·scale² for the last two (27 at ×3)."""
    up_channels = out_channels * scale * scale
    return dict(zip(layer_names(m)[0], [num_fea] * (m + 1) + [up_channels, up_channels]))


def searchable_convs(m=4):
    """The convolutions whose filter count a filter search may change: all but the last. The last one's
    3·scale² outputs are fixed by depth-to-space and the anchor add. The one before it (conv_5,
    also 3·scale² wide by design) feeds only the last, through its ReLU: any count works there."""
    return layer_names(m)[0][:-1]


def scaled_filters(base, multiplier):
    """A filter count times a multiplier, rounded half up (not Python's half-to-even), at least 1."""
    return max(1, math.floor(base * multiplier + 0.5))
