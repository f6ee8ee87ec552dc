"""quantization_config.yaml: the shipped file, its validation, the limit and search_choices."""
import pytest

from solvers.config import ConfigError, load_search_space
from solvers.search.space import filter_choices, search_choices
from solvers.networks.base7 import layer_names, quantizer_values
from solvers.search.objective import ObjectiveParams

CONV, ACT = layer_names()
GOOD_KERNEL = '  "quantized_bits(4,0,alpha=1.0)": 4\n'


def write(tmp_path, text):
    path = tmp_path / "q.yaml"
    path.write_text(text)
    return path


def minimal(extra="", kernel=GOOD_KERNEL):
    return (f"kernel:\n{kernel}bias:\n{GOOD_KERNEL}activation:\n"
            '  "quantized_relu(4,4)": 4\n' + extra)


def test_seed_config_still_loads():
    space = load_search_space("configs/upstream_quantization_config.yaml", CONV + ACT)
    assert space.kernel["quantized_bits(2,0,alpha=1.0)"] == 2
    assert space.activation["quantized_relu(8,8)"] == 8


def test_shipped_config_has_bits_2_to_8_everywhere():
    space = load_search_space("quantization_config.yaml", CONV + ACT)
    for section in (space.kernel, space.bias, space.activation):
        assert sorted(section.values()) == list(range(2, 9))
    assert space.kernel['quantized_bits(2,0,alpha="auto_po2")'] == 2
    assert space.bias["quantized_bits(2,0,alpha=1.0)"] == 2
    assert space.activation["quantized_relu(2,8)"] == 2
    assert space.objective == ObjectiveParams()
    choices = search_choices(space, CONV, ACT)
    # The shipped limit fixes every bias at 8 bits (biases do not move PSNR: README, Sensitivity).
    assert len(choices) == 20
    assert all(c.options == ((8,) if c.kind == "bias" else tuple(range(2, 9)))
               for c in choices.values())
    # One quantizer per width: the hyperparameters are the widths, mapped back through the YAML.
    assert sorted(choices)[:3] == ["act_0_activation_bits", "act_1_activation_bits",
                                   "act_2_activation_bits"]
    assert choices["conv_0_kernel_bits"].quantizers[5] == 'quantized_bits(5,0,alpha="auto_po2")'
    assert choices["conv_6_bias_bits"].quantizers[8] == "quantized_bits(8,0,alpha=1.0)"
    assert space.tune_filters == "none" and filter_choices(space) == {}  # no filter search


@pytest.mark.parametrize("text, parts", [
    (minimal(kernel='  "quantized_bitz(4,0)": 4\n'), ['kernel: "quantized_bitz(4,0)"', "not a qkeras quantizer", "known: "]),
    (minimal(kernel='  "quantized_bits(4,0,alfa=1.0)": 4\n'), ["qkeras cannot build", "no argument 'alfa'"]),
    (minimal(kernel='  "quantized_bits(4,0,alpha=one)": 4\n'), ["qkeras cannot build", "not a literal"]),
    (minimal(kernel='  "quantized_bits(4,0,alpha=1.0)": 5\n'), ["says 5 bits", "has 4"]),
    (minimal(kernel='  "quantized_bits(4,0,alpha=1.0)": four\n'), ["'four' is not an integer"]),
    (minimal(kernel='  "quantized_bits(4,0,alpha=1.0)": -4\n'), ["-4 is not an integer from 1 to 32"]),
    (minimal(kernel='  "quantized_bits(4,0,alpha=1.0)": 4.0\n'), ["4.0 is not an integer"]),
    (minimal(kernel='  "quantized_bits(40,0,alpha=1.0)": 40\n'), ["40 is not an integer from 1 to 32"]),
    (minimal(kernel='  "relu": 4\n'), ['"relu"', "not a qkeras quantizer"]),
    (minimal(kernel=""), ["kernel: expected a non-empty mapping"]),
    (minimal("weights: {}\n"), ["unknown section 'weights'"]),
    ("kernel: [unclosed\n", ["not valid YAML at line"]),
    ("- just\n- a list\n", ["expected a mapping with sections"]),
    (minimal("limit: {Dense: [8, 8]}\n"), ["limit: unknown layer type or name 'Dense'", "Conv2D"]),
    (minimal("limit: {Conv2D: [8, 8, 8]}\n"), ["limit: Conv2D: expected up to 2 max bits"]),
    (minimal("limit: {Activation: [0]}\n"), ["limit: Activation: 0 is not an integer from 1 to 32"]),
    (minimal("objective: {delta_q: 3}\n"), ["objective: unknown key 'delta_q'"]),
    (minimal("objective: {rate: 1}\n"), ["rate must be > 1"]),
    (minimal("objective: {delta_n: 60}\n"), ["delta_n 60 is too large"]),
    (minimal("objective: {ref_bits: 0}\n"), ["objective: ref_bits: 0"]),
    (minimal("goal: {type: latency}\n"), ["goal: type: 'latency' is not one of bits, bops, energy"]),
    (minimal("goal: energy\n"), ["goal: expected a mapping such as {type: energy}"]),
    (minimal("goal: {type: energy, memory: sram}\n"), ["goal: unknown key 'memory'", "parameters_on_memory"]),
    (minimal("goal: {parameters_on_memory: hbm}\n"), ["goal: parameters_on_memory: 'hbm' is not one of sram, dram, fixed"]),
    (minimal("goal: {input_hw: [64]}\n"), ["goal: input_hw: [64] is not [height, width]"]),
    (minimal("goal: {input_bits: 0}\n"), ["goal: input_bits: 0 is not an integer from 1 to 32"]),
    (minimal("goal: {rd_wr_on_io: maybe}\n"), ["goal: rd_wr_on_io: 'maybe' is not true or false"]),
    (minimal("tune_filters: channel\n"), ["tune_filters: 'channel' is not one of none, block, layer"]),
    (minimal("tune_filters: true\n"), ["tune_filters: True is not one of none, block, layer"]),
    (minimal("tune_filters_multipliers: [0.5, -1]\n"), ["tune_filters_multipliers: [0.5, -1] is not", "positive numbers"]),
    (minimal("tune_filters_multipliers: 2\n"), ["tune_filters_multipliers: 2 is not a non-empty list"]),
    (minimal("tune_filters_multipliers: []\n"), ["tune_filters_multipliers: [] is not a non-empty list"]),
    (minimal('tune_filters_exceptions: "conv_[0"\n'), ["tune_filters_exceptions: 'conv_[0' is not a valid regular expression"]),
    (minimal("tune_filters_exceptions: 5\n"), ["tune_filters_exceptions: 5 is not a regular expression"]),
])
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, text, parts):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_search_space(path, CONV + ACT)
    message = str(excinfo.value)
    assert message.startswith(str(path)) and "\n" not in message
    for part in parts:
        assert part in message


