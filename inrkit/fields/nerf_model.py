"""A trainable radiance field: NeRF field + occupancy grid + ray marcher + volume renderer.

World-space rays ``o + t·d`` are mapped into instant-ngp's unit cube (``p = scale·p_world + offset``,
so ``t_unit = scale·t_world``), clipped to the scene box, marched through the occupancy grid
(:mod:`inrkit.nerf.marching`) and composited (:mod:`inrkit.nerf.volume`). Depths are returned in
world units.

* **Training** (:meth:`NerfModel.render_train`): one march per ray with a random start offset,
  then instant-ngp's compaction: a gradient-free density pass finds where each ray's transmittance
  falls below ``10⁻⁴`` and only the samples before that point go through the differentiable pass
  (and count towards the adaptive batch), so the inside of opaque objects costs one cheap lookup.
* **Rendering** (:meth:`NerfModel.render_rays`): rays march in rounds of a few candidate steps;
  densities come first and colours are computed only for samples reached with ``T ≥
  min_transmittance``; after each round rays whose transmittance fell below ``min_transmittance``
  (early termination) or that left the box are dropped, so occluded space costs nothing.

Config::

    {"otype": "NerfModel", "field": NerfField config, "scene": {"scale", "offset", "aabb_scale"},
     "grid": {"resolution": 128, "decay": 0.95, "threshold": 0.01, "warmup_steps": 256, "sample_fraction": 1.0},
     "march": {"steps_per_unit": 1024, "max_samples": 1024},
     "poses": {"n_cameras": N, "lr": 1e-3, "lr_final": 1e-5}}     # optional: pose refinement (BARF)

With a ``poses`` section the model holds a :class:`~inrkit.nerf.poses.PoseCorrection` (``poses.se3``, one
se(3) correction per training camera, trained in its own optimiser group); rendering ignores it, the
radiance signal moves its training rays with it. Rays whose origins or directions carry a gradient
get sample positions that carry it too (``o + t·d`` recomputed after the gradient-free march), so the
loss reaches the poses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from inrkit.errors import ConfigError, Rule, check_section
from inrkit.fields.radiance import NerfField
from inrkit.nerf.marching import RaySamples, StepSchedule, march, ray_box
from inrkit.nerf.occupancy import OccupancyGrid, n_cascades, update_due
from inrkit.nerf.poses import POSE_LR, POSE_LR_FINAL, PoseCorrection
from inrkit.nerf.volume import composite_rays, render_weights

TRAIN_MIN_TRANSMITTANCE = 1e-4
OTYPE = "NerfModel"


def is_nerf_config(config: dict[str, Any]) -> bool:
    """Whether a field config describes a :class:`NerfModel` (runs written before the ``otype`` key: a ``scene`` key)."""
    return config.get("otype") == OTYPE or ("scene" in config and "grid" in config)


# Sections of a NerfModel config, checked when one is built (from a run, flags or an .inrz file).
SCHEMAS = {
    "scene": {"scale": Rule("number", 0.0, 1e6, above=True), "aabb_scale": Rule("int", 1, 128)},
    "march": {"steps_per_unit": Rule("int", 1, 4096), "max_samples": Rule("int", 1, 4096)},
    "grid": {"resolution": Rule("int", 1, 512), "decay": Rule("number", 0.0, 1.0), "threshold": Rule("number", 0.0, 1e6),
             "warmup_steps": Rule("int", 0, 1 << 30), "sample_fraction": Rule("number", 0.0, 1.0, above=True)},
    "poses": {"n_cameras": Rule("int", 1, 1 << 20), "lr": Rule("number", 0.0, 1.0, above=True),
              "lr_final": Rule("number", 0.0, 1.0, above=True)},
}


class NerfModel(nn.Module):
    """Field, grid and rendering settings, rebuilt from ``config`` alone (see the module docstring)."""

    # Buffers needed only to keep training: the grid's decaying density estimate behind ``grid.occupied``.
    # Rendering reads the occupied cells and their box only, so an ``.inrz`` file leaves these out.
    training_only_buffers: tuple[str, ...] = ("grid.values",)

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("nerf", config, {})
        for section, schema in SCHEMAS.items():
            check_section(section, config.get(section, {}), schema)
        if "scene" not in config or "field" not in config:
            raise ConfigError("a NerfModel config needs the sections 'scene' and 'field'")
        offset = config["scene"].get("offset")
        if not (isinstance(offset, list) and len(offset) == 3 and all(Rule("number").accepts(v) for v in offset)):
            raise ConfigError("scene key 'offset' must be 3 finite numbers")
        self.config = copy.deepcopy(config)
        scene = config["scene"]
        self.scale = float(scene["scale"])
        self.register_buffer("offset", torch.tensor(scene["offset"], dtype=torch.float32), persistent=False)
        self.aabb_scale = int(scene["aabb_scale"])
        self.box = (0.5 - 0.5 * self.aabb_scale, 0.5 + 0.5 * self.aabb_scale)
        march_config = config.get("march", {})
        self.schedule = StepSchedule.instant_ngp(self.aabb_scale, int(march_config.get("steps_per_unit", 1024)))
        self.max_samples = int(march_config.get("max_samples", 1024))
        self.max_steps = self.schedule.max_steps((self.box[1] - self.box[0]) * 3**0.5)
        grid = config.get("grid", {})
        self.grid = OccupancyGrid(n_cascades(self.aabb_scale), int(grid.get("resolution", 128)),
                                  float(grid.get("decay", 0.95)), float(grid.get("threshold", 0.01)),
                                  self.schedule.min_step, int(grid.get("warmup_steps", 256)),
                                  float(grid.get("sample_fraction", 1.0)))
        self.field = NerfField({**config["field"], "box": list(self.box)})
        poses = config.get("poses")
        if poses is not None and "n_cameras" not in poses:
            raise ConfigError("the 'poses' section of a NerfModel config needs 'n_cameras'")
        self.poses = None if poses is None else PoseCorrection(
            int(poses["n_cameras"]), float(poses.get("lr", POSE_LR)), float(poses.get("lr_final", POSE_LR_FINAL)))

    @property
    def n_params(self) -> int:
        """Trainable parameters (the field's; the occupancy grid holds buffers only)."""
        return sum(p.numel() for p in self.parameters())

    def training_hooks(self, seed: int) -> list[Callable[[int], None]]:
        """Step hooks the Trainer runs while fitting: the occupancy grid's update (every step during the grid's
        warm-up, then every 16th), from the field's densities in eval mode, with its own random generator."""
        generator = torch.Generator(device=self.offset.device).manual_seed(seed + 1)

        def update_grid(step: int) -> None:
            if update_due(step):
                was_training = self.training
                self.eval()
                self.grid.update(step, self.field.density, generator=generator)
                self.train(was_training)

        return [update_grid]

    # -- coordinates ----------------------------------------------------------------------------
    def to_unit(self, points: torch.Tensor) -> torch.Tensor:
        """World → unit cube: ``scale·p + offset``."""
        return points * self.scale + self.offset.to(points.device)

    def from_unit(self, points: torch.Tensor) -> torch.Tensor:
        """Unit cube → world."""
        return (points - self.offset.to(points.device)) / self.scale

    def density_world(self, points: torch.Tensor) -> torch.Tensor:
        """σ per unit-cube length at world ``points (N, 3)`` (0 outside the scene box)."""
        unit = self.to_unit(points)
        inside = ((unit >= self.box[0]) & (unit <= self.box[1])).all(dim=1)
        return torch.where(inside, self.field.density(unit), torch.zeros((), device=points.device))

    # -- rendering ------------------------------------------------------------------------------
    def _start(self, origins: torch.Tensor, directions: torch.Tensor,
               use_grid: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit-cube origins and the ray interval in the scene box, narrowed with the grid to the occupied cells' box.

        The narrowed start is snapped back onto the scene box's step lattice, so that the samples sit
        where dense marching puts them.
        """
        unit_origins = self.to_unit(origins)
        t_near, t_far = ray_box(unit_origins, directions, self.box[0], self.box[1])
        if use_grid:
            low = self.grid.occupied_box[0].clamp_min(self.box[0])
            high = self.grid.occupied_box[1].clamp_max(self.box[1])
            t_inner, t_far_inner = ray_box(unit_origins, directions, low, high)
            t_inner = self.schedule.snap(t_near, torch.maximum(t_near, t_inner))
            t_near, t_far = torch.maximum(t_near, t_inner), torch.minimum(t_far, t_far_inner)
        return unit_origins, t_near, t_far

    def _shade(self, samples: RaySamples, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``σ (S,)`` and ``rgb (S, 3)`` of the samples of rays with unit ``directions (R, 3)``."""
        if len(samples) == 0:
            empty = directions.new_zeros(0)
            return empty, directions.new_zeros(0, 3)
        sigmas, features = self.field.density_and_features(samples.positions)
        return sigmas, self.field.colour(features, self.field.encode_directions(directions)[samples.ray_indices])

    def render_train(self, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
                     generator: torch.Generator | None = None, use_grid: bool = True) -> dict[str, torch.Tensor]:
        """Differentiable render of world rays ``(R, 3)`` over ``background (R, 3)``; adds ``n_samples``."""
        unit_origins, t_near, t_far = self._start(origins, directions, use_grid)
        jitter = torch.rand(t_near.shape, device=t_near.device, generator=generator)
        t_near = t_near + jitter * self.schedule.min_step
        samples, _ = march(unit_origins, directions, t_near, t_far, self.grid if use_grid else None, self.schedule,
                           self.max_steps, self.max_samples)
        if len(samples):
            with torch.no_grad():  # compaction: drop samples behind the point where T < 1e-4
                _, transmittance = render_weights(self.field.density(samples.positions),
                                                  samples.t_ends - samples.t_starts, samples.ray_indices)
            samples = samples.select(transmittance >= TRAIN_MIN_TRANSMITTANCE)
        if origins.requires_grad or directions.requires_grad:  # refined poses: positions follow the rays
            middles = 0.5 * (samples.t_starts + samples.t_ends)
            positions = unit_origins[samples.ray_indices] + middles[:, None] * directions[samples.ray_indices]
            samples = RaySamples(samples.ray_indices, samples.t_starts, samples.t_ends, positions)
        sigmas, rgbs = self._shade(samples, directions)
        out = composite_rays(rgbs, sigmas, samples.t_starts, samples.t_ends, samples.ray_indices, origins.shape[0],
                             background, TRAIN_MIN_TRANSMITTANCE)
        out["depth"] = out["depth"] / self.scale
        out["n_samples"] = torch.tensor(len(samples))
        return out

    @torch.no_grad()
    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor | float = 1.0,
                    min_transmittance: float = 1e-4, steps_per_round: int | None = None, use_grid: bool = True,
                    chunk: int | None = None) -> dict[str, torch.Tensor]:
        """Render world rays ``(R, 3)``: ``rgb (R, 3)``, ``depth (R,)`` (world units, expected), ``opacity (R,)``.

        Rays march in rounds of ``steps_per_round`` candidate steps and stop once their
        transmittance is below ``min_transmittance``; ``chunk`` rays are processed at a time
        (defaults: 32 steps and 2^15 rays on a CPU, 128 steps and 2^19 rays on a GPU).
        """
        device = origins.device
        on_cpu = device.type == "cpu"
        steps_per_round = steps_per_round or (32 if on_cpu else 128)
        chunk = chunk or (1 << 15 if on_cpu else 1 << 19)
        n_rays = origins.shape[0]
        background = torch.as_tensor(background, dtype=torch.float32, device=device).expand(n_rays, 3)
        rgb = torch.zeros(n_rays, 3, device=device)
        depth = torch.zeros(n_rays, device=device)
        opacity = torch.zeros(n_rays, device=device)
        for start in range(0, n_rays, chunk):
            part = slice(start, min(start + chunk, n_rays))
            self._render_chunk(origins[part], directions[part], min_transmittance, steps_per_round, use_grid,
                               rgb[part], depth[part], opacity[part])
        rgb = rgb + (1.0 - opacity)[:, None] * background
        return {"rgb": rgb, "depth": depth / self.scale, "opacity": opacity}

    def _render_chunk(self, origins: torch.Tensor, directions: torch.Tensor, min_transmittance: float,
                      steps_per_round: int, use_grid: bool, rgb: torch.Tensor, depth: torch.Tensor,
                      opacity: torch.Tensor) -> None:
        unit_origins, t_cursor, t_far = self._start(origins, directions, use_grid)
        transmittance = torch.ones(origins.shape[0], device=origins.device)
        encoded_directions = self.field.encode_directions(directions)
        alive = torch.nonzero(t_cursor < t_far).squeeze(1)
        steps_done = 0
        while alive.numel() and steps_done < self.max_steps:
            samples, t_next = march(unit_origins[alive], directions[alive], t_cursor[alive], t_far[alive],
                                    self.grid if use_grid else None, self.schedule, steps_per_round, 0,
                                    block=steps_per_round)
            steps_done += steps_per_round
            if len(samples):
                sigmas, features = self.field.density_and_features(samples.positions)
                weights, before = render_weights(sigmas, samples.t_ends - samples.t_starts, samples.ray_indices)
                reached = transmittance[alive][samples.ray_indices]
                visible = before * reached >= min_transmittance
                weights = weights * reached * visible
                rays = alive[samples.ray_indices]
                rgbs = self.field.colour(features[visible], encoded_directions[alive][samples.ray_indices[visible]])
                rgb.index_add_(0, rays[visible], weights[visible, None] * rgbs)
                depth.index_add_(0, rays, weights * 0.5 * (samples.t_starts + samples.t_ends))
                opacity.index_add_(0, rays, weights)
                optical = torch.zeros(alive.numel(), device=origins.device).index_add_(
                    0, samples.ray_indices, sigmas * (samples.t_ends - samples.t_starts))
                transmittance[alive] = transmittance[alive] * torch.exp(-optical)
            t_cursor[alive] = t_next
            keep = (t_next < t_far[alive]) & (transmittance[alive] >= min_transmittance)
            alive = alive[keep]
