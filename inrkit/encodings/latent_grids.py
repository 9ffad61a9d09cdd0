"""A pyramid of 2-D latent grids, bilinearly upsampled (the latent representation of Cool-Chic and C3).

For an image of ``H × W`` pixels the encoding holds ``K`` one-channel grids; grid ``k`` has
``⌈H/2^k⌉ × ⌈W/2^k⌉`` values (k = 0 … K−1; a 768×512 image with K = 7: 524,097 latents, 1.33 per pixel).
Every grid is read bilinearly at the pixel centres (``align_corners=False``, edges clamped), so the
feature of pixel ``p`` is ``z(p) = [bilerp(ŷ_0, p), …, bilerp(ŷ_{K−1}, p)]`` (K values). Coordinates
``(x, y) ∈ [-1, 1]²`` (inrkit's image convention, pixel centres at ``(2j + 1)/W − 1``) read the same
values through ``grid_sample``: the dense path (:meth:`LatentGrids.upsample`) and the coordinate path
(:meth:`LatentGrids.forward`) agree to float rounding at the pixel centres.

The parameters ``y_k`` are the *encoder-side* latents; the decoder sees ``ŷ = Q(G·y)`` with the encoder
gain ``G`` = :data:`LATENT_GAIN` (Cool-Chic's ``encoder_gain``). Adam moves a parameter by about its
learning rate per step whatever the gradient's scale, so the gain is a ``G``-fold learning rate on the
decoded latents alone: the codec's lr 2·10⁻² moves them 0.16 quantisation steps per step, as Cool-Chic's
gain 16 × lr 10⁻² does, while its networks train at 2·10⁻². Without a gain (0.02 steps per step) a
256² Kodak crop at λ = 0 stalls at 32 dB (rounded latents) instead of 39.6 dB after 600 steps.

What ``Q`` is while training is chosen by ``mode`` (C3 §3.2; Cool-Chic's ``softround`` quantiser):
``"noise"``, ``Q(v) = s_T(s_T(v) + σ·ε)`` with ``ε ~ N(0, 1)`` and the soft rounding of Agustsson & Theis
(2020) ``s_T(v) = ⌊v⌋ + ½·tanh(r/T)/tanh(1/(2T)) + ½``, ``r = v − ⌊v⌋ − ½`` (``temperature`` T and
``noise`` σ are attributes the training schedule anneals); ``"exact"``, ``Q(v) = round(v)`` (what the
decoder sees). Values are clamped to ``[−L, L]`` with ``L`` = :data:`MAX_LATENT` before rounding, the range
the coder supports.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.backends import cpu_softround
from inrkit.errors import ConfigError, Rule, check_section

MAX_LATENT = 127  # |ŷ| ≤ L: the coder's alphabet is −L … L
LATENT_GAIN = 8.0  # ŷ = Q(G·y): the encoder gain G (module docstring)
MAX_LEVELS = 12
MAX_SIDE = 1 << 15
QUANTISATION_MODES = ("noise", "exact")
LATENT_GRIDS_SCHEMA = {"n_levels": Rule("int", 1, MAX_LEVELS), "height": Rule("int", 1, MAX_SIDE),
                       "width": Rule("int", 1, MAX_SIDE)}


def grid_shapes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """``[(⌈H/2^k⌉, ⌈W/2^k⌉) for k in 0 … K−1]``."""
    return [(math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(n_levels)]


def soft_round(values: torch.Tensor, temperature: float) -> torch.Tensor:
    """``s_T(y) = ⌊y⌋ + ½·tanh((y − ⌊y⌋ − ½)/T)/tanh(1/(2T)) + ½`` (module docstring)."""
    floor = torch.floor(values)
    return floor + 0.5 * torch.tanh((values - floor - 0.5) / temperature) / math.tanh(0.5 / temperature) + 0.5


def quantise_latent(values: torch.Tensor, mode: str, generator: torch.Generator | None = None,
                    temperature: float = 0.3, noise: float = 0.25) -> torch.Tensor:
    """The decoder-side latents of the gain-scaled ``values`` as ``mode`` reads them (module docstring): soft
    rounding with noise, or exact rounding."""
    if mode == "noise":
        epsilon = torch.randn(values.shape, generator=generator, device=values.device, dtype=values.dtype)
        if cpu_softround.supports(values):  # one pass, the same numbers (inrkit.backends.cpu_softround)
            return cpu_softround.soft_round_noise(values, epsilon, MAX_LATENT, temperature, noise)
        values = values.clamp(-MAX_LATENT, MAX_LATENT)
        return soft_round(soft_round(values, temperature) + noise * epsilon, temperature)
    return torch.round(values.clamp(-MAX_LATENT, MAX_LATENT))


def bilinear_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The taps of ``F.interpolate(..., mode="bilinear", align_corners=False)`` along an axis of ``n_in`` → ``n_out``
    values: output ``j`` is ``w0[j]·v[i0[j]] + w1[j]·v[i1[j]]`` with source ``s = max((j + ½)·n_in/n_out − ½, 0)``,
    ``i0 = ⌊s⌋``, ``i1 = min(i0 + 1, n_in − 1)``, ``w1 = s − i0``, ``w0 = 1 − w1``."""
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0.0)
    first = source.floor().long().clamp_max(n_in - 1)
    second = (first + 1).clamp_max(n_in - 1)
    weight = (source - first).float()
    return first, second, 1.0 - weight, weight


