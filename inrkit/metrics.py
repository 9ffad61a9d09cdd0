"""Quality metrics on normalised signals (values in [0, 1]).

PSNR follows REFERENCE.md §8: clamp both inputs to [0, 1], take the MSE in float64 (no epsilon, no
cap), ``PSNR = −10·log10(MSE)``; for a set of images report the mean of per-image PSNRs.
"""

from __future__ import annotations

import math

import torch


def mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of the clamped inputs, in float64."""
    diff = prediction.clamp(0, 1).double() - target.clamp(0, 1).double()
    return float(diff.square().mean())


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``−10·log10(MSE)`` on values clamped to [0, 1]; ``inf`` for a perfect match."""
    return psnr_from_mse(mse(prediction, target))


def psnr_from_mse(error: float) -> float:
    """PSNR of a known MSE on [0, 1] data."""
    return math.inf if error <= 0.0 else -10.0 * math.log10(error)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM of two ``(H, W, C)`` images in [0, 1] (Gaussian window 11, σ 1.5, k 0.01/0.03; kornia).

    Channels are treated independently and averaged, as in the FINER and SL²A tables.
    """
    import kornia.metrics

    a = prediction.clamp(0, 1).float().permute(2, 0, 1)[None]
    b = target.clamp(0, 1).float().permute(2, 0, 1)[None]
    window = min(11, (min(a.shape[-2:]) // 2) * 2 + 1)  # odd and not larger than the image
    return float(kornia.metrics.ssim(a, b, window_size=window).mean())
