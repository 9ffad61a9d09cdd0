"""Multiresolution grid encodings with tiny-cuda-nn's exact arithmetic: ``HashGrid``, ``DenseGrid``, ``TiledGrid``.

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

Example:
    >>> grid = GridEncoding(3, {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2,
    ...                         "log2_hashmap_size": 19, "base_resolution": 16, "per_level_scale": 2.0})
    >>> grid.n_params, grid.n_output_dims
    (14229504, 32)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from inrkit.errors import ConfigError

GRID_OTYPES = ("HashGrid", "Grid", "DenseGrid", "TiledGrid")
GRID_TYPES = ("Hash", "Dense", "Tiled")
INTERPOLATIONS = ("Linear", "Smoothstep", "Nearest")
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
UINT32 = 0xFFFFFFFF
MAX_LEVELS = 128


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


def parse_grid_config(n_input_dims: int, config: dict[str, Any]) -> dict[str, Any]:
    """Validate a grid config against tcnn's schema and fill tcnn's defaults; raises :class:`ConfigError`."""
    otype = config.get("otype", "HashGrid")
    if otype not in GRID_OTYPES:
        raise ConfigError(f"encoding otype {otype!r} is not a grid; choose one of {', '.join(GRID_OTYPES)}")
    default_type = {"HashGrid": "Hash", "Grid": "Hash", "DenseGrid": "Dense", "TiledGrid": "Tiled"}[otype]
    grid_type = config.get("type", default_type)
    if grid_type not in GRID_TYPES:
        raise ConfigError(f"encoding key 'type' must be one of {', '.join(GRID_TYPES)}, got {grid_type!r}")
    if not 1 <= n_input_dims <= 4:
        raise ConfigError(f"grid encodings take 1 to 4 input dimensions (n_input_dims), got {n_input_dims}")
    features = config.get("n_features_per_level", 2)
    if features not in (1, 2, 4, 8):
        raise ConfigError(f"encoding key 'n_features_per_level' must be 1, 2, 4 or 8, got {features!r}")
    if "n_features" in config and "n_levels" not in config:
        n_levels = math.ceil(int(config["n_features"]) / features)
    else:
        n_levels = config.get("n_levels", 16)
    if not isinstance(n_levels, int) or not 1 <= n_levels <= MAX_LEVELS:
        raise ConfigError(f"encoding key 'n_levels' must be an integer in 1..{MAX_LEVELS}, got {n_levels!r}")
    log2_size = config.get("log2_hashmap_size", 19)
    if not isinstance(log2_size, int) or not 1 <= log2_size <= 30:
        raise ConfigError(f"encoding key 'log2_hashmap_size' must be an integer in 1..30, got {log2_size!r}")
    base = config.get("base_resolution", 16)
    if not isinstance(base, int) or base < 1:
        raise ConfigError(f"encoding key 'base_resolution' must be a positive integer, got {base!r}")
    default_scale = (256.0 / base) ** (1.0 / max(n_levels - 1, 1)) if grid_type == "Dense" else 2.0
    scale = config.get("per_level_scale", default_scale)
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 1.0:
        raise ConfigError(f"encoding key 'per_level_scale' must be a finite number >= 1, got {scale!r}")
    interpolation = config.get("interpolation", "Linear")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"encoding key 'interpolation' must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    hash_name = config.get("hash", "CoherentPrime")
    if hash_name != "CoherentPrime":
        raise ConfigError(f"encoding key 'hash': only tcnn's default 'CoherentPrime' is supported, got {hash_name!r}")
    return {"otype": otype, "type": grid_type, "n_levels": n_levels, "n_features_per_level": features,
            "log2_hashmap_size": log2_size, "base_resolution": base, "per_level_scale": float(scale),
            "interpolation": interpolation}


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


class GridEncoding(nn.Module):
    """A tcnn grid encoding ``(N, D) -> (N, L·F)`` on inputs in [0,1] (see the module docstring).

    ``max_level`` (a fraction in [0, 1], tcnn's semantics) masks the finer levels: inactive levels
    output zeros and their entries get no gradient. ``backend`` picks the implementation of the
    lookup (``inrkit.backends``): ``"torch"`` is the reference, ``"fast"`` a compiled CPU kernel or a
    compiled GPU path, ``"auto"`` the fastest one available.
    """

    input_domain = "unit"

    def __init__(self, n_input_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = parse_grid_config(n_input_dims, config)
        c = self.config
        geometry = grid_geometry(n_input_dims, c["n_levels"], c["n_features_per_level"], c["log2_hashmap_size"],
                                 c["base_resolution"], c["per_level_scale"], c["type"])
        self.spec = GridEncodingSpec(geometry, c["interpolation"])
        self.n_input_dims = n_input_dims
        self.n_output_dims = c["n_levels"] * c["n_features_per_level"]
        self.params = nn.Parameter(torch.empty(geometry.n_params).uniform_(-1e-4, 1e-4))
        self.backend = "auto"

    @property
    def geometry(self) -> GridGeometry:
        return self.spec.geometry

    @property
    def max_level(self) -> float:
        return self.spec.max_level

    @max_level.setter
    def max_level(self, value: float) -> None:
        self.spec.max_level = float(value)

    @property
    def n_params(self) -> int:
        return self.params.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from inrkit.backends import grid_forward

        return grid_forward(x.float(), self.params, self.spec, self.backend)
