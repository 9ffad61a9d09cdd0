"""How a whole Field executes: which backend runs it, and the module that does (the Field itself with
its grid lookups told which kernel to use, or a tiny-cuda-nn :class:`~inrkit.fields.tcnn.TcnnField`).

The kernels themselves live in :mod:`inrkit.backends`; this module decides between them for a Field.
"""

from __future__ import annotations

import torch

from inrkit.backends import check_backend, tcnn_available
from inrkit.encodings.grid import GridEncoding
from inrkit.errors import ConfigError
from inrkit.fields.tcnn import TcnnField, tcnn_compatible


def resolve_backend(field: torch.nn.Module, backend: str, device: torch.device) -> str:
    """The backend that will run ``field`` on ``device``: "tcnn" or the grid lookup's name; raises
    :class:`~inrkit.errors.InrkitError` when the request cannot be met (checked before a run starts)."""

    check_backend(backend)
    compatible = tcnn_compatible(field)
    if backend == "tcnn":
        if not compatible:
            raise ConfigError("backend 'tcnn' needs a FullyFusedMLP/CutlassMLP network on a tcnn encoding "
                              "(e.g. --model hashgrid)")
        if not tcnn_available() or device.type != "cuda":
            raise ConfigError("backend 'tcnn' needs the tinycudann package and a CUDA device")
        return "tcnn"
    if backend == "auto" and compatible and device.type == "cuda" and tcnn_available():
        return "tcnn"
    return backend


def prepare_field(field: torch.nn.Module, backend: str, device: torch.device) -> torch.nn.Module:
    """The module that runs ``field`` with ``backend`` on ``device``: the field itself (its grid encodings
    told which lookup to use) or, for tcnn, a :class:`~inrkit.fields.tcnn.TcnnField` with the same weights."""

    resolved = resolve_backend(field, backend, device)
    if resolved == "tcnn":
        return TcnnField(field.to(device))
    for module in field.modules():
        if isinstance(module, GridEncoding):
            module.backend = resolved
    return field
