"""inrkit's own error and warning types: everything a user can cause ends up here, with one clear line."""

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
