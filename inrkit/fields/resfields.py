"""ResFields (Mihajlovic et al., ICLR 2024): linear layers whose weights vary in time.

For input ``x (N, in)`` at times ``t (N,) ∈ [-1, 1]``::

    y = x·W(t)ᵀ + b,     W(t) = W + ΔW(t)   ("add")   or   W ⊙ ΔW(t)   ("mul")
    ΔW(t) = Σ_{r<R} v_r(t)·M_r,   v: (C, R) coefficients (one row per frame),  M: (R, out·in) shared basis

as the official ``resfields.Linear`` (compression "vm"). Initialisation as the official code:
``v, M ~ N(0, 0.01²)`` for "add" (W and b keep their base initialisation, e.g. SIREN's); "mul"
starts at the identity with ``M = 1`` and ``v = 1/R``.

**Time.** Row ``c`` of ``v`` belongs to frame ``c``, at the frame centre ``t_c = (2c + 1)/C − 1``
(inrkit's video coordinates; the official code uses ``linspace(−1, 1, C)`` for both its video grid
and its rows, so the two agree frame for frame). ``u = (t + 1)/2·C − 1/2`` is the fractional row:

* ``lookup``: ``v(t) = v[round(u)]`` (row clamped to [0, C−1]);
* ``interpolation``: linear in ``u`` between neighbouring rows, clamped at the border — equal to
  ``lookup`` at frame centres, and defined between frames (frame interpolation, other frame rates).

**Memory.** A weight matrix per sample, ``(N, out, in)``, is never formed. Samples are grouped by
time (sorted when needed); with ``G`` distinct times the layer either builds one matrix per time,
``(G, out, in)``, and applies it with a batched product, or — when ``G·in > N·R`` (almost every
sample at its own time) — uses the factored form ``y = x·Wᵀ + b + Σ_r v_r(t)·(x·M_rᵀ)`` whose
intermediate is ``(N, R, out)``. A batch of 200k pixels over 250 frames thus costs 250 matrices
(64 MB at 256×256), not 200k.

Example:
    >>> layer = ResFieldLinear(16, 8, n_frames=10, rank=4)
    >>> layer(torch.randn(32, 16), torch.rand(32) * 2 - 1).shape
    torch.Size([32, 8])
"""

from __future__ import annotations

import torch
from torch import nn

TIME_MODES = ("lookup", "interpolation")
FUSIONS = ("add", "mul")


class ResFieldLinear(nn.Linear):
    """A linear layer with time-varying weights; see the module docstring. ``weight``/``bias`` are
    the base ``W``/``b``; ``coefficients (C, R)`` and ``matrices (R, out·in)`` are ``v`` and ``M``."""

    def __init__(self, in_features: int, out_features: int, n_frames: int, rank: int, mode: str = "interpolation",
                 fusion: str = "add") -> None:
        super().__init__(in_features, out_features)
        if mode not in TIME_MODES:
            raise ValueError(f"unknown ResFields time mode {mode!r}; choose one of {', '.join(TIME_MODES)}")
        if fusion not in FUSIONS:
            raise ValueError(f"unknown ResFields fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        if n_frames < 1 or rank < 1:
            raise ValueError(f"ResFields needs n_frames >= 1 and rank >= 1, got {n_frames} and {rank}")
        self.n_frames, self.rank, self.mode, self.fusion = int(n_frames), int(rank), mode, fusion
        if fusion == "mul":  # starts at the identity: W ⊙ Σ_r (1/R)·1 = W
            coefficients = torch.full((self.n_frames, self.rank), 1.0 / self.rank)
            matrices = torch.ones(self.rank, out_features * in_features)
        else:
            coefficients = 0.01 * torch.randn(self.n_frames, self.rank)
            matrices = 0.01 * torch.randn(self.rank, out_features * in_features)
        self.coefficients = nn.Parameter(coefficients)
        self.matrices = nn.Parameter(matrices)

    def coefficients_at(self, time: torch.Tensor) -> torch.Tensor:
        """``v(t)``: ``(N,) -> (N, R)`` by lookup or linear interpolation over frame centres."""
        last = self.n_frames - 1
        u = (time.float() + 1.0) * (0.5 * self.n_frames) - 0.5
        if self.mode == "lookup" or last == 0:
            return self.coefficients[u.round().clamp(0, last).long()]
        u = u.clamp(0, last)
        low = u.floor().long().clamp(max=last - 1)
        weight = (u - low)[:, None]
        return self.coefficients[low] * (1.0 - weight) + self.coefficients[low + 1] * weight

    def weights_at(self, time: torch.Tensor) -> torch.Tensor:
        """``W(t)`` for each time: ``(G,) -> (G, out, in)``."""
        delta = (self.coefficients_at(time) @ self.matrices).view(-1, self.out_features, self.in_features)
        return self.weight + delta if self.fusion == "add" else self.weight * delta

    def forward(self, x: torch.Tensor, time: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``scale·(x·W(t)ᵀ + b)``: ``x (N, in)``, ``time (N,)`` -> ``(N, out)`` (``scale`` is SIREN's ω0)."""
        n = x.shape[0]
        if n == 0:
            return x.new_zeros(0, self.out_features)
        order = None
        if n > 1 and not bool((time[1:] >= time[:-1]).all()):
            order = torch.argsort(time, stable=True)
            x, time = x[order], time[order]
        times, counts = torch.unique_consecutive(time, return_counts=True)
        if len(times) * self.in_features <= n * self.rank:
            y = self._grouped(x, times, counts, scale)
        else:
            y = self._factored(x, time, scale)
        if order is None:
            return y
        return torch.empty_like(y).index_copy_(0, order, y)

    def _grouped(self, x: torch.Tensor, times: torch.Tensor, counts: torch.Tensor, scale: float) -> torch.Tensor:
        """One weight matrix per distinct time; samples of a time are contiguous in ``x``."""
        weights = scale * self.weights_at(times).transpose(1, 2)  # (G, in, out)
        bias = scale * self.bias
        groups = len(times)
        if groups == 1:
            return x @ weights[0] + bias
        size = int(counts[0])
        if bool((counts == size).all()):
            return (torch.bmm(x.view(groups, size, -1), weights) + bias).view(-1, self.out_features)
        group = torch.repeat_interleave(torch.arange(groups, device=x.device), counts)
        position = torch.arange(x.shape[0], device=x.device) - (torch.cumsum(counts, 0) - counts)[group]
        padded = x.new_zeros(groups, int(counts.max()), self.in_features).index_put((group, position), x)
        return (torch.bmm(padded, weights) + bias)[group, position]

    def _factored(self, x: torch.Tensor, time: torch.Tensor, scale: float) -> torch.Tensor:
        """``Σ_r v_r(t)·x·B_rᵀ`` (+ ``x·Wᵀ`` for "add"), ``B_r = M_r`` ("add") or ``W ⊙ M_r`` ("mul")."""
        basis = self.matrices.view(self.rank, self.out_features, self.in_features)
        if self.fusion == "mul":
            basis = self.weight * basis
        projected = (x @ basis.reshape(-1, self.in_features).t()).view(-1, self.rank, self.out_features)
        y = torch.einsum("nr,nro->no", self.coefficients_at(time), projected) + self.bias
        if self.fusion == "add":
            y = y + x @ self.weight.t()
        return scale * y

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, n_frames={self.n_frames}, rank={self.rank}, mode={self.mode}, fusion={self.fusion}"
