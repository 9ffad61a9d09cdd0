"""SAPE's spatially adaptive band mask (Hertz et al. 2021, ``amirhertz/SAPE``: ``SpatialControllerStashed``).

A grid of ``R^d`` cells over the input domain holds, per cell ``c``, the number ``n_c`` of scheduled
bands open there (0 at first: only the always-on band). The weight of band ``k`` at input ``x`` is

    w_k(x) = Σ_corners a_j(x) · B[1(n > k)](cell_j),

the box blur ``B`` (``K^d`` cells, ``K = 5`` for more than 100 cells else 3, replicate padding) of the
cell indicator ``1(n_c > k)``, interpolated multilinearly at ``x``: the grid position is
``g = u·(R − 2) + 0.5`` per axis for ``u ∈ [0, 1]`` the input mapped from the encoding's domain, with
corner cells ``⌊g⌋`` and ``⌊g⌋ + 1`` and weights ``1 − (g − ⌊g⌋)`` and ``g − ⌊g⌋`` (SAPE's layout).

Feedback (:meth:`SpatialBandMask.splat`, every training step): each sample's loss is added to its
corner cells with the interpolation weights (a loss sum and a weight sum per cell). At a block
boundary (:meth:`SpatialBandMask.advance`) the cell loss is sum/weight; cells no sample reached take the
mean of their visited ``K^d − 1`` neighbours (SAPE averages all neighbours, visited or not, which under random
minibatches, where most cells see no sample in a block, reads as a low loss and stops them; a cell with no visited
neighbour keeps progressing); the result is box-blurred; every cell still progressing whose
loss exceeds ε opens one more band, the others stop for good; the sums restart. A cell is
progressing while ``n_c`` equals the number of boundaries passed, so ``n_c`` never decreases and a
stopped cell never opens again.

The state (``level``: ``n_c``, ``boundaries``, the two sums) is in buffers, saved with the field's
weights and checkpoints: a resumed run continues the same mask, and the saved field renders with the
final mask.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.errors import ConfigError

MAX_CELLS = 1 << 21  # R^d cells, e.g. 128² for images (SAPE's) or 128³ for volumes
CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class SpatialBandMask(nn.Module):
    """Per-location band weights ``(N, n_bands)`` on a ``resolution^n_dims`` grid (module docstring).

    ``input_domain`` is the encoding's (``"signed"``: inputs in [-1, 1], ``"unit"``: in [0, 1]).
    """

    def __init__(self, n_dims: int, n_bands: int, resolution: int, input_domain: str) -> None:
        super().__init__()
        if not 1 <= n_dims <= 3:
            raise ConfigError(f"a spatial band mask (SAPE) covers 1 to 3 input dimensions, got {n_dims}")
        if resolution < 3 or resolution**n_dims > MAX_CELLS:
            raise ConfigError(f"band_mask 'resolution' must be at least 3 with at most {MAX_CELLS:,} cells in all, "
                              f"got {resolution}^{n_dims}")
        self.n_dims, self.n_bands, self.resolution = int(n_dims), int(n_bands), int(resolution)
        self.low = 0.0 if input_domain == "unit" else -1.0
        cells = resolution**n_dims
        self.kernel = 5 if cells > 100 else 3
        self.register_buffer("level", torch.zeros(cells))
        self.register_buffer("boundaries", torch.zeros(()))
        self.register_buffer("loss_sum", torch.zeros(cells))
        self.register_buffer("loss_weight", torch.zeros(cells))
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # (level it was computed from, blurred table)

    # -- geometry ----------------------------------------------------------------------------------
    def corners(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell indices and weights ``(N, 2^d)`` of the multilinear interpolation at ``u (N, d)`` in [0, 1]."""
        g = u.float().clamp(0.0, 1.0) * (self.resolution - 2) + 0.5
        base = g.floor().clamp(0, self.resolution - 2)
        frac = (g - base)[:, None, :]  # (N, 1, d)
        offsets = torch.tensor(list(itertools.product((0, 1), repeat=self.n_dims)), device=u.device)  # (2^d, d)
        strides = self.resolution ** torch.arange(self.n_dims, device=u.device)
        index = ((base.long()[:, None, :] + offsets) * strides).sum(-1)
        weight = torch.where(offsets.bool(), frac, 1.0 - frac).prod(-1)
        return index, weight

    def _grid(self, values: torch.Tensor) -> torch.Tensor:
        """``(B, cells)`` as ``(B, 1, R, …, R)`` for a convolution (axis ``j`` of the input is the last but ``j``)."""
        return values.reshape(values.shape[0], 1, *([self.resolution] * self.n_dims))

    def _convolve(self, values: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """``(B, cells)`` convolved with ``kernel (K, …, K)`` under replicate padding."""
        half = self.kernel // 2
        padded = F.pad(self._grid(values), [half] * (2 * self.n_dims), mode="replicate")
        weight = kernel.reshape(1, 1, *kernel.shape).to(values)
        return CONVOLUTIONS[self.n_dims](padded, weight).reshape(values.shape[0], -1)

    def blur(self, values: torch.Tensor) -> torch.Tensor:
        """Box blur of ``values (B, cells)``: the mean over ``K^d`` cells, borders replicated."""
        return self._convolve(values, torch.full([self.kernel] * self.n_dims, self.kernel ** -float(self.n_dims)))

    def neighbour_mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over the ``K^d − 1`` cells around each cell of ``values (B, cells)`` (the cell left out)."""
        kernel = torch.full([self.kernel] * self.n_dims, 1.0 / (self.kernel**self.n_dims - 1))
        kernel[(self.kernel // 2,) * self.n_dims] = 0.0
        return self._convolve(values, kernel)

    # -- the mask ----------------------------------------------------------------------------------
    def table(self) -> torch.Tensor:
        """``(cells, n_bands)``: the blurred indicators ``B[1(n > k)]``. Recomputed when ``level`` changes, for the
        bands whose indicator changed only (one band per block boundary)."""
        cached = self._table
        if cached is None or cached[0].device != self.level.device or cached[0].shape != self.level.shape:
            low, high, table = 0, self.n_bands, torch.empty(self.level.numel(), self.n_bands, device=self.level.device)
        elif torch.equal(cached[0], self.level):
            return cached[1]
        else:
            changed = cached[0] != self.level
            low = int(torch.minimum(cached[0], self.level)[changed].min())
            high = int(torch.maximum(cached[0], self.level)[changed].max())
            table = cached[1]
        high = min(high, self.n_bands)
        if high > low:
            bands = torch.arange(low, high, device=self.level.device, dtype=self.level.dtype)
            table[:, low:high] = self.blur((self.level[None, :] > bands[:, None]).float()).T
        self._table = (self.level.clone(), table)
        return table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Band weights ``(N, n_bands)`` at encoding inputs ``x (N, d)`` (no gradient)."""
        with torch.no_grad():
            index, weight = self.corners((x - self.low) / (1.0 - self.low))
            table = self.table()
            out = weight[:, :1] * table.index_select(0, index[:, 0])
            for j in range(1, index.shape[1]):
                out += weight[:, j : j + 1] * table.index_select(0, index[:, j])
        return out

    # -- feedback ----------------------------------------------------------------------------------
    @torch.no_grad()
    def splat(self, coords: torch.Tensor, losses: torch.Tensor) -> None:
        """Add per-sample ``losses (N,)`` at field coordinates ``coords (N, d)`` in [-1, 1] to the cells' sums."""
        index, weight = self.corners((coords + 1.0) * 0.5)
        self.loss_sum.index_add_(0, index.flatten(), (losses.float()[:, None] * weight).flatten())
        self.loss_weight.index_add_(0, index.flatten(), weight.flatten())

    @torch.no_grad()
    def advance(self, epsilon: float) -> None:
        """A block boundary: progressing cells with blurred loss above ``epsilon`` open one band, the others stop."""
        visited = (self.loss_weight > 0).float()
        loss = self.loss_sum / torch.where(visited > 0, self.loss_weight, torch.ones_like(self.loss_weight))
        if not bool(visited.all()):  # fill from the visited neighbours; none visited: no evidence, keep progressing
            around = self.neighbour_mean(torch.stack((loss * visited, visited)))
            filled = torch.where(around[1] > 0, around[0] / around[1].clamp_min(1e-12), torch.full_like(loss, torch.inf))
            loss = torch.where(visited > 0, loss, filled)
        loss = self.blur(loss[None])[0]
        progressing = (self.level == self.boundaries) & (loss > epsilon)
        self.boundaries += 1
        self.level[progressing] = torch.clamp(self.boundaries, max=self.n_bands)
        self.loss_sum.zero_()
        self.loss_weight.zero_()

    @property
    def progressing(self) -> torch.Tensor:
        """``(cells,)`` bool: the cells still opening bands."""
        return self.level == self.boundaries
