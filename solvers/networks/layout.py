"""base7's layer and hyperparameter names: plain strings, no TensorFlow, so the config parser and the
command lines can name layers before any model exists (solvers/networks/base7.py builds them)."""


def layer_names(m=4):
    """(conv names, activation names) of base7 with m middle layers: m+3 convolutions, m+2 ReLUs."""
    return [f"conv_{i}" for i in range(m + 3)], [f"act_{i}" for i in range(m + 2)]


def hp_name(layer, kind):
    """Name of one layer's quantizer string: the trials.csv column and best_config.yaml key (and
    the hyperparameter where widths do not name the quantizers), e.g. conv_3_kernel, act_0_activation."""
    return f"{layer}_{kind}"
