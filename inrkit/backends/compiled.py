"""The fast GPU path without tinycudann: the reference lookup compiled by ``torch.compile``.

Inductor fuses the index arithmetic, the corner gathers and the weighted sum of each level into
a few Triton kernels (forward and backward), instead of the dozens of small kernels eager PyTorch
launches per level. The graph is specialised on the grid's geometry, so one compiled function is
cached per distinct ``GridEncodingSpec`` (interpolation, geometry, active levels) and batch size.
"""

from __future__ import annotations

import functools

import torch

from inrkit.backends.grid_reference import GridEncodingSpec, GridGeometry, active_levels, grid_forward_reference


@functools.lru_cache(maxsize=16)
def _compiled(geometry: GridGeometry, interpolation: str, n_active: int):
    spec = GridEncodingSpec(geometry, interpolation, n_active / geometry.n_levels)

    def lookup(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return grid_forward_reference(x, params, spec)

    # static shapes: inductor's dynamic-shape lowering of the int64 index arithmetic fails (torch 2.13);
    # training batches have one size, so only evaluation chunks trigger (a few) recompilations
    return torch.compile(lookup, dynamic=False)


def grid_forward(x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec) -> torch.Tensor:
    """Same result as :func:`~inrkit.encodings.grid.grid_forward_reference`, compiled (CUDA or CPU)."""
    n_active = active_levels(spec.geometry.n_levels, spec.max_level)
    return _compiled(spec.geometry, spec.interpolation, n_active)(x, params)