def test_goal_section_sets_the_cost_model(tmp_path):
    text = minimal("goal: {type: energy, input_hw: 32, parameters_on_memory: dram}\n")
    goal = load_search_space(write(tmp_path, text), CONV + ACT).objective.goal
    assert (goal.type, goal.input_hw, goal.parameters_on_memory) == ("energy", (32, 32), "dram")
    assert goal.activations_on_memory == "sram"  # unset keys keep their defaults
    assert load_search_space(write(tmp_path, minimal()), CONV + ACT).objective.goal.type == "bits"


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_search_space(tmp_path / "nope.yaml")


def test_limit_by_type_and_by_name(tmp_path):
    kernel = "".join(f'  "quantized_bits({b},0,alpha=1.0)": {b}\n' for b in (2, 4, 8))
    text = minimal("limit: {Conv2D: [4], conv_6: [8, 4], Activation: 4}\n", kernel=kernel)
    space = load_search_space(write(tmp_path, text), CONV + ACT)
    assert space.limit["Conv2D"] == {"kernel": 4, "bias": 4}  # one value applies to both
    choices = search_choices(space, CONV, ACT)
    assert choices["conv_0_kernel_bits"].options == (2, 4)
    assert choices["conv_6_kernel_bits"].quantizers[8] == "quantized_bits(8,0,alpha=1.0)"  # name wins


def test_two_quantizers_of_one_width_keep_a_string_hyperparameter(tmp_path):
    kernel = ('  "quantized_bits(4,0,alpha=1.0)": 4\n  \'quantized_bits(4,0,alpha="auto_po2")\': 4\n'
              '  "quantized_bits(2,0,alpha=1.0)": 2\n')
    space = load_search_space(write(tmp_path, minimal("limit: {conv_6: [2, 4]}\n", kernel=kernel)),
                              CONV + ACT)
    choices = search_choices(space, CONV, ACT)
    assert "conv_0_kernel_bits" not in choices
    assert choices["conv_0_kernel"].options[0] == "quantized_bits(2,0,alpha=1.0)"
    assert len(choices["conv_0_kernel"].options) == 3
    assert choices["conv_0_kernel"].quantizers[choices["conv_0_kernel"].options[1]] == \
        choices["conv_0_kernel"].options[1]
    # Limited to 2 bits, conv_6's kernel has one quantizer per width again; its bias too.
    assert choices["conv_6_kernel_bits"].options == (2,) and "conv_6_bias_bits" in choices


def test_a_limit_that_leaves_nothing_is_a_config_error(tmp_path):
    space = load_search_space(write(tmp_path, minimal("limit: {conv_6: [8, 2]}\n")), CONV + ACT)
    with pytest.raises(ConfigError, match="conv_6 bias at most 2 bits leaves no quantizer"):
        search_choices(space, CONV, ACT)  # the bias section only offers 4 bits


