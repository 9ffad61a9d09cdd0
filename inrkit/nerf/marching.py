"""Ray marching through the occupancy grid: packed samples in occupied cells only (REFERENCE.md §3.3).

All quantities are in instant-ngp's unit-cube coordinates (``p = scale·p_world + offset``; distances
are ``scale`` times world distances). A ray ``o + t·d`` (unit ``d``) is clipped to the scene box
``[t_near, t_far]`` and stepped with

    ``Δt(t) = clamp(c·t, Δt_min, Δt_max)``     (``c`` = cone angle; 0 gives constant steps ``Δt_min``)

from ``t_0 = t_near + u·Δt_min`` (``u ~ U[0, 1)`` for training, 0 for rendering). The candidate
interval ``[t_k, t_{k+1}]`` becomes a sample (at its midpoint) iff the midpoint lies in an occupied
cell; at most ``max_samples`` are kept per ray. Candidates are evaluated for all rays at once in
blocks of steps — a tensor program without per-ray Python loops; empty cells cost one grid lookup
and no network evaluation. instant-ngp's defaults: ``Δt_min = √3/1024``, ``c = 0`` when
``aabb_scale = 1`` and ``1/256`` otherwise (both scale with ``steps_per_unit``), ``Δt_max = 4·Δt_min·aabb_scale``, 1024
samples per ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from inrkit.nerf.occupancy import OccupancyGrid
from inrkit.nerf.volume import segment_starts


@dataclass
class RaySamples:
    """Packed samples: ``ray_indices (S,)`` sorted, intervals ``t_starts/t_ends (S,)``, ``positions (S, 3)``."""

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor
    positions: torch.Tensor

    def __len__(self) -> int:
        return int(self.ray_indices.numel())

    def select(self, mask: torch.Tensor) -> RaySamples:
        """The samples where ``mask (S,)`` is True (order kept)."""
        return RaySamples(self.ray_indices[mask], self.t_starts[mask], self.t_ends[mask], self.positions[mask])


@dataclass(frozen=True)
class StepSchedule:
    """Step sizes along a ray: ``Δt(t) = clamp(cone·t, min_step, max_step)`` in unit-cube lengths."""

    min_step: float = math.sqrt(3) / 1024
    max_step: float = math.sqrt(3) / 1024
    cone: float = 0.0

    @classmethod
    def instant_ngp(cls, aabb_scale: int, steps_per_unit: int = 1024) -> StepSchedule:
        """instant-ngp's stepping: constant ``√3/steps`` for ``aabb_scale = 1``, else cone ``4/steps`` (1/256 at 1024).

        The cone angle scales with the step like ``Δt_min`` does, so that a coarser preset keeps
        instant-ngp's shape (constant steps up to ``t = 256·Δt_min``, then ``Δt ∝ t``) instead of
        stepping finely through the whole inner cube and then 1/256 of ``t`` through the outer cascades.
        """
        min_step = math.sqrt(3) / steps_per_unit
        if aabb_scale <= 1:
            return cls(min_step, min_step, 0.0)
        return cls(min_step, min_step * aabb_scale * 4, 4.0 / steps_per_unit)

    def positions(self, t0: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``t_k`` for steps ``k (K,)`` of rays starting at ``t0 (R,)``: ``(R, K)``.

        Constant steps ``Δt_min`` while ``c·t < Δt_min``, then geometric growth ``t ← t(1 + c)``
        until ``c·t ≥ Δt_max``, then constant ``Δt_max``; each phase in closed form.
        """
        return self._at(t0[:, None], k[None, :].to(t0.dtype))

    def _phases(self, t0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps ``n1, n2`` of the constant and geometric phases and their end positions ``t1, t2``."""
        growth = math.log1p(self.cone)
        n1 = torch.ceil(((self.min_step / self.cone - t0) / self.min_step).clamp_min(0))
        t1 = t0 + n1 * self.min_step
        n2 = torch.ceil((torch.log((self.max_step / self.cone) / t1).clamp_min(0)) / growth)
        return n1, t1, n2, t1 * torch.exp(n2 * growth)

    def _at(self, t0: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """``t_k`` elementwise (broadcasting ``t0`` against ``k``)."""
        if self.cone <= 0.0 or self.max_step <= self.min_step:
            return t0 + k * self.min_step
        n1, t1, n2, t2 = self._phases(t0)
        phase1 = t0 + k * self.min_step
        phase2 = t1 * torch.exp((k - n1) * math.log1p(self.cone))
        phase3 = t2 + (k - n1 - n2) * self.max_step
        return torch.where(k < n1, phase1, torch.where(k < n1 + n2, phase2, phase3))

    def snap(self, t0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The last step position ``t_k ≤ t`` of rays starting at ``t0`` (both ``(R,)``)."""
        if self.cone <= 0.0 or self.max_step <= self.min_step:
            return t0 + torch.floor(((t - t0) / self.min_step).clamp_min(0)) * self.min_step
        n1, t1, n2, t2 = self._phases(t0)
        k = torch.where(t < t1, torch.floor((t - t0) / self.min_step),
                        torch.where(t < t2, n1 + torch.floor(torch.log(t / t1) / math.log1p(self.cone)),
                                    n1 + n2 + torch.floor((t - t2) / self.max_step)))
        snapped = self._at(t0, k.clamp_min(0))
        return torch.where(snapped > t, self._at(t0, (k - 1).clamp_min(0)), snapped)  # guard against rounding

    def max_steps(self, length: float) -> int:
        """An upper bound on the steps needed to cover ``length`` starting at ``t = 0``."""
        if self.cone <= 0.0 or self.max_step <= self.min_step:
            return math.ceil(length / self.min_step) + 1
        flat = self.min_step / self.cone
        geometric = math.log(max(self.max_step / self.min_step, 1.0)) / math.log1p(self.cone)
        return math.ceil(flat / self.min_step + geometric + length / self.max_step) + 2


def ray_box(origins: torch.Tensor, directions: torch.Tensor, low: float | torch.Tensor, high: float | torch.Tensor,
            near: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab test against the box ``[low, high]`` (scalars or ``(3,)``): ``t_near, t_far (R,)``; ``t_far ≤ t_near`` misses.

    ``t_near`` is at least ``near`` (rays start in front of the camera).
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    inv = 1.0 / safe
    t_low, t_high = (low - origins) * inv, (high - origins) * inv
    t_near = torch.minimum(t_low, t_high).amax(dim=1).clamp_min(near)
    t_far = torch.maximum(t_low, t_high).amin(dim=1)
    return t_near, t_far


@torch.no_grad()
def march(origins: torch.Tensor, directions: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
          grid: OccupancyGrid | None, schedule: StepSchedule, max_steps: int, max_samples: int = 1024,
          block: int = 64) -> tuple[RaySamples, torch.Tensor]:
    """Candidate steps ``t_k`` from ``t_near`` (the rays' first sample start) up to ``max_steps`` of them or ``t_far``.

    ``origins, directions (R, 3)`` in unit-cube coordinates; ``grid=None`` keeps every candidate
    (dense marching). Returns the packed samples in occupied cells and, per ray, the ``t`` where the
    next call should continue (``≥ t_far`` once the ray has left the box).
    """
    device = origins.device
    chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (flat candidate id, t_start, t_end)
    finished = torch.maximum(t_near, t_far)
    t_next = finished
    for first in range(0, max_steps, block):
        steps = torch.arange(first, min(first + block, max_steps) + 1, device=device)
        t = schedule.positions(t_near, steps)  # (R, B+1): interval ends included
        starts, ends = t[:, :-1], t[:, 1:]
        alive = starts < t_far[:, None]
        if not bool(alive.any()):
            t_next = finished
            break
        rows, cols = torch.nonzero(alive, as_tuple=True)
        if grid is not None:
            mids = 0.5 * (starts[rows, cols] + ends[rows, cols])
            keep = grid.is_occupied(torch.addcmul(origins[rows], mids[:, None], directions[rows]))
            rows, cols = rows[keep], cols[keep]
        chunks.append((rows * max_steps + first + cols, starts[rows, cols], ends[rows, cols]))
        t_next = torch.where(starts[:, -1] < t_far, ends[:, -1], finished)
    if chunks:
        flat = torch.cat([c[0] for c in chunks])
        order = torch.argsort(flat)
        ray_indices = flat[order] // max_steps
        t_starts = torch.cat([c[1] for c in chunks])[order]
        t_ends = torch.minimum(torch.cat([c[2] for c in chunks])[order], t_far[ray_indices])
    else:
        ray_indices = torch.zeros(0, dtype=torch.long, device=device)
        t_starts = t_ends = torch.zeros(0, device=device)
    if max_samples and len(ray_indices):
        rank = torch.arange(len(ray_indices), device=device) - segment_starts(ray_indices)
        keep = rank < max_samples
        ray_indices, t_starts, t_ends = ray_indices[keep], t_starts[keep], t_ends[keep]
    positions = origins[ray_indices] + (0.5 * (t_starts + t_ends))[:, None] * directions[ray_indices]
    return RaySamples(ray_indices, t_starts, t_ends, positions), t_next
