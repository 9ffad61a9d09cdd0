"""Checks made before anything is allocated or written: a field's memory, a run's weights against its config."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from inrkit.errors import InrkitError
from inrkit.fields import field_from_config
from inrkit.runs import CONFIG_FILE

MAX_LAYERS = 4096
ALLOCATE_FREELY = 1 << 28  # bytes: a field this small is built before its weights are checked


def state_bytes(config: dict[str, Any]) -> int | None:
    """Bytes of the state dict (parameters and buffers) of the field ``config`` describes, counted on PyTorch's
    ``meta`` device (nothing allocated); None when it cannot be built there (the real build reports why)."""
    try:
        with torch.device("meta"):
            module = field_from_config(config)
        return sum(t.numel() * t.element_size() for t in module.state_dict().values())
    except Exception:
        return None


def device_memory_bytes(device: torch.device) -> int | None:
    """The memory of ``device`` (a GPU's, else the machine's); None when unknown."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, RuntimeError, AttributeError):
        return None


TRAINING_STATE_FACTOR = 4  # weights, gradients and two Adam moments


def check_depth(config: dict[str, Any], where: str) -> None:
    """Refuse a network of more than :data:`MAX_LAYERS` hidden layers (each one a module: building a million of
    them takes minutes and gigabytes whatever their width)."""
    network = config.get("network") if isinstance(config.get("network"), dict) else {}
    layers = network.get("n_hidden_layers")
    if isinstance(layers, int) and layers > MAX_LAYERS:
        raise InrkitError(f"{where}: the network would have {layers:,} hidden layers; inrkit builds at most {MAX_LAYERS:,} "
                          "(--depth)")


def check_field_memory(config: dict[str, Any], device: torch.device, what: str = "fit") -> None:
    """Refuse, before allocating, a field whose training state would not fit the device's memory."""
    check_depth(config, "cannot fit")
    need = state_bytes(config)
    have = device_memory_bytes(device)
    if need is None or have is None or need * TRAINING_STATE_FACTOR <= have:
        return
    raise InrkitError(f"the field would have {need // 4:,} parameters: about {need * TRAINING_STATE_FACTOR / 2**30:,.0f} GiB "
                      f"to {what}, more than the {have / 2**30:,.0f} GiB of memory of {device.type}; give a smaller "
                      "--width, --depth or grid (--log2-hashmap-size, --n-levels)")


def check_weights_size(config: dict[str, Any], weights: Path, run: Path) -> None:
    """Refuse, before allocating, a ``config.json`` that describes a field larger than ``weights`` holds (a damaged
    or forged config would otherwise allocate terabytes)."""
    check_depth(config, f"cannot load {run}: its {CONFIG_FILE} is damaged")
    need = state_bytes(config)
    try:
        have = weights.stat().st_size
    except OSError:
        raise InrkitError(f"cannot load {run}: no {weights.name}") from None
    if need is not None and need > have and need > ALLOCATE_FREELY:  # smaller ones: building then loading reports it
        raise InrkitError(f"cannot load {run}: its {CONFIG_FILE} describes a field of {need // 4:,} parameters "
                          f"({need:,} bytes) but {weights.name} holds {have:,} bytes; the config is damaged")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _finite_positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


# what info, render, mesh and compress read from a run's signal section, by kind: key -> (test, what it must be)
_SIGNAL_KEYS: dict[str, dict[str, tuple[Any, str]]] = {
    "audio": {"n_samples": (_positive_int, "a positive integer"), "sample_rate": (_positive_int, "a positive integer"),
              "channels": (_positive_int, "a positive integer"),
              "normalisation": (lambda v: isinstance(v, dict) and _finite_positive(v.get("peak"))
                                and isinstance(v.get("subtype"), str), "an object with a positive peak and a subtype")},
    "video": {"n_frames": (_positive_int, "a positive integer"), "height": (_positive_int, "a positive integer"),
              "width": (_positive_int, "a positive integer"), "channels": (_positive_int, "a positive integer"),
              "fps": (_finite_positive, "a positive number"),
              "normalisation": (lambda v: isinstance(v, dict) and isinstance(v.get("dtype"), str), "an object with a dtype")},
    "sdf": {"shape": (lambda v: isinstance(v, str), "a string"), "loss": (lambda v: isinstance(v, str), "a string"),
            "n_vertices": (lambda v: isinstance(v, int) and v >= 0, "an integer"),
            "n_faces": (lambda v: isinstance(v, int) and v >= 0, "an integer"),
            "transform": (lambda v: isinstance(v, dict) and _finite_positive(v.get("scale"))
                          and isinstance(v.get("centre"), list) and len(v["centre"]) == 3
                          and all(isinstance(c, (int, float)) and math.isfinite(c) for c in v["centre"]),
                          "an object with a centre of 3 numbers and a positive scale")},
}


def check_run_config(config: dict[str, Any], run: Path, radiance: bool) -> None:
    """Refuse, with one line naming config.json and the key, a run config whose sections info, render, mesh or
    compress would trip over (a damaged or hand-edited file): ``signal``, ``model``, ``train``, ``turntable``."""
    from inrkit.export import inrz

    def bad(what: str) -> InrkitError:
        return InrkitError(f"cannot load {run}: {CONFIG_FILE} {what}")

    signal = config.get("signal")
    if "signal" not in config:
        raise bad("has no 'signal' section")
    if not isinstance(config.get("model"), dict):
        raise bad("has no valid 'model' section (an object)")
    for section in ("model", "train"):
        if section in config and config[section] is not None and not isinstance(config[section], dict):
            raise bad(f"has an invalid '{section}' section (not an object)")
    if radiance:
        if signal is not None and not isinstance(signal, dict):
            raise bad("has an invalid 'signal' section (not an object)")
    else:
        if not isinstance(signal, dict) or not isinstance(signal.get("kind"), str):
            raise bad("has no valid 'signal' section (an object with its 'kind')")
        for key, (test, meaning) in _SIGNAL_KEYS.get(signal["kind"], {}).items():
            if not test(signal.get(key)):
                raise bad(f"signal.{key} must be {meaning}, got {signal.get(key)!r}")
    try:
        inrz.check_signal(signal if isinstance(signal, dict) and signal else None)
        inrz.check_turntable(config.get("turntable"))
    except InrkitError as err:
        raise bad(f"is invalid: {str(err).replace('header ', '')}") from None
    train = config.get("train")
    if isinstance(train, dict):
        from dataclasses import fields

        from inrkit.train import TrainOptions

        known = {f.name for f in fields(TrainOptions)}
        try:
            TrainOptions(**{k: v for k, v in train.items() if k in known}).validate()
        except (TypeError, ValueError, InrkitError) as err:
            raise bad(f"has an invalid 'train' section ({err})") from None
        if "lr" in train and not _finite_positive(train["lr"]):
            raise bad(f"train.lr must be a positive number, got {train['lr']!r}")
