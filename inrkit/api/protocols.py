"""Benchmark protocols as data: named, versioned JSON files describing a paper's table.

A protocol (``inrkit/api/protocols/NAME.json``, or any ``.json`` file a user writes) holds::

    name, version, title, task ("fit" | "nerf"), notes
    data        {"glob": "image/div2k/*.png" (or a list), "expect": 16, "limit": N, "select": [stems], "description"}
    preprocess  {"resize": long side in px, "crop": centre square in px}     (images; written once under the bench)
    models      {label: {fit or nerf options of that model; "model"/"preset" names the preset when the label does not}}
    options     {fit or nerf options of every cell: steps, seconds, lr, batch_size, schedule, protocol, ...}
    compress    [{CompressOptions of one .inrz per fitted cell}, ...]
    metrics     ["psnr", "ssim", ...]                      (the first is compared with the published numbers)
    published   {"metric", "sources": {key: text}, "values": {label: {"value", "source", "per_signal": {stem: v}}},
                 "rd": {curve name: {"source", "points": [[bpp, psnr], ...]}}}
    scales      {"cpu": {"factors": "what is shrunk and by how much", and overrides of data, preprocess,
                 options, models, compress}}

Options are checked against the option dataclasses the API takes (:class:`~inrkit.fields.ModelOptions`,
:class:`~inrkit.train.TrainOptions`, the signal kinds' options; :class:`~inrkit.nerf.NerfOptions` for
``nerf``), so a protocol may use any fit option, present or future, and a misspelt one is refused in one line.

Example:
    >>> protocol = load_protocol("finer-div2k", scale="cpu")   # doctest: +SKIP
    >>> protocol.cell_options("wire")["lr"]                     # doctest: +SKIP
    0.005
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from inrkit.errors import ConfigError

PROTOCOL_DIR = Path(__file__).with_name("protocols")
TASKS = ("fit", "nerf")
KEYS = {"name", "version", "title", "task", "notes", "data", "preprocess", "models", "options", "compress", "metrics",
        "published", "scales"}
REQUIRED = ("name", "version", "title", "task", "data", "models", "metrics", "published")
DATA_KEYS = {"glob", "expect", "limit", "select", "description"}
PREPROCESS_KEYS = {"resize", "crop"}
PUBLISHED_KEYS = {"metric", "sources", "values", "rd"}
VALUE_KEYS = {"value", "source", "per_signal"}
SCALE_KEYS = {"factors", "data", "preprocess", "options", "models", "compress"}
SCALES = ("full", "cpu")


class ProtocolError(ConfigError):
    """A protocol file that cannot be used (unknown key, wrong type, missing data): one line, exit status 2."""


def protocol_names() -> list[str]:
    """The protocols shipped with inrkit, sorted."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.json"))


def _option_names(task: str) -> set[str]:
    """Every option a cell of ``task`` accepts: the fields of the API's option dataclasses."""
    from inrkit.fields import ModelOptions
    from inrkit.nerf import NerfOptions
    from inrkit.signals import signal_option_names
    from inrkit.train import TrainOptions

    train = {f.name for f in fields(TrainOptions)}
    if task == "nerf":
        return train | {f.name for f in fields(NerfOptions)}
    return train | {f.name for f in fields(ModelOptions)} | signal_option_names()


def _compress_names() -> set[str]:
    from inrkit.export import CompressOptions

    return {f.name for f in fields(CompressOptions)}


def _check_keys(where: str, value: Any, allowed: set[str], origin: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"protocol {origin}: '{where}' must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ProtocolError(f"protocol {origin}: unknown key {unknown[0]!r} in '{where}' "
                            f"(known: {', '.join(sorted(allowed))})")
    return value


