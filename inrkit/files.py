"""Atomic file writes and small JSON helpers.

Every file inrkit writes goes through :func:`atomic_write` (a handle) or :func:`atomic_path` (a
file name, for writers such as ffmpeg): the bytes land in a temporary file in
the same folder, are flushed to disk and then renamed over the target, so a crash or Ctrl-C never
leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from inrkit.errors import InrkitError


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` (its folder is created) that replaces ``path`` when the block succeeds.

    For writers that want a file name rather than a handle (ffmpeg, imageio, a compiler). On any
    exception the temporary is removed and ``path`` is left as it was: never a partial file.
    ``suffix`` keeps the extension a writer may dispatch on (e.g. ``".mp4"``).

    Example:
        >>> with atomic_path("clip.gif", ".gif") as tmp:  # doctest: +SKIP
        ...     iio.imwrite(tmp, frames)

    The file gets the mode an ordinary ``open(path, "w")`` would give it (``0o666`` less the umask; an
    existing file keeps its own), not ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():  # a writer may have replaced it by a folder
            os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def current_umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """The permission bits ``path`` gets: those of the file it replaces, else ``0o666`` less the umask."""
    try:
        if path.is_file() and not path.is_symlink():
            return path.stat().st_mode & 0o7777
    except OSError:
        pass
    return 0o666 & ~current_umask()


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


def append_json_line(path: str | Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``path`` (flushed and synced). JSON has no NaN or infinity: a float that
    is not finite (a metric that could not be measured) is written as ``null``."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(clean, allow_nan=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_json_lines(path: str | Path, what: str = "record") -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line ([] when there is no file). A torn last line (an
    interrupted append) is ignored; any other line that is not a JSON object is an :class:`InrkitError` naming the
    file, the line and ``what`` it should hold."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as err:
        raise InrkitError(f"cannot read {path}: {err.strerror}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if number == len(lines) and not line.endswith(b"\n"):
                continue  # the torn last line of an interrupted append
            raise InrkitError(f"cannot read {path}: line {number} is not valid UTF-8 JSON; the file is damaged") from None
        if not isinstance(record, dict):
            raise InrkitError(f"cannot read {path}: line {number} is not a {what} (a JSON object); the file is damaged")
        records.append(record)
    return records


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _writable_folder(path: Path, flag: str) -> None:
    """Refuse ``path`` when the folder that will hold it cannot be created or written."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # a dangling link where a folder must be created
            raise InrkitError(f"cannot write {flag} {path}: {ancestor} is a broken symbolic link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InrkitError(f"cannot write {flag} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InrkitError(f"cannot write {flag} {path}: the folder {ancestor} is not writable")


def check_output(path: str | Path, *, overwrite: bool = False, inputs: tuple[str | Path, ...] | list[Path] = (),
                 flag: str = "--out", folder: bool = False) -> Path:
    """Refuse, before any work, an output that a command must not write; returns ``path``.

    inrkit's one output policy, the same for every verb: an existing output is replaced only with
    ``--overwrite`` (the message names the flag); an output is never one of the command's ``inputs`` (nor,
    for a ``folder`` output that ``--overwrite`` replaces, a folder holding one of them); a symbolic link is
    not followed or replaced; a file output is not an existing folder and a ``folder`` output not an
    existing file; the folder that will hold the output must be a writable directory.
    """
    path = Path(path)
    if path.is_symlink():
        raise InrkitError(f"{flag} {path} is a symbolic link; give the path of the file itself")
    resolved = path.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if source == resolved or (Path(given).is_dir() and _inside(resolved, source) and not folder):
            raise InrkitError(f"{flag} {path} is an input of this command ({given}); write the output elsewhere")
        if folder and overwrite and path.is_dir() and _inside(source, resolved):
            raise InrkitError(f"{flag} {path} holds {given}, an input of this command; --overwrite would delete it")
    if folder:
        if path.exists() and not path.is_dir():
            raise InrkitError(f"output {flag} {path} exists and is not a directory")
    elif path.is_dir():
        raise InrkitError(f"{flag} {path} is a directory; give a file name")
    elif path.exists() and not overwrite:
        raise InrkitError(f"{flag} {path} exists; pass --overwrite to replace it")
    _writable_folder(path, flag)
    return path
