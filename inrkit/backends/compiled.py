"""The fast GPU path without tinycudann: the reference lookup compiled by ``torch.compile``.

Inductor fuses the index arithmetic, the corner gathers and the weighted sum of each level into
a few Triton kernels (forward and backward), instead of the dozens of small kernels eager PyTorch
launches per level. The graph is specialised on the grid's geometry and on the batch size, so one
compiled function is cached per distinct ``GridEncodingSpec`` (interpolation, geometry, active
levels) and *bucket* of batch sizes: a batch of ``n`` rows is padded to :func:`bucket_rows` ``(n)``
(at least 1024; then ``2^k`` or ``1.5·2^k``) and the padded rows are sliced off the result. NeRF's
sample counts change every step; bucketing compiles about two graphs per doubling of the batch size
instead of one per size, and pads at most half as many rows again.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import torch
import torch.nn.functional as F

from inrkit.backends.grid_reference import GridEncodingSpec, GridGeometry, active_levels, grid_forward_reference

MIN_ROWS = 1 << 10
_BACKEND: str | Callable = "inductor"  # torch.compile's backend (the tests count graphs with their own)


def bucket_rows(n: int) -> int:
    """The padded batch size of ``n`` rows: the smallest of ``MIN_ROWS``, ``2^k`` and ``1.5·2^k`` (k ≥ 10) that is ≥ ``n``."""
    if n <= MIN_ROWS:
        return MIN_ROWS
    power = 1 << (n - 1).bit_length()  # smallest power of two >= n
    return power * 3 // 4 if n <= power * 3 // 4 else power


@functools.lru_cache(maxsize=64)
def _compiled(geometry: GridGeometry, interpolation: str, n_active: int, rows: int, backend: str | Callable):
    """The lookup compiled for one grid variant and inputs of ``rows`` rows (the only shape it is called with)."""
    # a fraction inside level n_active's interval: n_active / L itself would switch on one level more
    # (active_levels adds 1e-3 before rounding up)
    spec = GridEncodingSpec(geometry, interpolation, (n_active - 0.5) / geometry.n_levels)

    def lookup(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return grid_forward_reference(x, params, spec)

    # Dynamo keeps compiled graphs on the function's code object and falls back to eager, silently,
    # after recompile_limit (8) of them: give every (variant, bucket) its own code object, so that
    # level masks (coarse-to-fine) and buckets do not share that budget.
    own = types.FunctionType(lookup.__code__.replace(), lookup.__globals__, lookup.__name__, None, lookup.__closure__)
    # static shapes: dynamic=True compiles on the CPU (torch 2.13), but inductor's dynamic-shape lowering of the
    # int64 index arithmetic was found to fail on CUDA, where this path runs; bucketed static shapes work on both
    return torch.compile(own, backend=backend, dynamic=False)


def grid_forward(x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec) -> torch.Tensor:
    """Same result as :func:`~inrkit.encodings.grid.grid_forward_reference`, compiled (CUDA or CPU)."""
    n_active = active_levels(spec.geometry.n_levels, spec.max_level)
    rows = x.shape[0]
    bucket = bucket_rows(rows)
    lookup = _compiled(spec.geometry, spec.interpolation, n_active, bucket, _BACKEND)
    if bucket == rows:
        return lookup(x, params)
    # the padded rows (at the origin) are sliced off before autograd sees them: their output gradient
    # is zero, so they add exactly zero to the table's gradient
    return lookup(F.pad(x, (0, 0, 0, bucket - rows)), params)[:rows]
