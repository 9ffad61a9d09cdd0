"""Signals: one module per kind of data. ``open_signal`` picks the kind from the file suffix
(a directory is read by the kind that reads folders: a video's frames).

Each kind registers a :class:`SignalKind` in ``KINDS``: its file suffixes, its options dataclass
(the CLI turns its fields into ``inrkit fit`` flags) and how to open it from a file or a run config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError
from inrkit.io.audio import AUDIO_SUFFIXES
from inrkit.io.images import IMAGE_SUFFIXES
from inrkit.io.shapes import SHAPE_SUFFIXES
from inrkit.io.video import VIDEO_SUFFIXES
from inrkit.signals import audio, image, sdf, video
from inrkit.signals.audio import AudioOptions, AudioSignal
from inrkit.signals.base import Batch, Signal
from inrkit.signals.image import ImageOptions, ImageSignal
from inrkit.signals.sdf import SdfOptions, SdfSignal
from inrkit.signals.video import VideoOptions, VideoSignal


@dataclass(frozen=True)
class SignalKind:
    """A kind of signal: the suffixes it reads, its options dataclass and its two constructors."""

    name: str
    suffixes: tuple[str, ...]
    options: type
    open: Callable[[Path, Any], Signal]
    from_config: Callable[[dict[str, Any]], Signal]
    reads_folders: bool = False


KINDS: dict[str, SignalKind] = {
    "image": SignalKind("image", IMAGE_SUFFIXES, ImageOptions, ImageSignal.from_file, ImageSignal.from_config),
    "audio": SignalKind("audio", AUDIO_SUFFIXES, AudioOptions, AudioSignal.from_file, AudioSignal.from_config),
    "video": SignalKind("video", VIDEO_SUFFIXES, VideoOptions, VideoSignal.from_file, VideoSignal.from_config,
                        reads_folders=True),
    "sdf": SignalKind("sdf", SHAPE_SUFFIXES, SdfOptions, SdfSignal.from_file, SdfSignal.from_config),
}
SIGNAL_OPTIONS: tuple[type, ...] = tuple(kind.options for kind in KINDS.values())


def _option_names(options_class: type) -> set[str]:
    return {f.name for f in fields(options_class)}


def signal_option_names() -> set[str]:
    """Every option name of every signal kind (the keys ``open_signal`` accepts)."""
    return set().union(*(_option_names(cls) for cls in SIGNAL_OPTIONS))


def kind_of(path: Path) -> SignalKind:
    """The signal kind that reads ``path``, chosen by its suffix (or the folder-reading kind for a directory)."""
    if path.is_dir():
        return next(kind for kind in KINDS.values() if kind.reads_folders)
    suffix = path.suffix.lower()
    for kind in KINDS.values():
        if suffix in kind.suffixes:
            return kind
    known = "; ".join(f"{kind.name} ({' '.join(kind.suffixes)})" for kind in KINDS.values())
    raise InrkitError(f"cannot fit {path}: unsupported file type {path.suffix or '(none)'!r}; inrkit reads {known}")


def open_signal(path: str | Path, options: dict[str, Any] | None = None) -> Signal:
    """Open the signal stored at ``path`` with the options of its kind.

    ``options`` may hold any kind's options at their default values (the CLI passes every flag);
    an option of another kind set to a non-default value is refused.
    """
    path = Path(path)
    if not path.exists():
        raise InrkitError(f"cannot read {path}: no such file or folder")
    kind = kind_of(path)
    options = options or {}
    own = _option_names(kind.options)
    for other in SIGNAL_OPTIONS:
        defaults = other()
        for name in _option_names(other) - own:
            if name in options and options[name] != getattr(defaults, name):
                raise InrkitError(f"option {name} does not apply to {kind.name} files like {path.name}")
    return kind.open(path, kind.options(**{k: v for k, v in options.items() if k in own}))


def signal_from_config(config: dict[str, Any]) -> Signal:
    """Reopen a signal from the ``signal`` section of a run's ``config.json``."""
    kind = KINDS.get(config.get("kind", ""))
    if kind is None:
        raise InrkitError(f"unknown signal kind {config.get('kind')!r} in run config")
    return kind.from_config(config)


__all__ = [
    "KINDS",
    "SIGNAL_OPTIONS",
    "AudioOptions",
    "AudioSignal",
    "Batch",
    "ImageOptions",
    "ImageSignal",
    "SdfOptions",
    "SdfSignal",
    "Signal",
    "SignalKind",
    "VideoOptions",
    "VideoSignal",
    "audio",
    "image",
    "kind_of",
    "open_signal",
    "sdf",
    "signal_from_config",
    "signal_option_names",
    "video",
]
