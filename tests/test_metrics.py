"""PSNR, MSE and SSIM on [0, 1] images."""

from __future__ import annotations

import math

import pytest
import torch

from inrkit import metrics


def test_identical_images():
    image = torch.rand(16, 16, 3)
    assert metrics.psnr(image, image.clone()) == math.inf
    assert metrics.mse(image, image) == 0.0
    assert metrics.ssim(image, image) == pytest.approx(1.0, abs=1e-5)


def test_known_mse_gives_known_psnr():
    target = torch.full((8, 8, 3), 0.5)
    assert metrics.mse(target + 0.1, target) == pytest.approx(0.01)
    assert metrics.psnr(target + 0.1, target) == pytest.approx(20.0)
    assert metrics.psnr(target - 0.01, target) == pytest.approx(40.0)
    assert metrics.psnr_from_mse(1e-3) == pytest.approx(30.0)
    assert metrics.psnr_from_mse(0.0) == math.inf


def test_inputs_are_clamped_to_unit_range():
    target = torch.tensor([[[0.0, 1.0]]])
    assert metrics.psnr(torch.tensor([[[-3.0, 7.0]]]), target) == math.inf  # both clamp onto the target
    assert metrics.mse(torch.tensor([[[2.0, 2.0]]]), torch.zeros(1, 1, 2)) == pytest.approx(1.0)


def test_mse_is_float64_and_mean_over_everything():
    prediction = torch.zeros(4, 4, 1)
    target = torch.zeros(4, 4, 1)
    target[0, 0, 0] = 1.0
    assert metrics.mse(prediction, target) == pytest.approx(1 / 16, rel=1e-12)


def test_ssim_drops_with_noise():
    torch.manual_seed(0)
    image = torch.rand(32, 32, 3)
    noisy = (image + 0.2 * torch.randn_like(image)).clamp(0, 1)
    assert metrics.ssim(noisy, image) < 0.9
    assert metrics.ssim(noisy, image) < metrics.ssim((image + 0.02).clamp(0, 1), image)


def test_banded_ssim_and_mse_equal_the_whole_image_computation(monkeypatch):
    import kornia

    from inrkit import metrics

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(300, 40, 3, generator=generator)
    b = (a + 0.1 * torch.randn(300, 40, 3, generator=generator)).clamp(0, 1)
    whole = float(kornia.metrics.ssim(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None], window_size=11).mean())
    whole_mse = float((a.double() - b.double()).square().mean())
    monkeypatch.setattr(metrics, "ROWS_BYTES", 4 * 40 * 3 * 8 * 12)  # bands of 12 rows (+ a 5-row halo each side)
    assert metrics.ssim(a, b) == pytest.approx(whole, abs=1e-6)
    assert metrics.mse(a, b) == pytest.approx(whole_mse, rel=1e-12)


@pytest.mark.parametrize("noise", [0.01, 0.05, 0.2])
def test_ssim_matches_scikit_image(noise):
    """Pinned against scikit-image on the same pair. The two differ only at the borders (kornia reflect-pads
    and averages every pixel; scikit-image averages the pixels at least 5 from an edge), so the pair is made
    equal within 10 px of the edges: there our SSIM map is exactly 1, and our mean is scikit-image's mean over
    the interior weighted with ones at the border. Measured agreement: 1.3e-6 (float32); tolerance 1e-5,
    while scikit-image's sample covariance alone would move the value by 2.7e-5 to 1.7e-4."""
    import numpy as np
    from skimage.metrics import structural_similarity

    height, width, edge = 64, 80, 10
    y, x = np.mgrid[0:height, 0:width] / 10.0
    target = (0.5 + 0.4 * np.sin(np.stack([x + y, 2 * x - y, x * y / 3], -1))).astype(np.float32)
    prediction = target.copy()
    inner = prediction[edge:-edge, edge:-edge]
    inner[:] = np.clip(inner + np.random.default_rng(0).normal(0, noise, inner.shape), 0, 1)
    reference = structural_similarity(prediction, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=1.0, channel_axis=-1)
    cropped = (height - 10) * (width - 10)  # the pixels scikit-image averages
    expected = (height * width - cropped + float(reference) * cropped) / (height * width)
    assert metrics.ssim(torch.from_numpy(prediction), torch.from_numpy(target)) == pytest.approx(expected, abs=1e-5)


def _textured(height: int, width: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height) / 9.0, torch.arange(width) / 9.0, indexing="ij")
    return 0.5 + 0.4 * torch.sin(torch.stack([x + y, 2 * x - y, x * y / 7], -1))


def test_one_scale_ms_ssim_is_scikit_image_ssim():
    """With one scale of weight 1, MS-SSIM is SSIM over the positions where the window fits: scikit-image's
    Gaussian SSIM (it filters with the same 11 taps and averages away 5 px from each edge). Measured: 1e-15."""
    from skimage.metrics import structural_similarity

    target = _textured(48, 64)
    prediction = (target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    reference = structural_similarity(prediction.double().numpy(), target.double().numpy(), gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    assert metrics.ms_ssim(prediction, target, weights=(1.0,)) == pytest.approx(float(reference), abs=1e-9)


def test_ms_ssim_matches_an_independent_scipy_computation():
    """Five scales against a reference written with scipy: Gaussian filtering (σ 1.5, truncated at 3.5σ: the
    same 11 taps) cropped 5 px from each edge, numpy's 2×2 block means, the weighted product per channel, then
    the channel mean. Measured agreement: 1e-15; tolerance 1e-10."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    def blur(x):
        return gaussian_filter(x, 1.5, truncate=3.5)[5:-5, 5:-5]

    def reference(a, b):
        per_channel = []
        for channel in range(a.shape[2]):
            x, y, value = a[..., channel], b[..., channel], 1.0
            for scale, weight in enumerate(metrics.MS_SSIM_WEIGHTS):
                if scale:
                    x, y = (z[:z.shape[0] // 2 * 2, :z.shape[1] // 2 * 2].reshape(z.shape[0] // 2, 2, z.shape[1] // 2, 2)
                            .mean(axis=(1, 3)) for z in (x, y))
                mx, my = blur(x), blur(y)
                cs = (2 * (blur(x * y) - mx * my) + 0.03 ** 2) / (blur(x * x) - mx ** 2 + blur(y * y) - my ** 2 + 0.03 ** 2)
                if scale == len(metrics.MS_SSIM_WEIGHTS) - 1:
                    cs = cs * (2 * mx * my + 0.01 ** 2) / (mx ** 2 + my ** 2 + 0.01 ** 2)
                value *= max(cs.mean(), 0.0) ** weight
            per_channel.append(value)
        return float(np.mean(per_channel))

    target = _textured(177, 203)  # odd sizes: pooling drops the last row and column
    prediction = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    expected = reference(prediction.double().numpy(), target.double().numpy())
    assert metrics.ms_ssim(prediction, target) == pytest.approx(expected, abs=1e-10)
    assert 0.0 < expected < 1.0
    assert metrics.ms_ssim(target, target) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ms_ssim(prediction, target) < metrics.ms_ssim((target + 0.02).clamp(0, 1), target)


def test_ms_ssim_refuses_images_too_small_for_its_scales():
    with pytest.raises(ValueError, match="larger than 160 px"):
        metrics.ms_ssim(torch.rand(160, 300, 3), torch.rand(160, 300, 3))
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
