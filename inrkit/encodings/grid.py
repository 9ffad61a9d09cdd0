"""Grid encodings (``HashGrid``, ``DenseGrid``, ``TiledGrid``) as modules: tcnn's config schema and a
trainable flat table, looked up by a backend.

The arithmetic (level scales, resolutions, hashing, interpolation) is the specification in
:mod:`inrkit.backends.grid_reference`; :class:`GridEncoding` parses a tcnn encoding config, owns the
parameter vector (level → entry → feature, initialised ``U(−1e−4, 1e−4)``, tcnn's layout) and asks
:func:`inrkit.backends.grid_forward` for the lookup with the chosen backend.

Example:
    >>> grid = GridEncoding(3, {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2,
    ...                         "log2_hashmap_size": 19, "base_resolution": 16, "per_level_scale": 2.0})
    >>> grid.n_params, grid.n_output_dims
    (14229504, 32)
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from inrkit.backends import grid_forward
from inrkit.backends.grid_reference import INTERPOLATIONS, GridEncodingSpec, GridGeometry, grid_geometry
from inrkit.encodings.bands import BandWeights
from inrkit.errors import ConfigError

GRID_OTYPES = ("HashGrid", "Grid", "DenseGrid", "TiledGrid")


GRID_TYPES = ("Hash", "Dense", "Tiled")


MAX_LEVELS = 128
# The finest level's scale base_resolution * per_level_scale^(n_levels - 1) is at most 2^24: float32 grid
# positions address no finer cells, and the lookups' cell indices stay far from integer overflow.
MAX_LOG2_SCALE = 24


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
    if not isinstance(base, int) or isinstance(base, bool) or not 1 <= base <= 1 << MAX_LOG2_SCALE:
        raise ConfigError(f"encoding key 'base_resolution' must be an integer in 1..{1 << MAX_LOG2_SCALE}, got {base!r}")
    default_scale = (256.0 / base) ** (1.0 / max(n_levels - 1, 1)) if grid_type == "Dense" else 2.0
    scale = config.get("per_level_scale", default_scale)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 1.0:
        raise ConfigError(f"encoding key 'per_level_scale' must be a finite number >= 1, got {scale!r}")
    finest = math.log2(base) + (n_levels - 1) * math.log2(scale)
    if finest > MAX_LOG2_SCALE + 1e-9:
        raise ConfigError(f"encoding key 'per_level_scale' (--per-level-scale) {scale:g} makes the finest of {n_levels} "
                          f"levels 2^{finest:.1f} cells wide, above 2^{MAX_LOG2_SCALE} (base_resolution {base}); "
                          f"lower it or n_levels")
    interpolation = config.get("interpolation", "Linear")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"encoding key 'interpolation' must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    hash_name = config.get("hash", "CoherentPrime")
    if hash_name != "CoherentPrime":
        raise ConfigError(f"encoding key 'hash': only tcnn's default 'CoherentPrime' is supported, got {hash_name!r}")
    return {"otype": otype, "type": grid_type, "n_levels": n_levels, "n_features_per_level": features,
            "log2_hashmap_size": log2_size, "base_resolution": base, "per_level_scale": float(scale),
            "interpolation": interpolation}


class GridEncoding(nn.Module):
    """A tcnn grid encoding ``(N, D) -> (N, L·F)`` on inputs in [0,1] (see the module docstring).

    ``max_level`` (a fraction in [0, 1], tcnn's semantics) masks the finer levels: inactive levels
    output zeros and their entries get no gradient. ``backend`` picks the implementation of the
    lookup (``inrkit.backends``): ``"torch"`` is the reference, ``"fast"`` a compiled CPU kernel or a
    compiled GPU path, ``"auto"`` the fastest one available.

    Bands (:mod:`inrkit.encodings.bands`): level 0 is always on, level ``l ≥ 1`` is band ``l − 1``.
    Weights that switch on a prefix of the levels (0 or 1, coarse to fine) become a ``max_level``
    for the lookup, so the levels that are off cost nothing, as tcnn's mask; other weights multiply
    the features of their level.
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
        # built from Python ints: tensor arithmetic under a torch.device context imports the compiler stack
        band = [level - 1 for level in range(c["n_levels"]) for _ in range(c["n_features_per_level"])]
        self.register_buffer("channel_band", torch.tensor(band), persistent=False)
        self.bands = BandWeights(c["n_levels"] - 1)

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
        bands, spec = self.bands, self.spec
        if bands.active and bands.spatial is None:  # levels past the last one with a weight above 0 are skipped
            spec = replace(spec, max_level=min(spec.max_level, bands.n_open / self.geometry.n_levels))
            if bands.hard:
                return grid_forward(x.float(), self.params, spec, self.backend)
        return bands(grid_forward(x.float(), self.params, spec, self.backend), self.channel_band, x)
