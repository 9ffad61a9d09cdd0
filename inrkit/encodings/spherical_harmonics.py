"""Real spherical harmonics of a direction, tiny-cuda-nn's ``SphericalHarmonics`` encoding.

Input ``(N, 3)`` in [0,1]³ is a direction stored as ``(d + 1)/2`` (tcnn's convention); the encoding
maps it back to ``d = 2x − 1`` and returns the ``degree²`` real spherical harmonics of bands
``l = 0 … degree−1``, ``m = −l … l`` (Condon–Shortley phase, tcnn's order and signs):

    Y_l^m(d) = (−1)^m √2 K_l^|m| P̃_l^|m|(z) · Im((x + iy)^|m|)   m < 0
    Y_l^0(d) = K_l^0 P_l(z)
    Y_l^m(d) = (−1)^m √2 K_l^m  P̃_l^m(z)  · Re((x + iy)^m)      m > 0

with ``K_l^m = √((2l+1)/(4π) · (l−m)!/(l+m)!)`` and ``P̃_l^m`` the associated Legendre polynomial
without its ``(1 − z²)^{m/2}`` factor (which ``(x + iy)^m`` carries on the unit sphere). The first
bands are ``0.2821``, ``−0.4886 y, 0.4886 z, −0.4886 x``, ``1.0925 xy, −1.0925 yz, 0.9462 z² − 0.3154, …``.
The polynomials are evaluated as written, so non-unit inputs give the polynomial's value.

Example:
    >>> sh = SphericalHarmonics(3, {"otype": "SphericalHarmonics", "degree": 4})
    >>> sh(torch.tensor([[0.5, 0.5, 1.0]])).shape   # direction +z
    torch.Size([1, 16])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from inrkit.errors import ConfigError


def _normalisation(l_band: int, m: int) -> float:
    return math.sqrt((2 * l_band + 1) / (4 * math.pi) * math.factorial(l_band - m) / math.factorial(l_band + m))


def _legendre_without_sine(degree: int, z: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """``P̃_l^m(z)`` for ``0 ≤ m ≤ l < degree`` by the standard recurrences (no Condon–Shortley phase)."""
    p: dict[tuple[int, int], torch.Tensor] = {}
    for m in range(degree):
        p[(m, m)] = torch.full_like(z, float(math.prod(range(1, 2 * m, 2))))  # (2m − 1)!!
        if m + 1 < degree:
            p[(m + 1, m)] = (2 * m + 1) * z * p[(m, m)]
        for l_band in range(m + 2, degree):
            p[(l_band, m)] = ((2 * l_band - 1) * z * p[(l_band - 1, m)] - (l_band + m - 1) * p[(l_band - 2, m)]) / (l_band - m)
    return p


def spherical_harmonics(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH ``(N, degree²)`` of unit directions ``(N, 3)`` in [−1,1]³ (formula in the module docstring)."""
    x, y, z = directions.unbind(dim=-1)
    legendre = _legendre_without_sine(degree, z)
    real, imag = [torch.ones_like(x)], [torch.zeros_like(x)]  # Re/Im of (x + iy)^m
    for _ in range(1, degree):
        real.append(real[-1] * x - imag[-1] * y)
        imag.append(real[-2] * y + imag[-1] * x)
    bands = []
    for l_band in range(degree):
        for m in range(-l_band, l_band + 1):
            k = abs(m)
            if m == 0:
                bands.append(_normalisation(l_band, 0) * legendre[(l_band, 0)])
                continue
            factor = (-1) ** k * math.sqrt(2.0) * _normalisation(l_band, k)
            bands.append(factor * legendre[(l_band, k)] * (imag[k] if m < 0 else real[k]))
    return torch.stack(bands, dim=-1)


class SphericalHarmonics(nn.Module):
    """tcnn's ``SphericalHarmonics``: ``(N, 3)`` directions stored in [0,1]³ → ``(N, degree²)``."""

    input_domain = "unit"

    def __init__(self, n_input_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        degree = config.get("degree", 4)
        if not isinstance(degree, int) or not 1 <= degree <= 8:
            raise ConfigError(f"encoding key 'degree' must be an integer in 1..8, got {degree!r}")
        if n_input_dims != 3:
            raise ConfigError(f"SphericalHarmonics encodes 3-D directions (n_input_dims 3), got {n_input_dims}")
        self.degree = degree
        self.n_output_dims = degree * degree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(2.0 * x.float() - 1.0, self.degree)
