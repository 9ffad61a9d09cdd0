"""inrkit's own error and warning types: everything a user can cause ends up here, with one clear line."""

import math
import warnings


class InrkitError(Exception):
    """A problem with the user's input or configuration.

    The CLI prints ``str(err)`` on one line and exits with status 2; the Python API lets it
    propagate so callers can catch it.
    """


class ConfigError(InrkitError, ValueError):
    """An invalid field, encoding, network or optimiser config; the message names the offending key."""


class InrkitWarning(UserWarning):
    """Something the user should know about the input (an open mesh, estimated normals); work goes on.

    The CLI prints it as one line ``inrkit: warning: ...``.
    """


def warn(message: str) -> None:
    """Issue an :class:`InrkitWarning` with ``message``."""
    warnings.warn(message, InrkitWarning, stacklevel=2)


# -- config schemas -------------------------------------------------------------------------------------
class Rule:
    """What one config key may hold: ``kind`` ``"int"`` | ``"number"`` (finite) | ``"bool"`` | ``"choice"`` |
    ``"ints"`` (a list of integers); ``low``/``high`` bound numbers (``above``: strictly greater than ``low``);
    ``optional``: ``null`` is allowed too."""

    def __init__(self, kind: str, low: float | None = None, high: float | None = None, *, above: bool = False,
                 choices: tuple = (), optional: bool = False) -> None:
        self.kind, self.low, self.high, self.above, self.choices, self.optional = kind, low, high, above, choices, optional

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "bool":
            return "true or false"
        noun = {"int": "an integer", "number": "a finite number", "ints": "a list of integers"}[self.kind]
        if self.low is not None and self.high is not None and not self.above:
            return f"{noun} in {self.low:g}..{self.high:g}"
        parts = [f"> {self.low:g}" if self.above else f">= {self.low:g}"] if self.low is not None else []
        parts += [f"<= {self.high:g}"] if self.high is not None else []
        return " ".join([noun, *parts])

    def accepts(self, value: object) -> bool:
        if value is None:
            return self.optional
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "ints":
            return isinstance(value, list) and len(value) <= 1 << 16 and all(Rule("int", self.low, self.high).accepts(v)
                                                                               for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind == "int" and not isinstance(value, int)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high


def check_section(where: str, config: object, schema: dict[str, Rule]) -> None:
    """Check the keys of one config section (``where`` names it, e.g. ``network``) that ``schema`` knows and
    ``config`` holds; raise :class:`ConfigError` naming the first bad key. Keys absent keep their defaults."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where} config must be an object, got {type(config).__name__}")
    for key, rule in schema.items():
        if key in config and not rule.accepts(config[key]):
            shown = repr(config[key])
            raise ConfigError(f"{where} key {key!r} must be {rule.describe()}, got {shown[:60]}")
