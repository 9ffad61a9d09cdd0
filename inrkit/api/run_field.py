"""The field of a run directory, built and loaded only after its config and weights file are checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from inrkit.api.checks import check_run_config, check_weights_size
from inrkit.errors import InrkitError
from inrkit.fields import field_from_config, is_nerf_config
from inrkit.runs import CONFIG_FILE, WEIGHTS_FILE, load_weights, read_config


def build_run_field(config: dict[str, Any], run_dir: Path, action: str) -> nn.Module:
    """The (untrained) field that the run config ``config`` of ``run_dir`` describes, built once the config and the
    size of its weights file are checked; ``action`` ("load", "resume", ...) starts the one-line error when the
    config does not describe a field that can be built."""
    check_run_config(config, run_dir, is_nerf_config(config["field"]))
    check_weights_size(config["field"], run_dir / WEIGHTS_FILE, run_dir)
    try:
        return field_from_config(config["field"])
    except (ValueError, KeyError, TypeError) as err:
        raise InrkitError(f"cannot {action} {run_dir}: invalid {CONFIG_FILE} ({err})") from None


def open_run_field(run_dir: Path, action: str) -> tuple[nn.Module, dict[str, Any]]:
    """``(field in eval mode with the run's weights, config)`` of the run in ``run_dir``."""
    config = read_config(run_dir)
    field = build_run_field(config, run_dir, action)
    load_weights(field, run_dir / WEIGHTS_FILE)
    return field.eval(), config
