"""Volume rendering of packed ray samples: optical depth, transmittance, weights, accumulation.

Samples of many rays are *packed*: ``ray_indices (S,)`` (sorted, non-decreasing) says which ray each
sample belongs to, and ``t_starts``, ``t_ends (S,)`` give its interval along that ray. Sample ``i``
of a ray with density ``σ_i`` over ``δ_i = t_end − t_start`` has

* optical depth ``τ_i = σ_i δ_i``;
* opacity ``α_i = 1 − exp(−τ_i)``;
* transmittance up to it ``T_i = exp(−Σ_{j<i} τ_j) = Π_{j<i} (1 − α_j)``;
* weight ``w_i = T_i α_i``;

and the ray's colour, depth and opacity are ``C = Σ w_i c_i + (1 − Σ w_i)·c_bg``,
``D = Σ w_i t_i`` and ``A = Σ w_i`` (``t_i`` the interval midpoint). Sums over rays use ``index_add``.

Example (one ray, two samples):
    >>> sigmas = torch.tensor([1.0, 2.0]); deltas = torch.tensor([0.5, 0.5]); rays = torch.tensor([0, 0])
    >>> weights, _ = render_weights(sigmas, deltas, rays)
    >>> round(float(weights.sum()), 4)   # 1 − exp(−(0.5 + 1.0))
    0.7769
"""

from __future__ import annotations

import torch


def segment_starts(ray_indices: torch.Tensor) -> torch.Tensor:
    """For each sample, the packed index of the first sample of its ray ``(S,)``."""
    count = ray_indices.numel()
    if count == 0:
        return ray_indices.new_zeros(0)
    is_first = torch.ones(count, dtype=torch.bool, device=ray_indices.device)
    is_first[1:] = ray_indices[1:] != ray_indices[:-1]
    first_positions = torch.nonzero(is_first).squeeze(1)
    lengths = torch.diff(first_positions, append=first_positions.new_tensor([count]))
    return torch.repeat_interleave(first_positions, lengths)


def exclusive_segment_sum(values: torch.Tensor, ray_indices: torch.Tensor) -> torch.Tensor:
    """``out_i = Σ_{j<i, same ray} values_j`` (float64 accumulation, returned in the input dtype)."""
    inclusive = torch.cumsum(values.double(), dim=0)
    exclusive = inclusive - values.double()
    return (exclusive - exclusive[segment_starts(ray_indices)]).to(values.dtype)


def render_weights(sigmas: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor,
                   min_transmittance: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``w_i = T_i (1 − exp(−σ_i δ_i))`` and transmittances ``T_i = exp(−Σ_{j<i} σ_j δ_j)``, both ``(S,)``.

    Samples reached with ``T_i < min_transmittance`` get weight 0 (early ray termination).
    """
    optical_depth = sigmas * deltas
    transmittance = torch.exp(-exclusive_segment_sum(optical_depth, ray_indices))
    alphas = 1.0 - torch.exp(-optical_depth)
    weights = transmittance * alphas
    if min_transmittance > 0.0:
        weights = weights * (transmittance >= min_transmittance)
    return weights, transmittance


def accumulate(values: torch.Tensor, weights: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """``out[r] = Σ_{i in ray r} w_i · values_i``: ``values (S,)`` → ``(n_rays,)``, ``(S, C)`` → ``(n_rays, C)``."""
    weighted = weights * values if values.dim() == 1 else weights[:, None] * values
    out = torch.zeros((n_rays, *values.shape[1:]), dtype=weighted.dtype, device=weighted.device)
    return out.index_add(0, ray_indices, weighted)


def composite_rays(rgbs: torch.Tensor, sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                   ray_indices: torch.Tensor, n_rays: int, background: torch.Tensor,
                   min_transmittance: float = 0.0) -> dict[str, torch.Tensor]:
    """Colour ``(n_rays, 3)`` over ``background`` (``(3,)`` or ``(n_rays, 3)``), depth and opacity ``(n_rays,)``.

    ``depth = Σ w_i t_i`` with ``t_i = (t_start + t_end)/2`` is the expected termination distance
    (0 where the ray sees nothing); ``opacity = Σ w_i``.
    """
    weights, _ = render_weights(sigmas, t_ends - t_starts, ray_indices, min_transmittance)
    opacity = accumulate(weights.new_ones(weights.shape), weights, ray_indices, n_rays)
    colour = accumulate(rgbs, weights, ray_indices, n_rays)
    depth = accumulate(0.5 * (t_starts + t_ends), weights, ray_indices, n_rays)
    colour = colour + (1.0 - opacity)[:, None] * background
    return {"rgb": colour, "depth": depth, "opacity": opacity, "weights": weights}
