"""The search space as hyperparameters: each layer's quantizer choices after the `limit`
(search_choices) and the filter search of `tune_filters` (filter_search, filter_choices), from a
validated config.SearchSpace. ConfigError for a limit that leaves a layer nothing."""
import re

from solvers.config import DEFAULT, KINDS, LAYER_TYPES, ConfigError
from solvers.networks.base7 import FilterSearch, QuantizerChoice
from solvers.networks.layout import base_filters, hp_name, searchable_convs


def _deciding_limit(space, names, layer, layer_type, kind, path):
    """(key, max bits or quantizer strings) of the limit entry that decides one layer's kind:
    its exact name > a regular expression (re.fullmatch) > its type > default; (None, 32) for
    none. Two regular expressions deciding the same layer's kind are a ConfigError."""
    regexes = [k for k, spec in space.limit.items() if kind in spec and k not in LAYER_TYPES
               and k != DEFAULT and k not in names and re.fullmatch(k, layer)]
    if len(regexes) > 1:
        raise ConfigError(f"{path}: limit: {regexes[0]!r} and {regexes[1]!r} both set {layer}'s "
                          f"{kind}; make one of them not match it, or add a {layer} key")
    for key in [layer, *regexes, layer_type, DEFAULT]:
        if kind in space.limit.get(key, {}):
            return key, space.limit[key][kind]
    return None, 32


def _choice(layers, kind, name, options):
    """A QuantizerChoice over [(bits, quantizer)]: by width where each width has one quantizer."""
    widths = [bits for bits, _ in options]
    if len(set(widths)) == len(widths):
        return QuantizerChoice(layers, kind, f"{name}_bits", tuple(widths), dict(options))
    return QuantizerChoice(layers, kind, name, tuple(q for _, q in options),
                           {q: q for _, q in options})


def search_choices(space, conv_names, act_names, path="quantization_config.yaml"):
    """{hyperparameter name: base7.QuantizerChoice} of every layer's quantizers after the limit.

    Which limit entry decides a layer's kind: its exact name > a regular expression over layer
    names (re.fullmatch) > its type (Conv2D, Activation) > default; an entry is max bits or a
    list of the section's quantizer strings. An empty choice is a ConfigError.
    Where each width left has one quantizer (the shipped config) the hyperparameter is the width,
    an ordered integer named <layer>_<kind>_bits (conv_0_kernel_bits, act_0_activation_bits),
    mapped to its quantizer through the YAML; where two quantizers of a layer share a width it
    is the quantizer string, named <layer>_<kind> (conv_0_kernel) as before. The layers of a
    regular-expression entry with `shared: NAME` take one choice per kind, NAME_<kind>_bits (or
    NAME_<kind>), and must be left the same options.
    """
    names = list(conv_names) + list(act_names)
    layers = [(c, "Conv2D", k) for c in conv_names for k in ("kernel", "bias")]
    layers += [(a, "Activation", "activation") for a in act_names]
    per_layer = {}  # (layer, kind): [(bits, quantizer)], fewest bits first
    for layer, layer_type, kind in layers:
        key, spec = _deciding_limit(space, names, layer, layer_type, kind, path)
        section = getattr(space, kind)
        if isinstance(spec, tuple):
            options = sorted((section[q], q) for q in spec)
        else:
            options = sorted((bits, q) for q, bits in section.items() if bits <= spec)
        if not options:
            raise ConfigError(f"{path}: limit: {layer} {kind} at most {spec} bits leaves no "
                              f"quantizer in section {kind}")
        per_layer[layer, kind] = options
    groups = {}  # (layer, kind): the shared group's layers
    for key, name in space.shared.items():
        for kind in KINDS:
            group = tuple(layer for layer, _, k in layers if k == kind and re.fullmatch(key, layer))
            for layer in group:
                if (layer, kind) in groups:
                    raise ConfigError(f"{path}: limit: {key}: {layer} is already in another "
                                      "shared choice")
                if per_layer[layer, kind] != per_layer[group[0], kind]:
                    raise ConfigError(f"{path}: limit: {key}: shared layers {group[0]} and "
                                      f"{layer} are left different {kind} options")
                groups[layer, kind] = (hp_name(name, kind), group)
    choices = {}
    for layer, _, kind in layers:
        name, group = groups.get((layer, kind), (hp_name(layer, kind), (layer,)))
        if group[0] == layer:  # a shared choice comes where its first layer's would
            choice = _choice(group, kind, name, per_layer[layer, kind])
            choices[choice.name] = choice
    return choices


def filter_search(space, scale=3, m=4, path="quantization_config.yaml"):
    """The FilterSearch of tune_filters (None for none: no filter hyperparameter at all).

    Searched: every convolution but the last (base7.searchable_convs: its 3·scale² outputs feed
    depth-to-space and the anchor add) whose whole name does not match tune_filters_exceptions
    (re.fullmatch: "conv_1" never also catches a conv_10). An exceptions regex that matches no
    searchable layer, or that leaves none, is a ConfigError.
    """
    if space.tune_filters == "none":
        return None
    searchable = searchable_convs(m)
    pattern = space.tune_filters_exceptions
    kept = [c for c in searchable if pattern is not None and re.fullmatch(pattern, c)]
    if pattern is not None and not kept:
        raise ConfigError(f"{path}: tune_filters_exceptions: {pattern!r} matches no searchable "
                          f"layer (the whole name must match: {', '.join(searchable)})")
    if len(kept) == len(searchable):
        raise ConfigError(f"{path}: tune_filters_exceptions: {pattern!r} keeps every searchable "
                          "layer at its width; use tune_filters: none")
    designed = base_filters(scale, m=m)
    return FilterSearch(space.tune_filters, space.tune_filters_multipliers,
                        {c: designed[c] for c in searchable if c not in kept})


def filter_choices(space, scale=3, m=4, path="quantization_config.yaml"):
    """{hyperparameter name: options} of the filter search, next to search_choices: {} for
    tune_filters: none, {"filters_multiplier": [multipliers]} for block, {"conv_i_filters":
    [filter counts]} per searched layer for layer."""
    search = filter_search(space, scale, m, path)
    return search.choices() if search else {}
