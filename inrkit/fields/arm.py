"""The auto-regressive entropy model (ARM) of latent grids: a small MLP from a causal context to a Laplace.

Each latent ``ŷ[i, j]`` of a grid is predicted from ``n_context`` already-decoded latents of the same grid
in the rows above it (:data:`CONTEXTS`; zeros outside the grid), so a decoder can decode a whole row of
every grid at once (:mod:`inrkit.export.latent_codec`). The MLP (ReLU hidden layers of ``n_neurons``)
gives a location ``μ`` and a base-2 log scale ``s`` (clamped to [:data:`MIN_LOG2_SCALE`,
:data:`MAX_LOG2_SCALE`]) of a Laplace ``b = 2^s``; the rate of an integer latent ``ŷ`` is
``−log2 P(ŷ)`` with ``P(ŷ) = F(ŷ + ½) − F(ŷ − ½)``, ``F`` the Laplace CDF. For ``u = |ŷ − μ|``::

    u ≥ ½:  P = ½·e^{−(u − ½)/b}·(1 − e^{−1/b})
    u < ½:  P = 1 − ½·(e^{−(½ − u)/b} + e^{−(½ + u)/b})

clamped below at a floor: 2^−16 in the training loss (Cool-Chic's; below it a latent's rate has no gradient),
2^−24 where the rate is *measured* (:data:`CODER_PROBABILITY_FLOOR`, what the range coder charges). Cool-Chic
and C3 also use the left neighbours of the same row; leaving them out is what lets the decoder work row-parallel
(the rate it costs is measured in BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.backends import cpu_mlp
from inrkit.errors import ConfigError, Rule, check_section

# (dy, dx) offsets of the causal context, rows above only, nearest first.
CONTEXTS: dict[int, tuple[tuple[int, int], ...]] = {
    8: tuple((-1, dx) for dx in range(-2, 3)) + tuple((-2, dx) for dx in range(-1, 2)),
    12: tuple((-1, dx) for dx in range(-3, 4)) + tuple((-2, dx) for dx in range(-2, 3)),
    21: tuple((-1, dx) for dx in range(-4, 5)) + tuple((-2, dx) for dx in range(-3, 4))
    + tuple((-3, dx) for dx in range(-2, 3)),
}
MIN_LOG2_SCALE, MAX_LOG2_SCALE = -6.0, 8.0
PROBABILITY_FLOOR = 2.0**-16  # the training loss's floor
# The range coder's: constriction's quantised Laplace gives every symbol in range at least one of its 2^24
# probability units, so a tail latent the training loss counts at 16 bits costs up to 24 in the file (kodim12
# at 0.2 bpp: 712 such latents, the estimate 8,555 bytes against 9,276 coded; with this floor, within 0.5 %).
CODER_PROBABILITY_FLOOR = 2.0**-24
INITIAL_LOG2_SCALE = -1.0  # b = ½ at the start (a zero latent costs 0.66 bits; the former b = 2 cost 2.2 bits)
ARM_SCHEMA = {"n_context": Rule("int", 1, 64),
              "n_neurons": Rule("int", 1, 64), "n_hidden_layers": Rule("int", 1, 4)}


def context_offsets(n_context: int) -> tuple[tuple[int, int], ...]:
    """The ``(dy, dx)`` offsets of a context of ``n_context`` latents."""
    if n_context not in CONTEXTS:
        raise ConfigError(f"arm key 'n_context' must be one of {', '.join(map(str, CONTEXTS))}, got {n_context}")
    return CONTEXTS[n_context]


def gather_context(grid: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """``(h, w)`` grid → ``(n_context, h·w)`` (channels first, the fast layout of the ARM's matrix products):
    for every latent (row-major) its neighbours at ``offsets`` (zero outside the grid)."""
    height, width = grid.shape
    top = max(-dy for dy, _ in offsets)
    side = max(abs(dx) for _, dx in offsets)
    padded = F.pad(grid, (side, side, top, 0))
    columns = [padded[top + dy : top + dy + height, side + dx : side + dx + width] for dy, dx in offsets]
    return torch.stack(columns).reshape(len(offsets), height * width)


def laplace_bits(values: torch.Tensor, mean: torch.Tensor, log2_scale: torch.Tensor,
                 floor: float = PROBABILITY_FLOOR) -> torch.Tensor:
    """``−log2 max(P(values), floor)`` under the quantised Laplace (module docstring), elementwise."""
    b = torch.exp2(log2_scale)
    u = (values - mean).abs()
    tail = -1.0 - (u - 0.5) / (b * math.log(2.0)) + torch.log2(-torch.expm1(-1.0 / b))
    centre = torch.log2(1.0 - 0.5 * (torch.exp(-(0.5 - u).clamp_min(0) / b) + torch.exp(-(0.5 + u) / b)))
    log2_p = torch.where(u >= 0.5, tail, centre)
    return -log2_p.clamp_min(math.log2(floor))


class ARM(nn.Module):
    """``n_context → n_neurons (×n_hidden_layers, ReLU) → 2`` (μ, log2 b); config ``{"otype": "ARM", ...}``."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("arm", config, ARM_SCHEMA)
        if config.get("otype", "ARM") != "ARM":
            raise ConfigError(f"arm otype must be 'ARM', got {config.get('otype')!r:.40}")
        self.offsets = context_offsets(int(config.get("n_context", 12)))
        width, depth = int(config.get("n_neurons", 16)), int(config.get("n_hidden_layers", 2))
        sizes = [len(self.offsets)] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.output = nn.Linear(width, 2)
        with torch.no_grad():
            self.output.weight.mul_(0.1)
            self.output.bias.copy_(torch.tensor([0.0, INITIAL_LOG2_SCALE]))

    def layers(self) -> list[nn.Linear]:
        """The linear layers in order (the last gives μ and log2 b)."""
        return [*self.hidden, self.output]

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n_context, N)`` contexts (channels first, as :func:`gather_context` gives them) → ``(μ, log2 b)``,
        each ``(N,)``; a layer is ``h ← ReLU(A·h + a)`` on the ``(width, N)`` activations."""
        h = context
        for layer in self.hidden:
            h = torch.relu(torch.addmm(layer.bias[:, None], layer.weight, h))
        out = torch.addmm(self.output.bias[:, None], self.output.weight, h)
        return out[0], out[1].clamp(MIN_LOG2_SCALE, MAX_LOG2_SCALE)

    def bits(self, grids: list[torch.Tensor], floor: float = PROBABILITY_FLOOR) -> torch.Tensor:
        """Total bits of the (quantised) ``(h_k, w_k)`` grids under the model (a scalar), probabilities clamped
        below at ``floor``, in one pass: the fused CPU kernel (:mod:`inrkit.backends.cpu_mlp`, 2.5× faster
        forward and backward) when it applies, else :meth:`reference_bits`."""
        if cpu_mlp.supports(self.layers(), [*grids, *self.parameters()]):
            return cpu_mlp.arm_bits(grids, self.offsets, self.layers(), floor)
        return self.reference_bits(grids, floor)

    def reference_bits(self, grids: list[torch.Tensor], floor: float = PROBABILITY_FLOOR) -> torch.Tensor:
        """:meth:`bits` in PyTorch (the specification of the kernel)."""
        context = torch.cat([gather_context(grid, self.offsets) for grid in grids], dim=1)
        mean, log2_scale = self(context)
        return laplace_bits(torch.cat([grid.reshape(-1) for grid in grids]), mean, log2_scale, floor).sum()

    def macs_per_latent(self) -> int:
        """Multiplications per coded latent."""
        return sum(layer.in_features * layer.out_features for layer in self.layers())
