"""Atomic file writes and small JSON helpers.

Every file inrkit writes goes through :func:`atomic_write` (a handle) or :func:`atomic_path` (a
file name, for writers such as ffmpeg): the bytes land in a temporary file in
the same folder, are flushed to disk and then renamed over the target, so a crash or Ctrl-C never
leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` (its folder is created) that replaces ``path`` when the block succeeds.

    For writers that want a file name rather than a handle (ffmpeg, imageio, a compiler). On any
    exception the temporary is removed and ``path`` is left as it was: never a partial file.
    ``suffix`` keeps the extension a writer may dispatch on (e.g. ``".mp4"``).

    Example:
        >>> with atomic_path("clip.gif", ".gif") as tmp:  # doctest: +SKIP
        ...     iio.imwrite(tmp, frames)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` when the block succeeds.

    Example:
        >>> with atomic_write("out.json", "w") as f:  # doctest: +SKIP
        ...     f.write("{}")
    """
    with atomic_path(path) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
