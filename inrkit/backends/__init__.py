"""Execution backends: the same maths run by different engines.

``backend="torch"`` is the PyTorch reference and the specification; ``"fast"`` runs a compiled
kernel (a C/OpenMP kernel on the CPU, a compiled PyTorch graph on CUDA); ``"tcnn"`` runs
tiny-cuda-nn (CUDA only, when ``tinycudann`` imports); ``"auto"`` picks tcnn on CUDA when present,
else the fast path when it is available and applicable, else the reference.

Every fast path is tested against the reference on random inputs (``tests/test_backends.py``).
"""

from __future__ import annotations

import importlib.util

import torch

from inrkit.backends.grid_reference import GridEncodingSpec, grid_forward_reference
from inrkit.errors import ConfigError

BACKENDS = ("auto", "torch", "fast", "tcnn")


def tcnn_available() -> bool:
    """Whether ``tinycudann`` can be imported (it needs CUDA and is not on PyPI)."""
    return importlib.util.find_spec("tinycudann") is not None and torch.cuda.is_available()


def check_backend(name: str) -> str:
    """Validate a backend name; returns it."""
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    return name


def grid_forward(x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec, backend: str) -> torch.Tensor:
    """Grid-encoding lookup ``x (N, D) -> (N, L·F)`` with the chosen backend (see the module docstring).

    The fast paths compute gradients for the table only; when ``x`` itself needs a gradient (eikonal
    losses, second derivatives) the differentiable reference is used whatever the backend.
    """
    wants_input_grad = torch.is_grad_enabled() and x.requires_grad
    if backend in ("auto", "fast") and not wants_input_grad:
        if x.device.type == "cpu":
            from inrkit.backends import cpu_grid

            if cpu_grid.available():
                return cpu_grid.grid_forward(x, params, spec)
        elif x.device.type == "cuda":
            from inrkit.backends import compiled

            return compiled.grid_forward(x, params, spec)
    return grid_forward_reference(x, params, spec)
