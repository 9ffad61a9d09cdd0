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


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003, five scales


def ms_ssim(prediction: torch.Tensor, target: torch.Tensor, weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM of two ``(H, W, C)`` images in [0, 1] (Wang et al. 2003), as image codecs report it.

    At scale ``j`` (the image average-pooled 2×2 ``j`` times) the contrast-structure term
    ``cs_j = mean((2σ_xy + C2) / (σ_x² + σ_y² + C2))`` is taken over the positions where an 11-tap Gaussian
    window (σ 1.5) fits inside the image (no padding), ``C2 = 0.03²``; at the last scale the luminance term
    ``(2μ_xμ_y + C1) / (μ_x² + μ_y² + C1)``, ``C1 = 0.01²``, multiplies into the map first::

        MS-SSIM = ∏_{j<M} max(cs_j, 0)^{w_j} · max(ssim_M, 0)^{w_M}

    per channel in float64, then averaged over the channels. Pooling drops an odd last row or column.
    One scale with weight 1 is plain SSIM with a valid window. Needs ``min(H, W) > 10·2^(M−1)`` (161 px for
    five scales); convert with :func:`ms_ssim_db` for a dB scale.
    """
    import torch.nn.functional as F

    reach = (11 - 1) * 2 ** (len(weights) - 1)
    if min(prediction.shape[:2]) <= reach:
        raise ValueError(f"MS-SSIM over {len(weights)} scales needs images larger than {reach} px on each side, "
                         f"got {tuple(prediction.shape[:2])}")
    taps = torch.exp(-(torch.arange(11, dtype=torch.float64) - 5) ** 2 / (2 * 1.5 ** 2))
    taps = (taps / taps.sum()).tolist()
    channels = prediction.shape[2]

    def blur(x: torch.Tensor) -> torch.Tensor:  # (1, C, H, W) → (1, C, H−10, W−10)
        """The separable window as 11 shifted sums per axis (5× faster than a float64 convolution on a CPU)."""
        height, width = x.shape[2] - 10, x.shape[3] - 10
        rows = taps[0] * x[:, :, :height]
        for shift in range(1, 11):
            rows.add_(x[:, :, shift:shift + height], alpha=taps[shift])
        out = taps[0] * rows[:, :, :, :width]
        for shift in range(1, 11):
            out.add_(rows[:, :, :, shift:shift + width], alpha=taps[shift])
        return out

    a = prediction.clamp(0, 1).double().permute(2, 0, 1)[None]
    b = target.clamp(0, 1).double().permute(2, 0, 1)[None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    result = torch.ones(channels, dtype=torch.float64)
    for scale, weight in enumerate(weights):
        if scale:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
        covariance = blur(a * b) - mu_a * mu_b
        term = (2 * covariance + c2) / (var_a + var_b + c2)
        if scale == len(weights) - 1:
            term = term * (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
        result *= term.mean(dim=(0, 2, 3)).clamp_min(0) ** weight
    return float(result.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, ``−10·log10(1 − MS-SSIM)`` (``inf`` for a perfect match)."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)