class _UpsampleBilinear(torch.autograd.Function):
    """``(h, w)`` → ``(H, W)`` bilinear upsampling (``F.interpolate``) whose backward is the separable adjoint:
    ``∂L/∂v = Aᵀ·G·B`` for the two-tap matrices ``A`` (rows) and ``B`` (columns): ``index_add_`` along the height
    (whole rows, vectorised) on the full-size gradient, then along the width on the ``h``-row result. On a CPU
    it is 9× faster than ``F.interpolate``'s own backward (21 ms → 2.3 ms per step for the six coarse grids of a
    768×512 image, one core; the width first took 8 ms) and equal to it up to the order of float sums."""

    @staticmethod
    def forward(ctx, grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
        ctx.shape = grid.shape
        ctx.size = (height, width)
        return F.interpolate(grid[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (h, w), (height, width) = ctx.shape, ctx.size
        first, second, w0, w1 = (t.to(grad.device) for t in bilinear_taps(h, height))
        rows = grad.new_zeros(h, width).index_add_(0, first, grad * w0[:, None]).index_add_(0, second, grad * w1[:, None])
        first, second, w0, w1 = (t.to(grad.device) for t in bilinear_taps(w, width))
        return grad.new_zeros(h, w).index_add_(1, first, rows * w0).index_add_(1, second, rows * w1), None, None


def upsample_bilinear(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(h, w)`` grid → ``(height, width)``, read bilinearly at the pixel centres (``align_corners=False``); on a
    CPU with the fast backward of :class:`_UpsampleBilinear` (CUDA's ``index_add_`` is not deterministic)."""
    if grid.device.type == "cpu":
        return _UpsampleBilinear.apply(grid, height, width)
    return F.interpolate(grid[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


class LatentGrids(nn.Module):
    """``K`` encoder-side latent grids ``y_k`` of shape ``(⌈H/2^k⌉, ⌈W/2^k⌉)`` (parameters ``grids.k``),
    zero-initialised; the decoder-side latents are ``Q(G·y_k)``.

    Config: ``{"otype": "LatentGrids", "height": H, "width": W, "n_levels": K}``. Output: K features per pixel.
    """

    input_domain = "signed"

    def __init__(self, n_input_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("encoding", config, LATENT_GRIDS_SCHEMA)
        if n_input_dims != 2:
            raise ConfigError(f"LatentGrids encodes 2-D image coordinates, the field has {n_input_dims} inputs")
        for key in ("height", "width"):
            if key not in config:
                raise ConfigError(f"encoding 'LatentGrids' needs the key {key!r}")
        self.height, self.width = int(config["height"]), int(config["width"])
        self.n_levels = int(config.get("n_levels", 7))
        self.n_output_dims = self.n_levels
        self.shapes = grid_shapes(self.height, self.width, self.n_levels)
        self.grids = nn.ParameterList([nn.Parameter(torch.zeros(h, w)) for h, w in self.shapes])
        self.mode = "exact"  # how forward/upsample read the grids (see quantise_latent)
        self.generator: torch.Generator | None = None  # the noise of mode "noise"
        self.temperature, self.noise = 0.3, 0.25  # mode "noise": soft-rounding temperature and noise σ

    def optimizer_group(self) -> dict[str, Any]:
        """The grids' optimiser group: Adam's moments (β = (0.9, 0.999)), no weight decay and, under SOAP, no
        preconditioning (Cool-Chic 5's setting for its latents)."""
        return {"params": list(self.grids), "betas": (0.9, 0.999), "weight_decay": 0.0, "precondition": False}

    @property
    def n_latents(self) -> int:
        """Total number of latent values ``Σ_k ⌈H/2^k⌉·⌈W/2^k⌉``."""
        return sum(h * w for h, w in self.shapes)

    def quantised(self) -> list[torch.Tensor]:
        """The decoder-side grids ``Q(G·y_k)`` as the current ``mode`` reads them: K tensors ``(h_k, w_k)``."""
        return [quantise_latent(LATENT_GAIN * grid, self.mode, self.generator, self.temperature, self.noise)
                for grid in self.grids]

    @torch.no_grad()
    def integers(self) -> list[torch.Tensor]:
        """The decoded latents ``round(clamp(G·y_k, ±L))`` (no gradient): K tensors ``(h_k, w_k)``."""
        return [quantise_latent(LATENT_GAIN * grid, "exact") for grid in self.grids]

    @torch.no_grad()
    def load_integers(self, grids: list[torch.Tensor]) -> None:
        """Set the parameters so that :meth:`integers` gives ``grids`` (``y = ŷ/G``, exact for a power-of-two G)."""
        for parameter, grid in zip(self.grids, grids, strict=True):
            parameter.copy_(grid / LATENT_GAIN)

    def upsample(self, grids: list[torch.Tensor], height: int | None = None, width: int | None = None) -> torch.Tensor:
        """``(1, K, height, width)``: every grid read bilinearly at the centres of a ``height × width`` pixel grid
        (default: the image's own size)."""
        size = (height or self.height, width or self.width)
        planes = [grid if grid.shape == size else upsample_bilinear(grid, *size) for grid in grids]
        return torch.stack(planes)[None]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` coordinates ``(x, y)`` in [-1, 1] → ``(N, K)`` bilinear latent features (edges clamped)."""
        grid = coords.to(self.grids[0].dtype)[None, :, None, :]  # (1, N, 1, 2), grid_sample's (x, y) order
        planes = [F.grid_sample(q[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
                  for q in self.quantised()]
        return torch.cat(planes, dim=1)[0, :, :, 0].T
