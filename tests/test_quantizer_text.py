"""solvers/quantizer_text.py reads quantizer strings as the pinned qkeras does, without importing it."""
import inspect

import pytest
import yaml
from conftest import REPO
from qkeras import quantizers as qkeras_quantizers
from qkeras.base_quantizer import BaseQuantizer
from qkeras.quantizers import get_quantizer

from solvers import quantizer_text


def test_parameters_are_the_pinned_qkeras_signatures():
    found = {}
    for name, obj in vars(qkeras_quantizers).items():
        if inspect.isclass(obj) and issubclass(obj, BaseQuantizer) and obj is not BaseQuantizer:
            parameters = inspect.signature(obj.__init__).parameters
            found[name] = tuple(p for p in parameters if p != "self")
            bits = obj().bits
            assert quantizer_text.bits(name) == bits, name  # defaults and fixed widths
    assert found == quantizer_text.PARAMETERS


def _shipped_quantizers():
    texts = set()
    for path in [REPO / "quantization_config.yaml", *sorted((REPO / "configs").glob("*.yaml"))]:
        data = yaml.safe_load(path.read_text())
        texts |= {str(q) for kind in ("kernel", "bias", "activation") for q in data.get(kind, {})}
    return sorted(texts)


@pytest.mark.parametrize("text", _shipped_quantizers() + [
    "quantized_bits(bits=5, integer=0, alpha='auto_po2')", "quantized_relu(6)",
    "quantized_po2(4, max_value=8)", "ternary()", "binary(alpha=1)", "quantized_ulaw"])
def test_bits_equal_what_qkeras_builds(text):
    assert quantizer_text.bits(text) == int(get_quantizer(text).bits)


@pytest.mark.parametrize("text, words", [
    ("quantized_bitz(4,0)", "no quantizer"), ("relu", "no quantizer"),
    ("quantized_bits(4,0,alfa=1)", "no argument 'alfa'"),
    ("quantized_bits(4, bits=4)", "twice"), ("quantized_relu(" + "1," * 12 + ")", "at most 11"),
    ("quantized_bits(4,0,alpha=auto_po2)", "not a literal"), ("quantized_bits(4.5)", "not an integer"),
    ("quantized_bits(4", "not a call"), ("np.quantized_bits(4)", "not a call")])
def test_what_qkeras_would_refuse_is_a_value_error(text, words):
    with pytest.raises(ValueError, match=words):
        quantizer_text.bits(text)
