"""The inputs of ``fit-many``: a folder, a glob, a list file or a list of paths, as sorted files of one kind.

A folder gives its files (not hidden, not recursive); a pattern with ``*``, ``?`` or ``[`` its matches; a
``.txt``/``.lst`` file one path per line (relative to the list's folder; blank lines and ``#`` comments
ignored). Every file must be of one signal kind (by suffix); files of no known kind in a folder are skipped.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path

from inrkit.errors import InrkitError
from inrkit.signals import KINDS, kind_of

LIST_SUFFIXES = (".txt", ".lst")
MANY_KINDS = ("image", "audio", "sdf")  # signals whose samples fit a fixed-size batch
HASH_BLOCK = 1 << 20


def _known(path: Path) -> bool:
    return any(path.suffix.lower() in kind.suffixes for kind in KINDS.values())


def discover_inputs(inputs: str | Path | list[str | Path]) -> list[Path]:
    """The files ``inputs`` names (module docstring), in a stable order; one line when there are none."""
    if isinstance(inputs, list):
        paths = [Path(p) for p in inputs]
        where = "the list of inputs"
    else:
        text = str(inputs)
        where = text
        source = Path(text)
        if any(c in text for c in "*?[") and not source.exists():
            paths = [Path(p) for p in sorted(glob.glob(text))]
        elif source.is_dir():
            paths = sorted(p for p in source.iterdir() if not p.name.startswith(".") and p.is_file() and _known(p))
        elif source.is_file() and source.suffix.lower() in LIST_SUFFIXES:
            lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
            names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            paths = [p if p.is_absolute() else source.parent / p for p in map(Path, names)]
        elif source.exists():
            raise InrkitError(f"fit-many takes a folder, a glob pattern or a list file (.txt), got the file {text}")
        else:
            raise InrkitError(f"cannot read {text}: no such file or folder")
    if not paths:
        raise InrkitError(f"nothing to fit: {where} names no file inrkit reads")
    return paths


def input_kind(paths: list[Path]) -> str:
    """The one signal kind of ``paths``; mixed kinds or a kind fit-many does not take are one line."""
    kinds = {}
    for path in paths:
        if path.is_dir():
            raise InrkitError(f"fit-many fits files; {path} is a folder")
        kinds.setdefault(kind_of(path).name, path)
    if len(kinds) > 1:
        shown = ", ".join(f"{kind} ({path.name})" for kind, path in kinds.items())
        raise InrkitError(f"fit-many needs inputs of one kind, got {shown}; fit each kind into its own dataset")
    kind = next(iter(kinds))
    if kind not in MANY_KINDS:
        raise InrkitError(f"fit-many fits {', '.join(MANY_KINDS)} files; {kind} signals need one field each (inrkit fit)")
    return kind


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()
