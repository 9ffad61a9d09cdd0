"""Run directories and checkpoints: safetensors for tensors, JSON for everything else, no pickle.

A run directory holds::

    config.json            everything needed to rebuild the field and reopen the signal
    weights.safetensors    the field's latest good weights
    metrics.jsonl          one JSON record per evaluation
    checkpoint.json        points at the current resumable checkpoint folder
    checkpoint-NNNNNNNN/   weights, optimizer moments and RNG states (training.safetensors) + state.json
    reconstruction.png ... outputs written by the signal

Each file is written atomically (temp file + rename). A checkpoint folder is complete before
``checkpoint.json`` is switched to it, so an interruption at any moment leaves a usable checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes, read_json, write_json

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_POINTER = "checkpoint.json"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write a dict of tensors as safetensors, atomically."""
    atomic_write_bytes(path, safetensors_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Write ``module.state_dict()`` (parameters and persistent buffers) to ``path``."""
    save_tensors(path, dict(module.state_dict()))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load weights written by :func:`save_weights`; shapes and names must match exactly."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise InrkitError(f"cannot load {path}: no such file") from None
    except Exception as err:
        raise InrkitError(f"cannot load {path}: corrupt weights file ({err})") from None
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise InrkitError(f"weights in {path} do not match the config: {first[1].strip() if len(first) > 1 else err}") from None


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
) -> None:
    """Write a resumable checkpoint for ``state["step"]`` and make it current.

    ``average`` (the trainer's EMA of the parameters, by parameter name) is kept for resuming as
    ``average.<name>``. ``weights`` (a state dict; default ``field.state_dict()``) is what
    ``weights.safetensors`` holds, i.e. what a loaded or rendered run uses: with an EMA, the averaged
    weights, as tiny-cuda-nn's inference uses them.
    """
    step = int(state["step"])
    folder = run_dir / f"checkpoint-{step:08d}"
    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = optimizer_state(optimizer)
    tensors.update({f"field.{k}": v for k, v in field.state_dict().items()})
    tensors.update({f"rng.{k}": v for k, v in rng_states.items()})
    tensors.update({f"average.{k}": v for k, v in (average or {}).items()})
    save_tensors(folder / "training.safetensors", tensors)
    write_json(folder / "state.json", {**state, "param_groups": groups})
    save_tensors(run_dir / WEIGHTS_FILE, dict(field.state_dict() if weights is None else weights))
    write_json(run_dir / CHECKPOINT_POINTER, {"folder": folder.name, "step": step})
    for old in run_dir.glob("checkpoint-*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read the current checkpoint: ``(state, tensors)``; raises if there is none."""
    pointer = run_dir / CHECKPOINT_POINTER
    if not pointer.is_file():
        raise InrkitError(f"{run_dir} has no checkpoint to resume from")
    folder = run_dir / read_json(pointer)["folder"]
    try:
        return read_json(folder / "state.json"), load_file(str(folder / "training.safetensors"))
    except (OSError, ValueError, json.JSONDecodeError) as err:
        raise InrkitError(f"checkpoint in {folder} is unreadable: {err}") from None


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``metrics.jsonl`` (flushed and synced)."""
    with open(run_dir / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of ``metrics.jsonl`` (a torn last line is ignored)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop records after ``last_step`` (used when resuming from an earlier checkpoint)."""
    kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= last_step]
    atomic_write_bytes(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept).encode())


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Create the run directory ``out``; a non-empty one is replaced only with ``overwrite`` and only if it is a run."""
    if out.exists() and not out.is_dir():
        raise InrkitError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InrkitError(f"output directory {out} is not empty; pass --overwrite to replace it or --resume to continue")
        if not (out / CONFIG_FILE).is_file():
            raise InrkitError(f"refusing to overwrite {out}: it is not an inrkit run directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
