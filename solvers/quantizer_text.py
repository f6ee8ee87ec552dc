"""A qkeras quantizer string, read without importing qkeras (so parsing the YAML config loads no
TensorFlow): its name, its arguments and its bit width.

qkeras itself turns "quantized_bits(4,0,alpha=1.0)" into an object by looking the name up and
calling it with the literal arguments (qkeras.safe_eval). The same checks happen here against
PARAMETERS, the pinned qkeras' constructor signatures (tests/test_quantizer_text.py compares them
with qkeras.quantizers, so an upgrade that changes one fails a test instead of drifting): an unknown
name, an unknown keyword, too many arguments or a non-literal argument is a ValueError whose message
says which.
"""
import ast

# name: constructor parameters in order (qkeras.quantizers of qkeras-v3, pinned in requirements.txt).
PARAMETERS = {
    "bernoulli": ("alpha", "temperature", "use_real_sigmoid"),
    "binary": ("use_01", "alpha", "training", "use_stochastic_rounding", "scale_axis",
               "elements_per_scale", "min_po2_exponent", "max_po2_exponent"),
    "quantized_bits": ("bits", "integer", "symmetric", "keep_negative", "alpha",
                       "use_stochastic_rounding", "scale_axis", "qnoise_factor", "var_name",
                       "use_ste", "use_variables", "elements_per_scale", "min_po2_exponent",
                       "max_po2_exponent", "post_training_scale"),
    "quantized_hswish": ("bits", "integer", "symmetric", "alpha", "use_stochastic_rounding",
                         "scale_axis", "qnoise_factor", "var_name", "use_variables", "relu_shift",
                         "relu_upper_bound"),
    "quantized_linear": ("bits", "integer", "symmetric", "keep_negative", "alpha",
                         "use_stochastic_rounding", "scale_axis", "qnoise_factor", "var_name",
                         "use_variables"),
    "quantized_po2": ("bits", "max_value", "use_stochastic_rounding", "quadratic_approximation",
                      "log2_rounding", "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu": ("bits", "integer", "use_sigmoid", "negative_slope",
                       "use_stochastic_rounding", "relu_upper_bound", "is_quantized_clip",
                       "qnoise_factor", "var_name", "use_ste", "use_variables"),
    "quantized_relu_po2": ("bits", "max_value", "negative_slope", "use_stochastic_rounding",
                           "quadratic_approximation", "log2_rounding", "qnoise_factor", "var_name",
                           "use_ste", "use_variables"),
    "quantized_sigmoid": ("bits", "symmetric", "use_real_sigmoid", "use_stochastic_rounding"),
    "quantized_tanh": ("bits", "use_stochastic_rounding", "symmetric", "use_real_tanh"),
    "quantized_ulaw": ("bits", "integer", "symmetric", "u"),
    "stochastic_binary": ("alpha", "temperature", "use_real_sigmoid"),
    "stochastic_ternary": ("alpha", "threshold", "temperature", "use_real_sigmoid",
                           "number_of_unrolls"),
    "ternary": ("alpha", "threshold", "use_stochastic_rounding", "number_of_unrolls"),
}
DEFAULT_BITS = 8  # every quantizer with a `bits` parameter defaults to 8
FIXED_BITS = {"bernoulli": 1, "binary": 1, "stochastic_binary": 1, "stochastic_ternary": 2,
              "ternary": 2}


class UnknownQuantizer(ValueError):
    """The name is no qkeras quantizer (a Keras activation such as "relu", or a typo)."""


def parse(text):
    """(name, {parameter: value}) of a quantizer string, or ValueError saying what is wrong."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError("not a call such as quantized_bits(4,0,alpha=1.0)") from None
    if isinstance(node, ast.Name):  # qkeras accepts a bare class name: its defaults
        node = ast.Call(func=node, args=[], keywords=[])
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError("not a call such as quantized_bits(4,0,alpha=1.0)")  # noqa: TRY004
    name = node.func.id
    if name not in PARAMETERS:
        raise UnknownQuantizer(f"qkeras has no quantizer with a bit width named {name!r}; known: "
                               f"{', '.join(PARAMETERS)}")
    names = PARAMETERS[name]
    if len(node.args) > len(names):
        raise ValueError(f"{name} takes at most {len(names)} arguments, got {len(node.args)}")
    values = {p: _literal(name, a) for p, a in zip(names, node.args)}
    for keyword in node.keywords:
        if keyword.arg not in names:
            raise ValueError(f"{name} has no argument {keyword.arg!r}")
        if keyword.arg in values:
            raise ValueError(f"{name} got argument {keyword.arg!r} twice")
        values[keyword.arg] = _literal(name, keyword.value)
    return name, values


def _literal(name, node):
    """The value of a literal argument (qkeras' own parser takes literals only)."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise ValueError(f"{name}: argument {ast.unparse(node)!r} is not a literal "
                         "(a number, a quoted string, True, False or None)") from None


def bits(text):
    """The bit width of a quantizer string (what qkeras' object reports as `.bits`)."""
    name, values = parse(text)
    if name in FIXED_BITS:
        return FIXED_BITS[name]
    width = values.get("bits", DEFAULT_BITS)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width != int(width):
        raise ValueError(f"{name}: bits {width!r} is not an integer")
    return int(width)
