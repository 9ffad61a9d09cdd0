"""Activation functions of the coordinate-MLP backbones.

Each takes the pre-activation ``z`` (any shape) and returns a tensor of the same shape.
"""

from __future__ import annotations

import torch

SPDER_DAMPINGS = ("sqrt", "arctan")

# Smallest |z| fed to SPDER's square root. A normal float32 (min normal ~1.2e-38), so it survives
# flush-to-zero on the CPU; the official 1e-43 is a denormal that FTZ turns into 0 (REFERENCE §CPU).
_SPDER_EPS = 1e-30


def sine(z: torch.Tensor) -> torch.Tensor:
    """SIREN: ``sin(z)``; ``z`` already includes ω0."""
    return torch.sin(z)


def spder(z: torch.Tensor, damping: str = "sqrt") -> torch.Tensor:
    """SPDER: ``sin(z)·δ(z)`` with ``δ = √|z|`` (images, video) or ``δ = arctan z`` (audio).

    The square root is taken of ``max(|z|, 1e-30)``: the gradient stays finite at ``z = 0``
    (there ``sin(z) = 0`` and the clamp cuts the ``1/√|z|`` branch).
    """
    if damping == "sqrt":
        return torch.sin(z) * torch.sqrt(torch.clamp(z.abs(), min=_SPDER_EPS))
    if damping == "arctan":
        return torch.sin(z) * torch.arctan(z)
    raise ValueError(f"unknown SPDER damping {damping!r}; choose one of {', '.join(SPDER_DAMPINGS)}")


def finer(z: torch.Tensor, omega_0: float) -> torch.Tensor:
    """FINER: ``sin(ω0·(|z|+1)·z)``; the factor ``|z|+1`` is a constant for backprop (official code)."""
    scale = (z.abs() + 1.0).detach()
    return torch.sin(omega_0 * scale * z)


def gauss(z: torch.Tensor, scale: float) -> torch.Tensor:
    """Gaussian (Ramasinghe & Lucey): ``exp(-(s·z)²)``."""
    return torch.exp(-((scale * z) ** 2))


def gabor(z: torch.Tensor, omega_0: float, scale: float) -> torch.Tensor:
    """WIRE complex Gabor wavelet: ``exp(j·ω0·z − |s0·z|²)`` (``z`` real or complex)."""
    return torch.exp(1j * omega_0 * z - (scale * z).abs().square())
