"""The package version, written into every run's ``config.json`` and ``.inrz`` header."""

__version__ = "0.1.0"
