"""instant-ngp's multi-cascade occupancy grid (REFERENCE.md §3.2).

Cascade ``k`` (``k = 0 … K−1``, ``K = ⌈log2 aabb_scale⌉ + 1``) covers the cube ``[0.5 ± 2^{k−1}]³`` of
the unit-cube coordinates with ``R³`` cells (``R = 128``); a point belongs to the finest cascade that
contains it, ``k = max(0, ⌈log2(2·‖p − 0.5‖_∞)⌉)``. Each cell stores an optical thickness
``v = σ·Δt_min`` (max over the samples that fell in it). An update at step ``t`` runs when
``t mod clamp(⌊t/16⌋, 1, 16) = 0`` and does

    ``v ← max(decay·v, v_new)``   (decay 0.95; a max, not an average, so thin structures survive)

with ``v_new`` from one random point in every cell during the first ``warmup_steps`` (256) steps,
afterwards from ``N/4`` random cells plus ``N/4`` random occupied cells (``N`` = all cells;
``sample_fraction`` scales both, for CPU runs). Cells that no training camera sees hold ``v = −1`` and
are never occupied. A cell is **occupied** iff ``v > min(threshold, mean over cascade 0 of max(v, 0))``
(threshold 0.01). Cells are stored x-fastest (``index = x + R·y + R²·z``), not in Morton order.
The bounding box of the occupied cells is kept too: rays are clipped to it before marching.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from inrkit.nerf.cameras import Camera


def n_cascades(aabb_scale: int) -> int:
    """``⌈log2 aabb_scale⌉ + 1``."""
    return math.ceil(math.log2(max(aabb_scale, 1))) + 1


def update_due(step: int, interval: int = 16) -> bool:
    """instant-ngp's schedule: ``step mod clamp(⌊step/16⌋, 1, 16) == 0`` (every step at first, every 16 from 256).

    The grid's ``warmup_steps`` choose which cells an update samples (:meth:`OccupancyGrid.update`), not when it runs.
    """
    return step % min(max(step // interval, 1), interval) == 0


class OccupancyGrid(nn.Module):
    """Occupancy of ``n_cascades × resolution³`` cells; persistent buffers, so it travels with the weights."""

    def __init__(self, n_cascades: int = 1, resolution: int = 128, decay: float = 0.95, threshold: float = 0.01,
                 min_step: float = math.sqrt(3) / 1024, warmup_steps: int = 256, sample_fraction: float = 1.0) -> None:
        super().__init__()
        self.n_cascades = n_cascades
        self.resolution = resolution
        self.decay = decay
        self.threshold = threshold
        self.min_step = min_step
        self.warmup_steps = warmup_steps
        self.sample_fraction = sample_fraction
        n_cells = resolution**3
        self.register_buffer("values", torch.zeros(n_cascades, n_cells))
        self.register_buffer("occupied", torch.ones(n_cascades, n_cells, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        outer = 2.0 ** (n_cascades - 1)
        self.register_buffer("occupied_box", torch.tensor([[0.5 - outer / 2] * 3, [0.5 + outer / 2] * 3]))

    @property
    def n_cells(self) -> int:
        return self.resolution**3

    # -- geometry -------------------------------------------------------------------------------
    def cascade_of(self, points: torch.Tensor) -> torch.Tensor:
        """Finest cascade containing each point ``(N, 3)`` → ``(N,)`` long (may exceed ``K−1`` outside the grid)."""
        if self.n_cascades == 1:
            return torch.zeros(points.shape[0], dtype=torch.long, device=points.device)
        extent = (points - 0.5).abs().amax(dim=1).mul(2.0).clamp_min(1e-12)
        return torch.ceil(torch.log2(extent)).clamp_min(0).long()

    def cell_index(self, points: torch.Tensor, cascades: torch.Tensor) -> torch.Tensor:
        """Linear cell index ``(N,)`` of ``points (N, 3)`` in their cascades (clamped to the grid)."""
        size = torch.pow(2.0, cascades.float())[:, None]
        local = (points - 0.5) / size + 0.5
        cells = (local * self.resolution).long().clamp(0, self.resolution - 1)
        return cells[:, 0] + self.resolution * (cells[:, 1] + self.resolution * cells[:, 2])

    def cell_points(self, cascade: int, cells: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
        """Points ``(N, 3)`` inside ``cells (N,)`` of ``cascade`` at relative offsets ``jitter (N, 3)`` ∈ [0, 1)."""
        r = self.resolution
        return self._xyz_points(cascade, torch.stack((cells % r, (cells // r) % r, cells // (r * r)), dim=1), jitter)

    def _xyz_points(self, cascade: int, xyz: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
        """Points ``(N, 3)`` in the cells with integer coordinates ``xyz (N, 3)`` at offsets ``jitter (N, 3)``."""
        return ((xyz.float() + jitter) / self.resolution - 0.5) * (2.0**cascade) + 0.5

    def _occupied_xyz(self, cascade: int) -> torch.Tensor:
        """Integer ``(x, y, z)`` of the occupied cells of ``cascade``: ``(M, 3)`` long."""
        r = self.resolution
        return torch.nonzero(self.occupied[cascade].view(r, r, r)).flip(1)  # storage is [z][y][x]

    def is_occupied(self, points: torch.Tensor) -> torch.Tensor:
        """``(...,)`` bool for ``points (..., 3)``: in an occupied cell (False outside the outer cascade)."""
        r = self.resolution
        if self.n_cascades == 1:  # the common case, without the cascade arithmetic
            cells = torch.floor(points * r).long()
            inside = ((cells >= 0) & (cells < r)).all(dim=-1)
            cells = cells.clamp(0, r - 1)
            return self.occupied[0][cells[..., 0] + r * (cells[..., 1] + r * cells[..., 2])] & inside
        shape = points.shape[:-1]
        points = points.reshape(-1, 3)
        cascades = self.cascade_of(points)
        inside = cascades < self.n_cascades
        cascades = cascades.clamp_max(self.n_cascades - 1)
        flat = cascades * self.n_cells + self.cell_index(points, cascades)
        return (self.occupied.reshape(-1)[flat] & inside).reshape(shape)

    # -- updates --------------------------------------------------------------------------------
    @torch.no_grad()
    def mark_unseen(self, cameras: list[Camera], to_unit: Callable[[torch.Tensor], torch.Tensor],
                    from_unit: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Set ``v = −1`` for cells whose centre no camera sees (in front of it, inside its image)."""
        device = self.values.device
        seen = torch.zeros_like(self.occupied)
        all_cells = torch.arange(self.n_cells, device=device)
        for cascade in range(self.n_cascades):
            world = from_unit(self.cell_points(cascade, all_cells, torch.full((self.n_cells, 3), 0.5, device=device)))
            for camera in cameras:
                w2c = torch.linalg.inv(torch.as_tensor(camera.c2w, dtype=torch.float32, device=device))
                local = world @ w2c[:3, :3].T + w2c[:3, 3]
                depth = -local[:, 2]
                u = camera.fx * local[:, 0] / depth.clamp_min(1e-6) + camera.cx
                v = -camera.fy * local[:, 1] / depth.clamp_min(1e-6) + camera.cy
                seen[cascade] |= (depth > 0) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
        self.values[~seen] = -1.0
        self.occupied &= seen
        self._update_box()

    @torch.no_grad()
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1 << 18,
               generator: torch.Generator | None = None) -> None:
        """One instant-ngp update (see the module docstring); ``density_fn`` maps unit-cube points ``(N, 3)`` to σ ``(N,)``."""
        device = self.values.device
        r = self.resolution
        fresh = torch.zeros_like(self.values)
        for cascade in range(self.n_cascades):
            if step < self.warmup_steps:
                count = max(1, int(self.n_cells * self.sample_fraction))
                if count >= self.n_cells:
                    axis = torch.arange(r, device=device)
                    xyz = torch.cartesian_prod(axis, axis, axis)
                else:
                    xyz = torch.randint(r, (count, 3), device=device, generator=generator)
            else:
                count = max(1, int(self.n_cells * self.sample_fraction / 4))
                xyz = torch.randint(r, (count, 3), device=device, generator=generator)
                occupied = self._occupied_xyz(cascade)
                if len(occupied):
                    pick = torch.randint(len(occupied), (count,), device=device, generator=generator)
                    xyz = torch.cat((xyz, occupied[pick]))
            cells = xyz[:, 0] + r * (xyz[:, 1] + r * xyz[:, 2])
            seen = self.values[cascade, cells] >= 0  # unseen cells stay excluded
            cells, xyz = cells[seen], xyz[seen]
            for start in range(0, cells.numel(), chunk):
                part = cells[start:start + chunk]
                jitter = torch.rand(part.numel(), 3, device=device, generator=generator)
                sigma = density_fn(self._xyz_points(cascade, xyz[start:start + chunk], jitter)).float().reshape(-1)
                fresh[cascade].scatter_reduce_(0, part, sigma * self.min_step, reduce="amax")
        seen = self.values >= 0
        self.values.copy_(torch.where(seen, torch.maximum(self.values * self.decay, fresh), self.values))
        mean = self.values[0].clamp_min(0).mean()
        self.occupied.copy_(self.values > torch.clamp(mean, max=self.threshold))
        self.updates += 1
        self._update_box()

    def _update_box(self) -> None:
        """``occupied_box = [low (3,), high (3,)]``: the unit-cube box of all occupied cells (empty grid: a point)."""
        r = self.resolution
        lows, highs = [], []
        for cascade in range(self.n_cascades):
            cube = self.occupied[cascade].view(r, r, r)  # [z][y][x]
            if not bool(cube.any()):
                continue
            # occupied range along each axis from the projections onto it (no per-cell arithmetic)
            ranges = [torch.nonzero(cube.any(dim=others)).squeeze(1) for others in ((0, 1), (0, 2), (1, 2))]
            low = torch.stack([cells[0] for cells in ranges])
            high = torch.stack([cells[-1] for cells in ranges])
            zeros = torch.zeros(1, 3, device=cube.device)
            lows.append(self._xyz_points(cascade, low[None], zeros)[0])
            highs.append(self._xyz_points(cascade, high[None], zeros + 1)[0])
        if lows:
            self.occupied_box.copy_(torch.stack((torch.stack(lows).amin(0), torch.stack(highs).amax(0))))
        else:
            self.occupied_box.fill_(0.5)

    def occupancy_fraction(self) -> float:
        """Fraction of occupied cells (all cascades)."""
        return float(self.occupied.float().mean())
