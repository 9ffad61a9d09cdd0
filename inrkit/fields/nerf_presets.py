"""NeRF presets: field, occupancy grid, marching and training defaults (REFERENCE.md §3).

* ``instant-ngp`` — the paper configuration: HashGrid L16 F2 T2^19 N_min 16 with
  ``b = exp(ln(2048·aabb_scale/16)/15)``, density FullyFusedMLP 64×1 → 16, SH degree 4, colour
  FullyFusedMLP 64×2 → 3; 128³ grid, 1024 steps per unit, 2^18 samples per step, Huber loss,
  Adam 1e-2 (β 0.9/0.99, ε 1e-15, L2 1e-6 on MLP weights), instant-ngp's step decay, and its EMA
  (decay 0.95, bias-corrected as tiny-cuda-nn's) of the weights for evaluation and outputs.
* ``instant-ngp-cpu`` — a CPU budget: the grid of instant-ngp's current configs (L8 F4, so
  ``b = 2`` at ``aabb_scale`` 1; its small variant's T2^15; half the lookups of L16 F2 for the same
  32 features), the same MLPs and SH, a 64³ occupancy grid sampled at 1/4 density per update,
  256 steps per unit (cone ``1/64``), 2^15
  samples per step, the same optimiser and EMA, and the MSE loss: Huber (δ 0.1) caps the gradient
  of large errors, which on a CPU budget of a few hundred steps leaves small objects with wrong colours (blocks at 128², 90 s
  on one thread: 26.5 dB with Huber against 29.2 dB with MSE).

``backbone`` swaps the density network (and its position encoding) for any inrkit backbone preset
(``siren``, ``finer``, ``relu-pe``, ...; as in SL²A's NeRF table), keeping the SH colour head.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from inrkit.errors import InrkitError
from inrkit.fields import get_preset

NERF_POSITION_FREQUENCIES = 10  # NeRF's L = 10 octaves for positions, used by the relu-pe backbone


def hashgrid_encoding(aabb_scale: int, log2_hashmap_size: int = 19, n_levels: int = 16, n_features_per_level: int = 2,
                      finest_resolution: int = 2048) -> dict[str, Any]:
    """instant-ngp's NeRF hash grid; ``per_level_scale = exp(ln(2048·aabb_scale/16)/(L−1))``."""
    return {"otype": "HashGrid", "n_levels": n_levels, "n_features_per_level": n_features_per_level,
            "log2_hashmap_size": log2_hashmap_size,
            "base_resolution": 16,
            "per_level_scale": math.exp(math.log(finest_resolution * aabb_scale / 16) / (n_levels - 1))}


def _mlp(n_hidden_layers: int) -> dict[str, Any]:
    return {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None", "n_neurons": 64,
            "n_hidden_layers": n_hidden_layers}


@dataclass(frozen=True)
class NerfPreset:
    """Everything a preset fixes; ``model_config`` builds the :class:`~inrkit.fields.nerf_model.NerfModel` config."""

    description: str
    n_levels: int
    n_features_per_level: int
    log2_hashmap_size: int
    grid_resolution: int
    grid_sample_fraction: float
    steps_per_unit: int
    target_samples: int
    initial_rays: int
    lr: float = 1e-2
    loss: str = "huber"
    ema_decay: float = 0.95  # instant-ngp's EMA(0.95) of the weights, used for evaluation and outputs (REFERENCE §3.1)
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, NerfPreset] = {
    "instant-ngp": NerfPreset("instant-ngp paper: HashGrid L16 F2 T2^19, 64x1 density + SH4 + 64x2 colour, 128^3 grid",
                              16, 2, 19, 128, 1.0, 1024, 1 << 18, 4096),
    "instant-ngp-cpu": NerfPreset("CPU budget: HashGrid L8 F4 T2^15 (instant-ngp's current grid), same MLPs, 64^3 grid, "
                                  "256 steps/unit, 2^15 samples, MSE", 8, 4, 15, 64, 0.25, 256, 1 << 15, 1024, loss="mse"),
}


def get_nerf_preset(name: str) -> NerfPreset:
    if name not in PRESETS:
        raise InrkitError(f"unknown NeRF preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def field_config(preset: NerfPreset, aabb_scale: int, backbone: str | None = None) -> dict[str, Any]:
    """NerfField config for ``preset``; ``backbone`` replaces the density network and its encoding."""
    config: dict[str, Any] = {
        "position_encoding": hashgrid_encoding(aabb_scale, preset.log2_hashmap_size, preset.n_levels,
                                               preset.n_features_per_level),
        "density_network": _mlp(1),
        "n_density_outputs": 16,
        "direction_encoding": {"otype": "SphericalHarmonics", "degree": 4},
        "rgb_network": _mlp(2),
    }
    if backbone is not None:
        chosen = get_preset(backbone)
        encoding = copy.deepcopy(chosen.encoding)
        if encoding.get("otype") == "PositionalEncoding" and encoding.get("n_frequencies") is None:
            encoding["n_frequencies"] = NERF_POSITION_FREQUENCIES
        config["position_encoding"] = encoding
        config["density_network"] = copy.deepcopy(chosen.network)
    return config


def model_config(preset_name: str, scene_config: dict[str, Any], backbone: str | None = None,
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The :class:`~inrkit.fields.nerf_model.NerfModel` config for a preset and a scene
    (``scale``, ``offset``, ``aabb_scale``)."""
    preset = get_nerf_preset(preset_name)
    aabb_scale = int(scene_config["aabb_scale"])
    config = {
        "otype": "NerfModel",
        "preset": preset_name,
        "optimizer": {"otype": "Adam", "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
                      "l2_reg": 1e-6},
        "backbone": backbone,
        "field": field_config(preset, aabb_scale, backbone),
        "scene": {"scale": scene_config["scale"], "offset": list(scene_config["offset"]), "aabb_scale": aabb_scale},
        "grid": {"resolution": preset.grid_resolution, "decay": 0.95, "threshold": 0.01, "warmup_steps": 256,
                 "sample_fraction": preset.grid_sample_fraction},
        "march": {"steps_per_unit": preset.steps_per_unit, "max_samples": 1024},
    }
    for key, value in (overrides or {}).items():
        section, name = key.split(".", 1)
        config[section][name] = value
    return config
