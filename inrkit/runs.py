"""The run-directory format: what a run directory holds and how each file is read and written.

A run directory holds::

    config.json            everything needed to rebuild the field and reopen the signal
    weights.safetensors    the field's latest good weights
    metrics.jsonl          one JSON record per evaluation
    checkpoint.json        points at the current resumable checkpoint folder (:mod:`inrkit.train.checkpoint`)
    checkpoint-NNNNNNNN/   weights, optimizer moments and RNG states (training.safetensors) + state.json
    reconstruction.png ... outputs written by the signal

Tensors are safetensors, everything else JSON; nothing is pickled. Each file is written atomically
(temp file + rename).
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
from inrkit.files import append_json_line, atomic_write_bytes, check_output, read_json, read_json_lines

CONFIG_FILE = "config.json"


WEIGHTS_FILE = "weights.safetensors"


METRICS_FILE = "metrics.jsonl"


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json``, in today's layout; raises :class:`InrkitError` (one line) when there is none
    or it is not a JSON object with a ``field`` section.

    Radiance-field runs written before the one run lifecycle kept their model config under ``nerf``;
    it is read as ``field``.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise InrkitError(f"cannot load {run_dir}: not an inrkit run directory (no {CONFIG_FILE})")
    try:
        config = read_json(path)
    except (OSError, ValueError) as err:
        raise InrkitError(f"cannot load {run_dir}: invalid {CONFIG_FILE} ({err})") from None
    if isinstance(config, dict) and "field" not in config and "nerf" in config:
        config["field"] = config.pop("nerf")
    if not isinstance(config, dict) or not isinstance(config.get("field"), dict):
        raise InrkitError(f"cannot load {run_dir}: invalid {CONFIG_FILE} (no 'field' section)")
    return config


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


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to ``metrics.jsonl`` (flushed and synced; a non-finite value is written as ``null``)."""
    append_json_line(run_dir / METRICS_FILE, record)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of ``metrics.jsonl``: a torn last line (an interrupted append) is ignored; any other
    line that is not a JSON object with an integer step (damage) is an :class:`InrkitError` naming the file and the line."""
    path = run_dir / METRICS_FILE
    records = read_json_lines(path, "metrics record")
    for number, record in enumerate(records, 1):
        if not isinstance(record.get("step", 0), int):
            raise InrkitError(f"cannot read {path}: record {number} is not a metrics record (a JSON object with an "
                              "integer step); the file is damaged")
    return records


def truncate_metrics(run_dir: Path, last_step: int) -> None:
    """Drop records after ``last_step`` (used when resuming from an earlier checkpoint)."""
    kept = [r for r in read_metrics(run_dir) if int(r.get("step", 0)) <= last_step]
    atomic_write_bytes(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in kept).encode())


def run_files(run_dir: Path) -> list[Path]:
    """The files a command reads from the run directory ``run_dir`` (an output must never be one of them)."""
    run_dir = Path(run_dir)
    names = [CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE, "checkpoint.json"]
    return [run_dir / name for name in names] + sorted(run_dir.glob("checkpoint-*"))


def check_run_dir(out: Path, overwrite: bool, inputs: tuple[Path, ...] | list[Path] = (), flag: str = "--out",
                  resumable: bool = False) -> None:
    """Refuse, before any work, a run directory ``out`` that :func:`prepare_run_dir` must not replace (see
    :func:`inrkit.files.check_output`): a file, a non-empty folder without ``overwrite`` or that is not a run,
    a folder holding one of ``inputs``, an unwritable place."""
    out = Path(out)
    check_output(out, overwrite=overwrite, inputs=inputs, flag=flag, folder=True)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            resume = " or --resume to continue" if resumable else ""
            raise InrkitError(f"output directory {out} exists and is not empty; pass --overwrite to replace it{resume}")
        if not (out / CONFIG_FILE).is_file():
            raise InrkitError(f"refusing to overwrite {out}: it is not an inrkit run directory")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise InrkitError(f"cannot write {flag} {out}: the folder is not writable")


def prepare_run_dir(out: Path, overwrite: bool, inputs: tuple[Path, ...] | list[Path] = ()) -> None:
    """Create the run directory ``out``; a non-empty one is replaced only with ``overwrite`` and only if it is a run
    (and holds none of ``inputs``)."""
    check_run_dir(out, overwrite, inputs, resumable=True)
    if out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
