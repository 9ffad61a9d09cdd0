"""Uniform symmetric (mid-tread) quantisation of weight tensors, with the step chosen to minimise error.

For a tensor ``w`` and a bit width ``b`` (2–16) the integer codes and the reconstruction are::

    q_max = 2^(b−1) − 1                        # b = 2: codes {−1, 0, 1};  b = 8: −127 … 127
    q     = clamp(round(w / Δ), −q_max, q_max) # int32, same shape as w
    ŵ     = Δ · q                              # float32; Δ is one step per tensor or one per row

The step ``Δ = c / q_max`` comes from a search over clipping values ``c = f·max|w|`` with
``f ∈ {1/64, 2/64, …, 1}``: the ``c`` with the smallest squared error ``Σ (w − ŵ)²`` wins (per tensor,
or per output channel = row of dimension 0 of a matrix for ``scheme="channel"``; vectors always
get one step). Complex tensors (WIRE) are quantised as their real view ``(..., 2)``: real and
imaginary parts share the step of their row.

Example:
    >>> w = torch.randn(64, 32)
    >>> step = best_step(w, bits=8, scheme="channel")     # (64,) float32
    >>> q = quantise(w, step, bits=8)                     # (64, 32) int32 in [-127, 127]
    >>> error = (dequantise(q, step) - w).abs().max()     # at most step/2 inside the clipping range
"""

from __future__ import annotations

import torch

MIN_BITS, MAX_BITS = 2, 16
SCHEMES = ("tensor", "channel")
_N_CLIP_CANDIDATES = 64
_SEARCH_SAMPLES = 1 << 18  # the step search looks at most at this many values (evenly strided) per tensor


def max_code(bits: int) -> int:
    """Largest code magnitude ``2^(bits−1) − 1`` of a ``bits``-bit symmetric quantiser."""
    return (1 << (bits - 1)) - 1


def real_view(tensor: torch.Tensor) -> torch.Tensor:
    """A float view of ``tensor``: complex ``(...)`` becomes ``(..., 2)`` (real, imaginary)."""
    return torch.view_as_real(tensor) if tensor.is_complex() else tensor


def channel_count(shape: tuple[int, ...] | list[int], scheme: str) -> int:
    """How many steps a tensor of ``shape`` (its own shape, not the real view) has under ``scheme``."""
    return int(shape[0]) if scheme == "channel" and len(shape) >= 2 else 1


def codes(values: torch.Tensor, step: torch.Tensor, bits: int) -> torch.Tensor:
    """``clamp(round(values / Δ), ±q_max)`` as int32; ``step`` broadcasts over rows (shape ``(rows,)``)."""
    rows = values.reshape(step.numel(), -1).float()
    q = torch.clamp(torch.round(rows / step[:, None]), -max_code(bits), max_code(bits))
    return q.to(torch.int32).reshape(values.shape)


def dequantise(q: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``Δ · q`` in float32, the same shape as ``q`` (the real view for complex tensors)."""
    return (q.reshape(step.numel(), -1).float() * step.float()[:, None]).reshape(q.shape)


def best_step(tensor: torch.Tensor, bits: int, scheme: str = "tensor") -> torch.Tensor:
    """The MSE-minimising step per row, float32 of shape ``(rows,)`` (see the module docstring).

    ``tensor`` may be complex (its real view is searched). All-zero rows get the step ``1/q_max``.
    Large tensors (hash tables) are searched on an evenly strided subset of at most 2^18 values;
    the peak ``max|w|`` always comes from the whole row.
    """
    rows = real_view(tensor.detach()).float().reshape(channel_count(tuple(tensor.shape), scheme), -1)
    peak = rows.abs().amax(dim=1)
    stride = max(1, rows.numel() // _SEARCH_SAMPLES)
    rows = rows[:, ::stride]
    peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    q_max = max_code(bits)
    best_error = torch.full_like(peak, float("inf"))
    best = peak / q_max
    for k in range(1, _N_CLIP_CANDIDATES + 1):
        step = (peak * (k / _N_CLIP_CANDIDATES) / q_max).float()
        q = torch.clamp(torch.round(rows / step[:, None]), -q_max, q_max)
        error = (q * step[:, None] - rows).square().sum(dim=1)
        better = error < best_error
        best = torch.where(better, step, best)
        best_error = torch.where(better, error, best_error)
    return best.float()


def quantise(tensor: torch.Tensor, step: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes of ``tensor`` on the grid ``step``: int32 of the shape of :func:`real_view` of ``tensor``."""
    return codes(real_view(tensor.detach()), step, bits)


def fake_quantise(tensor: torch.Tensor, step: torch.Tensor, bits: int) -> torch.Tensor:
    """Straight-through quantisation: the forward value is ``Δ·q``, the gradient is the identity.

    ``y = w + (Δ·q(w) − w).detach()``; complex tensors go through their real view.
    """
    values = real_view(tensor)
    quantised = dequantise(codes(values.detach(), step, bits), step).to(values.dtype)
    out = values + (quantised - values).detach()
    return torch.view_as_complex(out) if tensor.is_complex() else out
