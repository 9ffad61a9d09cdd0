"""Layers of the coordinate-MLP backbones: linear map + activation, with each paper's initialisation.

Shapes: every layer maps ``(N, in_features) -> (N, out_features)``; the WIRE layers are complex after
the first one.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from inrkit.fields import activations
from inrkit.fields.resfields import ResFieldLinear


def siren_uniform_(weight: torch.Tensor, fan_in: int, omega_0: float, is_first: bool) -> None:
    """SIREN initialisation (official ``modules.py``).

    First layer ``W ~ U(±1/n)``; later layers ``W ~ U(±√(6/n)/ω0)`` with ``n = fan_in``, so the
    effective weights ``ω0·W`` are ``U(±√(6/n))``. Biases keep PyTorch's default ``U(±1/√n)``.
    """
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / omega_0
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class PeriodicLayer(nn.Module):
    """``y = φ(W x + b)`` for the SIREN family, with SIREN initialisation.

    ``activation``:
      * ``"sine"``  — SIREN: ``sin(ω0·(Wx+b))`` (``omega_on_bias=True``, the official code) or
        ``sin(ω0·Wx + b)`` (the paper);
      * ``"spder"`` — SPDER: ``sin(z)·δ(z)`` with ``z = ω0·(Wx+b)`` and ``δ`` = ``√|z|`` or ``arctan``;
      * ``"finer"`` — FINER: ``sin(ω0·(|z|+1)·z)`` with ``z = Wx+b``, ``|z|+1`` detached.

    ``first_bias_scale`` (FINER): when set, the first layer's bias is drawn from ``U(±k)``.
    ``resfield`` (``{"n_frames", "rank", "mode", "fusion"}``, sine layers only: ``ResFieldSiren``): the linear
    map becomes a :class:`~inrkit.fields.resfields.ResFieldLinear` with weights ``W(t)``; ``forward`` then needs ``time``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        omega_0: float,
        is_first: bool,
        activation: str = "sine",
        omega_on_bias: bool = True,
        damping: str = "sqrt",
        first_bias_scale: float | None = None,
        resfield: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.omega_0 = float(omega_0)
        self.activation = activation
        self.omega_on_bias = omega_on_bias
        self.damping = damping
        self.is_resfield = resfield is not None
        if resfield is not None and activation != "sine":
            raise ValueError(f"ResFields layers are sine layers (ResFieldSiren), got activation {activation!r}")
        if resfield is not None:
            self.linear: nn.Linear = ResFieldLinear(in_features, out_features, **resfield)
        else:
            self.linear = nn.Linear(in_features, out_features)
        siren_uniform_(self.linear.weight, in_features, self.omega_0, is_first)
        if is_first and first_bias_scale is not None:
            with torch.no_grad():
                self.linear.bias.uniform_(-first_bias_scale, first_bias_scale)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_resfield:
            if time is None:
                raise ValueError("a ResFields layer needs the time of each sample")
            z = self.linear(x, time, scale=self.omega_0)  # ω0·(W(t)x + b)
            if not self.omega_on_bias:
                z = z + (1.0 - self.omega_0) * self.linear.bias  # the paper's ω0·W(t)x + b
            return activations.sine(z)
        if self.activation == "finer":
            return activations.finer(self.linear(x), self.omega_0)
        # ω0 scales the (small) weight matrix rather than the (N, out) activations: the same
        # function and gradients as ω0·(Wx+b), without two extra passes over the activations.
        bias = self.omega_0 * self.linear.bias if self.omega_on_bias else self.linear.bias
        z = nn.functional.linear(x, self.omega_0 * self.linear.weight, bias)
        if self.activation == "spder":
            return activations.spder(z, self.damping)
        return activations.sine(z)


class GaussLayer(nn.Module):
    """``y = exp(-(s·(Wx+b))²)`` with PyTorch's default linear initialisation."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activations.gauss(self.linear(x), self.scale)


class GaborLayer(nn.Module):
    """WIRE complex Gabor layer: ``y = exp(j·ω0·z − |s0·z|²)`` with ``z = Wx+b``.

    The first layer has real weights (real input, complex output); later layers are complex.
    ω0 and s0 are fixed (buffers, not trained), as in the official code.
    """

    def __init__(self, in_features: int, out_features: int, omega_0: float, scale: float, is_first: bool) -> None:
        super().__init__()
        self.omega_0 = float(omega_0)
        self.scale = float(scale)
        dtype = torch.float32 if is_first else torch.complex64
        self.linear = nn.Linear(in_features, out_features, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activations.gabor(self.linear(x), self.omega_0, self.scale)
