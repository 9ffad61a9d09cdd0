"""inrkit's own error type: everything a user can cause ends up here, with one clear line."""


class InrkitError(Exception):
    """A problem with the user's input or configuration.

    The CLI prints ``str(err)`` on one line and exits with status 2; the Python API lets it
    propagate so callers can catch it.
    """


class ConfigError(InrkitError, ValueError):
    """An invalid field, encoding, network or optimiser config; the message names the offending key."""
