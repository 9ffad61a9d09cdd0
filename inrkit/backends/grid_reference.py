"""The grid-encoding specification: geometry and the PyTorch reference lookup, with tiny-cuda-nn's exact arithmetic.

Level ``l`` of ``L`` (float32 throughout, as tcnn):

    s_l = 2^(l · log2 b) · N_min − 1          scale                 (b = per_level_scale)
    R_l = ⌈s_l⌉ + 1                           vertices per axis
    E_l = roundup8(min(R_l^D, 2^31 − 1))      entries; Hash: min(E_l, 2^log2_hashmap_size); Tiled: min(E_l, N_min^D)

A point ``x ∈ [0,1]^D`` is looked up at ``p = s_l·x + 0.5``, cell ``c = ⌊p⌋``, fraction ``f = p − c``
(``f ← f²(3 − 2f)`` for Smoothstep). Each of the ``2^D`` corners ``c + δ`` (δ ∈ {0,1}^D) has weight
``Π_d (δ_d ? f_d : 1 − f_d)`` and table index

    i = Σ_d (c_d + δ_d) · R_l^d              if R_l^D ≤ E_l or the grid is not hashed (uint32 arithmetic)
    i = ⊕_d (c_d + δ_d) · π_d                otherwise, π = (1, 2654435761, 805459861, 3674653429, …)
    i ← i mod E_l

The output is level-major ``[l0f0, l0f1, l1f0, …]`` (width ``L·F``). Parameters are one flat vector,
level → entry → feature, initialised ``U(−1e−4, 1e−4)`` — tcnn's layout, so weights move between the two.

Inputs are not clamped (as in tcnn): outside [0,1] the cell coordinates wrap around in uint32
arithmetic, so dense levels repeat periodically and hashed levels read other (valid) entries. Every
index stays inside its level's table; nothing is read out of bounds.

Every backend (:mod:`inrkit.backends.cpu_grid`, :mod:`inrkit.backends.compiled`, tiny-cuda-nn) is
tested against :func:`grid_forward_reference`.

Example:
    >>> geometry = grid_geometry(3, n_levels=16, n_features_per_level=2, log2_hashmap_size=19,
    ...                          base_resolution=16, per_level_scale=2.0)
    >>> geometry.n_params
    14229504
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

INTERPOLATIONS = ("Linear", "Smoothstep", "Nearest")


PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


UINT32 = 0xFFFFFFFF


@dataclass(frozen=True)
class GridGeometry:
    """Per-level geometry of a grid encoding (all lists have one entry per level)."""

    n_input_dims: int
    n_levels: int
    n_features_per_level: int
    scales: tuple[float, ...]  # s_l (float32 values)
    resolutions: tuple[int, ...]  # R_l
    sizes: tuple[int, ...]  # E_l, table entries
    offsets: tuple[int, ...]  # first entry of each level; offsets[-1] is the total
    hashed: tuple[bool, ...]  # whether the level hashes (else dense indexing, possibly wrapping)

    @property
    def n_params(self) -> int:
        return self.offsets[-1] * self.n_features_per_level


def _roundup8(value: int) -> int:
    return (value + 7) // 8 * 8


def grid_geometry(n_input_dims: int, n_levels: int, n_features_per_level: int, log2_hashmap_size: int,
                  base_resolution: int, per_level_scale: float, grid_type: str = "Hash") -> GridGeometry:
    """Level scales, resolutions, table sizes and offsets exactly as tcnn computes them (float32 scale)."""
    log2_scale = np.float32(np.log2(np.float32(per_level_scale)))
    scales, resolutions, sizes, hashed = [], [], [], []
    for level in range(n_levels):
        scale = np.float32(np.exp2(np.float32(level) * log2_scale, dtype=np.float32) * np.float32(base_resolution))
        scale = np.float32(scale - np.float32(1.0))
        resolution = int(np.ceil(scale)) + 1
        dense_entries = resolution**n_input_dims
        entries = _roundup8(min(dense_entries, 2**31 - 1))
        if grid_type == "Hash":
            entries = min(entries, 2**log2_hashmap_size)
        elif grid_type == "Tiled":
            entries = min(entries, base_resolution**n_input_dims)
        scales.append(float(scale))
        resolutions.append(resolution)
        sizes.append(entries)
        hashed.append(grid_type == "Hash" and entries < dense_entries)
    offsets = tuple(int(v) for v in np.concatenate(([0], np.cumsum(sizes))))
    return GridGeometry(n_input_dims, n_levels, n_features_per_level, tuple(scales), tuple(resolutions),
                        tuple(sizes), offsets, tuple(hashed))


def corner_offsets(n_input_dims: int, device: torch.device | None = None) -> torch.Tensor:
    """``(2^D, D)`` int64: bit ``d`` of corner id ``k`` says whether corner ``k`` uses ``c_d + 1``."""
    ids = torch.arange(1 << n_input_dims, device=device)
    return torch.stack([(ids >> d) & 1 for d in range(n_input_dims)], dim=1)


def level_indices(cells: torch.Tensor, resolution: int, size: int, hashed: bool) -> torch.Tensor:
    """Table indices ``(...,)`` in ``[0, size)`` of integer grid vertices ``cells (..., D)`` (int64).

    Coordinates are taken modulo 2^32 first (tcnn casts ``int`` to ``uint32``), then indexed densely
    (``Σ c_d R^d``) or hashed (``⊕ c_d π_d``) in uint32 arithmetic, then reduced modulo ``size``.
    """
    cells = cells & UINT32
    index = torch.zeros(cells.shape[:-1], dtype=torch.int64, device=cells.device)
    stride = 1
    for dim in range(cells.shape[-1]):
        if hashed:
            index = index ^ ((cells[..., dim] * PRIMES[dim]) & UINT32)
        else:
            index = (index + cells[..., dim] * stride) & UINT32
            stride = (stride * resolution) & UINT32
    return index % size


def interpolation_weights(frac: torch.Tensor, interpolation: str) -> torch.Tensor:
    """Per-axis weights of the upper vertex: ``f`` (Linear), ``f²(3 − 2f)`` (Smoothstep)."""
    return frac * frac * (3.0 - 2.0 * frac) if interpolation == "Smoothstep" else frac


def level_lookup(x: torch.Tensor, geometry: GridGeometry, level: int, interpolation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Corner table indices ``(N, 2^D)`` (into the level's own table) and weights ``(N, 2^D)`` of points ``x (N, D)``."""
    scale = geometry.scales[level]
    # fma(s, x, 0.5) in float32: the float64 product is exact, one rounding to float32 as in tcnn
    position = (x.double() * scale + 0.5).float()
    cell = torch.floor(position)
    frac = position - cell
    corners = corner_offsets(geometry.n_input_dims, x.device)  # (K, D)
    if interpolation == "Nearest":
        indices = level_indices(cell.long(), geometry.resolutions[level], geometry.sizes[level], geometry.hashed[level])
        return indices[:, None], torch.ones_like(indices[:, None], dtype=x.dtype)
    upper = interpolation_weights(frac, interpolation)  # (N, D)
    per_axis = torch.where(corners[None].bool(), upper[:, None, :], 1.0 - upper[:, None, :])  # (N, K, D)
    weights = per_axis.prod(dim=-1)
    cells = cell.long()[:, None, :] + corners[None]  # (N, K, D)
    indices = level_indices(cells, geometry.resolutions[level], geometry.sizes[level], geometry.hashed[level])
    return indices, weights


def active_levels(n_levels: int, max_level: float) -> int:
    """Number of active levels for tcnn's ``max_level`` fraction ``m``: level ``l`` is on iff ``l < m·L + 1e-3``."""
    return min(n_levels, max(1, math.ceil(max_level * n_levels + 1e-3)))


def grid_forward_reference(x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec) -> torch.Tensor:
    """The PyTorch reference: ``x (N, D)`` in [0,1] → features ``(N, L·F)``, differentiable w.r.t. both."""
    g = spec.geometry
    features = g.n_features_per_level
    outputs = []
    n_active = active_levels(g.n_levels, spec.max_level)
    for level in range(g.n_levels):
        if level >= n_active:
            outputs.append(x.new_zeros(x.shape[0], features))
            continue
        table = params[g.offsets[level] * features: g.offsets[level + 1] * features].view(-1, features)
        indices, weights = level_lookup(x, g, level, spec.interpolation)
        outputs.append((weights[..., None] * table[indices]).sum(dim=1))
    return torch.cat(outputs, dim=1)


@dataclass
class GridEncodingSpec:
    """What a grid backend needs: geometry, interpolation and the current ``max_level`` fraction."""

    geometry: GridGeometry
    interpolation: str
    max_level: float = 1.0