@dataclass
class Protocol:
    """One protocol at one scale (the scale's overrides applied); :meth:`to_json` gives it back as data."""

    name: str
    version: int
    title: str
    task: str
    data: dict[str, Any]
    models: dict[str, dict[str, Any]]
    metrics: list[str]
    published: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    compress: list[dict[str, Any]] = field(default_factory=list)
    notes: str = ""
    scale: str = "full"
    factors: str = ""

    @property
    def metric(self) -> str:
        """The metric compared with the published numbers."""
        return self.published.get("metric") or self.metrics[0]

    def preset(self, label: str) -> str:
        """The preset a model label runs (``"siren-w24": {"model": "siren"}`` runs ``siren``)."""
        entry = self.models[label]
        return entry.get("preset" if self.task == "nerf" else "model", label)

    def cell_options(self, label: str) -> dict[str, Any]:
        """Options of one cell: the protocol's, then the model's (which win); ``model``/``preset`` included."""
        key = "preset" if self.task == "nerf" else "model"
        return {**self.options, **self.models[label], key: self.preset(label)}

    def published_value(self, label: str, stems: list[str]) -> tuple[float | None, bool]:
        """The published number for ``label`` over the signals ``stems``: the mean of its per-signal numbers when
        each of them has one (``True``: same signals), else the whole set's (``False``); None when unpublished."""
        entry = self.published.get("values", {}).get(label)
        if not entry:
            return None, False
        per_signal = entry.get("per_signal") or {}
        matched = [next((v for k, v in per_signal.items() if stem.startswith(k)), None) for stem in stems]
        if stems and all(v is not None for v in matched):
            return sum(matched) / len(matched), True
        return entry.get("value"), False

    def to_json(self) -> dict[str, Any]:
        """The protocol as a JSON-able dict (as resolved at its scale)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


def _read(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    path = Path(name_or_path)
    if path.suffix.lower() != ".json":
        path = PROTOCOL_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ProtocolError(f"unknown protocol {str(name_or_path)!r}; known: {', '.join(protocol_names())} "
                                "(or give a protocol .json file)")
    elif not path.is_file():
        raise ProtocolError(f"cannot read protocol {path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8")), str(path)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f"cannot read protocol {path}: {' '.join(str(err).split())}") from None


def load_protocol(name_or_path: str | Path, scale: str = "full") -> Protocol:
    """The protocol ``name_or_path`` (a shipped name or a ``.json`` file) at ``scale``, checked key by key."""
    raw, origin = _read(name_or_path)
    _check_keys("top level", raw, KEYS, origin)
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ProtocolError(f"protocol {origin}: missing key {missing[0]!r}")
    if raw["task"] not in TASKS:
        raise ProtocolError(f"protocol {origin}: 'task' must be one of {', '.join(TASKS)}, got {raw['task']!r}")
    if scale not in SCALES:
        raise ProtocolError(f"--scale must be one of {', '.join(SCALES)}, got {scale!r}")
    scales = _check_keys("scales", raw.get("scales", {}), set(SCALES) - {"full"}, origin)
    merged = copy.deepcopy({k: v for k, v in raw.items() if k != "scales"})
    factors = ""
    if scale != "full":
        if scale not in scales:
            raise ProtocolError(f"protocol {origin} has no --scale {scale}")
        overrides = _check_keys(f"scales.{scale}", scales[scale], SCALE_KEYS, origin)
        factors = str(overrides.get("factors", ""))
        for key in ("data", "preprocess", "options"):
            if key in overrides:
                merged[key] = {**merged.get(key, {}), **_check_keys(f"scales.{scale}.{key}", overrides[key],
                                                                       _allowed(key, raw["task"]), origin)}
        for key in ("models", "compress"):
            if key in overrides:
                merged[key] = overrides[key]
    protocol = Protocol(**merged, scale=scale, factors=factors)
    _validate(protocol, origin)
    return protocol


def _allowed(key: str, task: str) -> set[str]:
    return {"data": DATA_KEYS, "preprocess": PREPROCESS_KEYS}.get(key) or _option_names(task)


def _validate(protocol: Protocol, origin: str) -> None:
    """Every key known, every option an option of the API, every number where one is expected."""
    if not isinstance(protocol.version, int) or protocol.version < 1:
        raise ProtocolError(f"protocol {origin}: 'version' must be a positive integer, got {protocol.version!r}")
    data = _check_keys("data", protocol.data, DATA_KEYS, origin)
    if not data.get("glob") or not isinstance(data["glob"], str | list):
        raise ProtocolError(f"protocol {origin}: 'data.glob' must be a pattern or a list of patterns")
    for key in ("expect", "limit"):
        if key in data and (not isinstance(data[key], int) or data[key] < 1):
            raise ProtocolError(f"protocol {origin}: 'data.{key}' must be a positive integer, got {data[key]!r}")
    for key, value in _check_keys("preprocess", protocol.preprocess, PREPROCESS_KEYS, origin).items():
        if not isinstance(value, int) or value < 2:
            raise ProtocolError(f"protocol {origin}: 'preprocess.{key}' must be a size in pixels >= 2, got {value!r}")
    names = _option_names(protocol.task)
    _check_keys("options", protocol.options, names, origin)
    models = _check_keys("models", protocol.models, set(protocol.models), origin)
    if not models:
        raise ProtocolError(f"protocol {origin}: 'models' is empty")
    for label, entry in models.items():
        _check_keys(f"models.{label}", entry, names, origin)
    if not isinstance(protocol.compress, list):
        raise ProtocolError(f"protocol {origin}: 'compress' must be a list of compress options")
    for index, entry in enumerate(protocol.compress):
        _check_keys(f"compress[{index}]", entry, _compress_names(), origin)
    if not protocol.metrics or not all(isinstance(m, str) for m in protocol.metrics):
        raise ProtocolError(f"protocol {origin}: 'metrics' must be a non-empty list of metric names")
    published = _check_keys("published", protocol.published, PUBLISHED_KEYS, origin)
    for label, entry in _check_keys("published.values", published.get("values", {}), set(models), origin).items():
        _check_keys(f"published.values.{label}", entry, VALUE_KEYS, origin)
        if not isinstance(entry.get("value"), int | float):
            raise ProtocolError(f"protocol {origin}: 'published.values.{label}.value' must be a number")
        if entry.get("source") not in published.get("sources", {}):
            raise ProtocolError(f"protocol {origin}: 'published.values.{label}.source' names no entry of "
                                "'published.sources'")
