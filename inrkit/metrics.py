"""Quality metrics on normalised signals (values in [0, 1]).

PSNR follows REFERENCE.md §8: clamp both inputs to [0, 1], take the MSE in float64 (no epsilon, no
cap), ``PSNR = −10·log10(MSE)``; for a set of images report the mean of per-image PSNRs.
"""

from __future__ import annotations

import math

import torch

ROWS_BYTES = 1 << 24  # metrics walk large images in bands of rows of about this many float32 bytes


def _rows_per_band(shape: torch.Size) -> int:
    return max(1, ROWS_BYTES // (4 * max(1, shape[1:].numel())))


def mse(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of the clamped inputs, in float64 (summed in bands of rows: bounded memory)."""
    rows = _rows_per_band(prediction.shape)
    total = 0.0
    for start in range(0, max(1, prediction.shape[0]), rows):
        diff = prediction[start:start + rows].clamp(0, 1).double() - target[start:start + rows].clamp(0, 1).double()
        total += float(diff.square().sum())
    return total / max(1, prediction.numel())


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """``−10·log10(MSE)`` on values clamped to [0, 1]; ``inf`` for a perfect match."""
    return psnr_from_mse(mse(prediction, target))


def psnr_from_mse(error: float) -> float:
    """PSNR of a known MSE on [0, 1] data."""
    return math.inf if error <= 0.0 else -10.0 * math.log10(error)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Mean SSIM of two ``(H, W, C)`` images in [0, 1] (Gaussian window 11, σ 1.5, k 0.01/0.03; kornia).

    Channels are treated independently and averaged, as in the FINER and SL²A tables.
    Large images are processed in bands of rows with a halo of half a window, which gives exactly the
    SSIM map of the whole image (rows near a band's cut see their true neighbours) in bounded memory.
    """
    import kornia.metrics

    height, width = prediction.shape[:2]
    window = min(11, (min(height, width) // 2) * 2 + 1)  # odd and not larger than the image
    halo = window // 2
    rows = max(_rows_per_band(prediction.shape) // 8, window)  # kornia keeps ~8 maps of a band alive
    total = 0.0
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        low, high = max(0, start - halo), min(height, stop + halo)
        if high - low < window:  # a thin last band: widen it to a full window upwards
            low = max(0, high - window)
        a = prediction[low:high].clamp(0, 1).float().permute(2, 0, 1)[None]
        b = target[low:high].clamp(0, 1).float().permute(2, 0, 1)[None]
        ssim_map = kornia.metrics.ssim(a, b, window_size=window)
        total += float(ssim_map[:, :, start - low:stop - low].double().sum())
    return total / (height * width * prediction.shape[2])