@pytest.mark.parametrize("exceptions, part", [
    ("conv", "'conv' matches no searchable layer (the whole name must match: conv_0, "),
    ("conv_6", "'conv_6' matches no searchable layer"),  # conv_6 is never searched anyway
    ("conv_[0-5]", "'conv_[0-5]' keeps every searchable layer at its width; use tune_filters: none"),
])
def test_filter_exceptions_that_match_nothing_or_everything_are_config_errors(tmp_path, exceptions,
                                                                              part):
    text = minimal(f'tune_filters: layer\ntune_filters_exceptions: "{exceptions}"\n')
    path = write(tmp_path, text)
    space = load_search_space(path, CONV + ACT)
    with pytest.raises(ConfigError) as excinfo:
        filter_choices(space, path=path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}: tune_filters_exceptions: ") and "\n" not in message
    assert part in message


LIMIT_KERNEL = "".join(f'  "quantized_bits({b},0,alpha=1.0)": {b}\n' for b in (2, 4, 6, 8))
LIMIT_RELU = "".join(f'  "quantized_relu({b},8)": {b}\n' for b in (2, 4, 8))


def _limited(tmp_path, limit):
    text = (f"kernel:\n{LIMIT_KERNEL}bias:\n{LIMIT_KERNEL}activation:\n{LIMIT_RELU}"
            f"limit:\n{limit}")
    return load_search_space(write(tmp_path, text), CONV + ACT)


def test_limit_by_regex_default_lists_and_precedence(tmp_path):
    space = _limited(tmp_path, "  default: 6\n  Activation: 4\n  'conv_[1-3]': [4, 2]\n"
                     "  conv_2: {kernel: ['quantized_bits(8,0,alpha=1.0)', 'quantized_bits(2,0,alpha=1.0)']}\n"
                     "  'act_[45]': ['quantized_relu(8,8)']\n")
    choices = search_choices(space, CONV, ACT)
    options = {name: c.options for name, c in choices.items()}
    assert options["conv_0_kernel_bits"] == (2, 4, 6) and options["conv_6_bias_bits"] == (2, 4, 6)
    assert options["conv_1_kernel_bits"] == (2, 4) and options["conv_1_bias_bits"] == (2,)
    assert options["conv_2_kernel_bits"] == (2, 8)  # the name beats the regex, for the kernel
    assert options["conv_2_bias_bits"] == (2,)      # the bias still from the regex
    assert options["act_0_activation_bits"] == (2, 4)  # type beats default
    assert options["act_4_activation_bits"] == (8,)    # regex beats type


def test_a_shared_limit_makes_one_choice_for_its_layers(tmp_path):
    space = _limited(tmp_path, "  'conv_[1-4]': {kernel: 4, shared: middle}\n"
                     "  'act_[1-4]': {activation: 4, shared: middle_relu}\n")
    choices = search_choices(space, CONV, ACT)
    assert len(choices) == 2 * 3 + 2 + 2 + 1  # conv_0,5,6; shared kernel, bias; act_0,5; shared
    kernel = choices["middle_kernel_bits"]
    assert kernel.layers == ("conv_1", "conv_2", "conv_3", "conv_4") and kernel.options == (2, 4)
    assert choices["middle_bias_bits"].options == (2, 4, 6, 8)
    assert "conv_2_kernel_bits" not in choices and "act_3_activation_bits" not in choices
    values = {name: c.options[-1] for name, c in choices.items()}
    strings = quantizer_values(choices, values)
    assert strings["conv_3_kernel"] == "quantized_bits(4,0,alpha=1.0)"
    assert strings["act_2_activation"] == "quantized_relu(4,8)" and len(strings) == 20


@pytest.mark.parametrize("limit, part", [
    ("  'conv_[': 4\n", "limit: unknown layer type or name 'conv_[', and not a valid regular"),
    ("  'dense_.*': 4\n", "matches no layer"),
    ("  conv_0: {kernel: ['quantized_bits(3,0,alpha=1.0)']}\n",
     'limit: conv_0: kernel: "quantized_bits(3,0,alpha=1.0)" is not a quantizer of section kernel'),
    ("  conv_0: {activation: 4}\n", "limit: conv_0: unknown key 'activation'; allowed: kernel, bias"),
    ("  Conv2D: {kernel: 4, shared: all}\n", "limit: Conv2D: shared: only the layers of a regular"),
    ("  'conv_.': {shared: conv_1}\n", "shared: 'conv_1' is not a new name"),
    ("  'conv_[0-3]': 4\n  'conv_[3-5]': 2\n", "'conv_[0-3]' and 'conv_[3-5]' both set conv_3"),
    ("  'conv_[0-3]': {kernel: 4, shared: a}\n  conv_1: [8]\n",
     "limit: conv_[0-3]: shared layers conv_0 and conv_1 are left different kernel options"),
    ("  default: [4, 4, 4, 4]\n", "limit: default: expected up to 3 max bits"),
    ("  'conv_.*': [4, 4, 4]\n", "limit: conv_.*: expected up to 2 max bits"),
])
def test_bad_limits_are_one_line_config_errors(tmp_path, limit, part):
    with pytest.raises(ConfigError) as e:
        search_choices(_limited(tmp_path, limit), CONV, ACT)
    assert part in str(e.value) and "\n" not in str(e.value)
