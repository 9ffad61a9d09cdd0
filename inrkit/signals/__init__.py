"""Signals: one module per kind of data. ``open_signal`` picks the module from the file suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError
from inrkit.signals import image
from inrkit.signals.base import Batch, Signal
from inrkit.signals.image import ImageOptions, ImageSignal
from inrkit.signals.image_files import IMAGE_SUFFIXES


def open_signal(path: str | Path, image_options: ImageOptions | None = None) -> Signal:
    """Open the signal stored at ``path``; the kind is chosen by the file suffix."""
    path = Path(path)
    if not path.exists():
        raise InrkitError(f"cannot read {path}: no such file")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSignal.from_file(path, image_options)
    raise InrkitError(
        f"cannot fit {path}: unsupported file type {path.suffix or '(none)'!r}; "
        f"inrkit reads images ({' '.join(IMAGE_SUFFIXES)})"
    )


def signal_from_config(config: dict[str, Any]) -> Signal:
    """Reopen a signal from the ``signal`` section of a run's ``config.json``."""
    if config.get("kind") == "image":
        return ImageSignal.from_config(config)
    raise InrkitError(f"unknown signal kind {config.get('kind')!r} in run config")


__all__ = ["Batch", "ImageOptions", "ImageSignal", "Signal", "image", "open_signal", "signal_from_config"]
