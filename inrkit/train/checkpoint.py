"""Resumable training checkpoints inside a run directory (the directory's format is :mod:`inrkit.runs`).

``checkpoint-NNNNNNNN/`` holds the weights, the optimizer moments and the RNG states
(``training.safetensors``) and the JSON state (``state.json``). A checkpoint folder is complete before
``checkpoint.json`` is switched to it, so an interruption at any moment leaves a usable checkpoint.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from inrkit.errors import InrkitError
from inrkit.files import read_json, write_json
from inrkit.runs import WEIGHTS_FILE, save_tensors

CHECKPOINT_POINTER = "checkpoint.json"


def optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON-able param groups."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"optimizer.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    restored = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    optimizer.load_state_dict({"state": state, "param_groups": restored})


def save_checkpoint(
    run_dir: Path,
    field: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_states: dict[str, torch.Tensor],
    state: dict[str, Any],
    average: dict[str, torch.Tensor] | None = None,
    weights: dict[str, torch.Tensor] | None = None,
    sampling: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write a resumable checkpoint for ``state["step"]`` and make it current.

    ``average`` (the trainer's EMA of the parameters, by parameter name) is kept for resuming as
    ``average.<name>``. ``weights`` (a state dict; default ``field.state_dict()``) is what
    ``weights.safetensors`` holds, i.e. what a loaded or rendered run uses: with an EMA, the averaged
    weights, as tiny-cuda-nn's inference uses them. ``sampling`` (the sampling policy's tensors: selected
    indices, running errors) is kept as ``sampling.<name>``.
    """
    step = int(state["step"])
    folder = run_dir / f"checkpoint-{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = optimizer_state(optimizer)
    tensors.update({f"field.{k}": v for k, v in field.state_dict().items()})
    tensors.update({f"rng.{k}": v for k, v in rng_states.items()})
    tensors.update({f"average.{k}": v for k, v in (average or {}).items()})
    tensors.update({f"sampling.{k}": v.contiguous() for k, v in (sampling or {}).items()})
    save_tensors(folder / "training.safetensors", tensors)
    write_json(folder / "state.json", {**state, "param_groups": groups})
    save_tensors(run_dir / WEIGHTS_FILE, dict(field.state_dict() if weights is None else weights))
    write_json(run_dir / CHECKPOINT_POINTER, {"folder": folder.name, "step": step})
    for old in run_dir.glob("checkpoint-*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


CHECKPOINT_FOLDER = re.compile(r"checkpoint-\d{8}")


def _damaged(run_dir: Path, what: str) -> InrkitError:
    return InrkitError(f"cannot resume {run_dir}: {what}; the checkpoint is damaged (fit again, or restore the run "
                       "from a copy)")


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read the current checkpoint: ``(state, tensors)``; every file is checked, and a missing or damaged one is
    an :class:`InrkitError` of one line naming it."""
    pointer = run_dir / CHECKPOINT_POINTER
    if not pointer.is_file():
        raise InrkitError(f"{run_dir} has no checkpoint to resume from")
    try:
        current = read_json(pointer)
    except (OSError, ValueError) as err:
        raise _damaged(run_dir, f"{CHECKPOINT_POINTER} is not valid JSON ({err})") from None
    name = current.get("folder") if isinstance(current, dict) else None
    if not isinstance(name, str) or not CHECKPOINT_FOLDER.fullmatch(name):
        raise _damaged(run_dir, f"{CHECKPOINT_POINTER} does not name a checkpoint-NNNNNNNN folder")
    folder = run_dir / name
    if not folder.is_dir():
        raise _damaged(run_dir, f"{CHECKPOINT_POINTER} names {name}, which does not exist")
    try:
        state = read_json(folder / "state.json")
    except (OSError, ValueError) as err:
        raise _damaged(run_dir, f"{name}/state.json is unreadable ({err})") from None
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list) \
            or not all(isinstance(state.get(k), (int, float)) and not isinstance(state.get(k), bool)
                       for k in ("step", "elapsed")) or state["step"] < 0:
        raise _damaged(run_dir, f"{name}/state.json lacks a valid step, elapsed time or param_groups")
    try:
        tensors = load_file(str(folder / "training.safetensors"))
    except Exception as err:  # safetensors raises its own error type for a truncated or garbage file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _damaged(run_dir, f"{name}/training.safetensors is unreadable ({first})") from None
    missing = [key for key in ("rng.torch", "rng.sampler") if key not in tensors]
    if missing:
        raise _damaged(run_dir, f"{name}/training.safetensors has no {missing[0]}")
    return state, tensors
