"""What every validation shares: the one-line user error, and the bit-width check."""


class ConfigError(Exception):
    """A user error: the message names the file or option, the key, and what is allowed."""


def check_bits(where, value, allowed="an integer from 1 to 32"):
    """`value` if it is an integer bit width from 1 to 32 (not a bool), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 32:
        raise ConfigError(f"{where}: {value!r} is not {allowed}")
    return value
