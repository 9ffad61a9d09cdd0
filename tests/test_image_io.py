"""Image files and image signals: round-trips, normalisation, alpha, pixel grid, sampling and rendering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import inrkit
from inrkit import InrkitError
from inrkit.fields import build_field
from inrkit.io.images import image_size, read_image, write_image
from inrkit.signals import ImageOptions, ImageSignal, open_signal
from inrkit.signals.image import denormalise, pixel_grid, render

RNG = np.random.default_rng(7)
H, W = 9, 7  # odd, non-square: catches transposed axes


def _ints(channels: int, dtype) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max, (H, W, channels), endpoint=True, dtype=dtype)


FORMATS = [(".png", np.uint8, c) for c in (1, 2, 3, 4)] + [(".png", np.uint16, c) for c in (1, 2, 3, 4)]
FORMATS += [(".tif", dtype, c) for dtype in (np.uint8, np.uint16) for c in (1, 2, 3, 4)]


@pytest.mark.parametrize(("suffix", "dtype", "channels"), FORMATS)
def test_integer_round_trip(tmp_path, suffix, dtype, channels):
    pixels = _ints(channels, dtype)
    path = write_image(tmp_path / f"image{suffix}", pixels)
    back = read_image(path)
    assert back.dtype == dtype
    assert back.shape == (H, W, channels)
    assert np.array_equal(back, pixels)
    assert image_size(path) == (H, W)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_exr_float_round_trip(tmp_path, channels):
    pixels = (RNG.random((H, W, channels)) * 8 - 2).astype(np.float32)  # HDR: negative and above 1
    path = write_image(tmp_path / "image.exr", pixels)
    back = read_image(path)
    assert back.dtype == np.float32
    assert back.shape == (H, W, channels)
    assert np.array_equal(back, pixels)
    assert image_size(path) == (H, W)


def test_float_tiff_single_channel_round_trip(tmp_path):
    pixels = RNG.random((H, W, 1)).astype(np.float32)
    assert np.array_equal(read_image(write_image(tmp_path / "image.tif", pixels)), pixels)


def test_jpeg_is_close(tmp_path, make_image):
    pixels = np.round(make_image(32, 48) * 255).astype(np.uint8)
    back = read_image(write_image(tmp_path / "image.jpg", pixels))
    assert back.shape == (32, 48, 3)
    assert np.abs(back.astype(int) - pixels).mean() < 8  # lossy, chroma subsampled


def test_floats_to_png_are_quantised(tmp_path):
    back = read_image(write_image(tmp_path / "image.png", np.array([[[0.0], [0.5]], [[1.0], [2.0]]], dtype=np.float32)))
    assert back.dtype == np.uint8
    assert back[:, :, 0].tolist() == [[0, 128], [255, 255]]


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(InrkitError, match="unknown image format"):
        write_image(tmp_path / "image.xyz", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255.0), (np.uint16, 65535.0)])
def test_integer_normalisation(tmp_path, dtype, top):
    pixels = _ints(3, dtype)
    signal = ImageSignal.from_file(write_image(tmp_path / "image.png", pixels))
    assert signal.normalisation == {"dtype": np.dtype(dtype).name, "low": 0.0, "high": top, "alpha": False}
    np.testing.assert_allclose(signal.pixels.numpy(), pixels / top, rtol=0, atol=1e-7)
    assert np.array_equal(signal.denormalise(signal.pixels.numpy()), pixels)  # exact inverse


def test_float_normalisation_uses_min_and_max(tmp_path):
    pixels = (RNG.random((H, W, 3)) * 6 - 1).astype(np.float32)
    signal = ImageSignal.from_file(write_image(tmp_path / "image.exr", pixels))
    assert signal.normalisation["low"] == pytest.approx(pixels.min())
    assert signal.normalisation["high"] == pytest.approx(pixels.max())
    values = signal.pixels.numpy()
    assert values.min() == pytest.approx(0.0, abs=1e-6)
    assert values.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(signal.denormalise(values), pixels, atol=1e-5)
    assert signal.output_suffix == ".exr"


def test_alpha_keep_and_composite(tmp_path):
    rgba = _ints(4, np.uint8)
    path = write_image(tmp_path / "image.png", rgba)
    kept = ImageSignal.from_file(path, ImageOptions(alpha="keep"))
    assert kept.n_output_dims == 4
    composited = ImageSignal.from_file(path, ImageOptions(alpha="composite", background=0.25))
    assert composited.n_output_dims == 3
    colour, alpha = rgba[:, :, :3] / 255.0, rgba[:, :, 3:] / 255.0
    np.testing.assert_allclose(composited.pixels.numpy(), colour * alpha + 0.25 * (1 - alpha), atol=1e-6)


def test_grey_alpha_composite(tmp_path):
    path = write_image(tmp_path / "image.png", _ints(2, np.uint16))
    assert ImageSignal.from_file(path, ImageOptions(alpha="composite")).n_output_dims == 1


def test_open_signal_refuses_other_files(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"hello")
    with pytest.raises(InrkitError, match="unsupported file type"):
        open_signal(tmp_path / "notes.txt")
    with pytest.raises(InrkitError, match="no such file"):
        open_signal(tmp_path / "missing.png")


def test_array_with_nan_is_refused():
    pixels = np.zeros((4, 4, 3), np.float32)
    pixels[1, 2, 0] = np.nan
    with pytest.raises(InrkitError, match="NaN"):
        ImageSignal.from_array(pixels)


def test_pixel_grid_centres():
    grid = pixel_grid(3, 4)
    assert grid.shape == (12, 2)
    for i in range(3):
        for j in range(4):
            x, y = grid[i * 4 + j].tolist()
            assert x == pytest.approx((2 * j + 1) / 4 - 1)
            assert y == pytest.approx((2 * i + 1) / 3 - 1)
    assert grid.min() > -1 and grid.max() < 1
    torch.testing.assert_close(grid.mean(0), torch.zeros(2), atol=1e-6, rtol=0)  # symmetric about the centre


def test_full_batch_is_the_grid_and_random_batches_match_pixels(make_image):
    signal = ImageSignal.from_array(make_image(H, W))
    full = signal.sample(None)
    assert torch.equal(full.coords, pixel_grid(H, W))
    assert torch.equal(full.values, signal.values)
    batch = signal.sample(50, torch.Generator().manual_seed(0))
    assert batch.coords.shape == (50, 2) and batch.values.shape == (50, 3)
    cols = torch.round((batch.coords[:, 0] + 1) * W / 2 - 0.5).long()
    rows = torch.round((batch.coords[:, 1] + 1) * H / 2 - 0.5).long()
    assert torch.equal(batch.values, signal.pixels[rows, cols])


def test_render_matches_field_on_grid_and_chunks():
    torch.manual_seed(0)
    field = build_field("siren", 2, 3, width=16, depth=2)
    with torch.no_grad():
        expected = field(pixel_grid(H, W)).reshape(H, W, 3).numpy()
    np.testing.assert_allclose(render(field, H, W), expected, atol=1e-6)
    np.testing.assert_allclose(render(field, H, W, max_points=10), expected, atol=1e-6)  # one row per chunk
    assert render(field, 3 * H, 2 * W).shape == (3 * H, 2 * W, 3)
    with pytest.raises(InrkitError, match="positive"):
        render(field, 0, W)


def test_render_image_super_resolution(small_run, tmp_path):
    path = inrkit.render_image(small_run.dir, tmp_path / "big.png", height=96, width=128, device="cpu")
    big = read_image(path)
    assert big.shape == (96, 128, 3)
    assert big.dtype == np.uint8
    # a smooth fit: block averages of the 4x render stay close to the original-size reconstruction
    small = read_image(small_run.dir / "reconstruction.png").astype(float)
    pooled = big.astype(float).reshape(24, 4, 32, 4, 3).mean(axis=(1, 3))
    assert np.abs(pooled - small).mean() < 4


def test_render_image_sixteen_bit_and_exr(tmp_path, smooth_png):
    png = smooth_png(height=12, width=10, bits=16)
    run = inrkit.fit(png, model="siren", width=16, depth=2, steps=5, out=tmp_path / "run", device="cpu", quiet=True)
    assert read_image(inrkit.render_image(run.dir, tmp_path / "x.png", device="cpu")).dtype == np.uint16
    exr = read_image(inrkit.render_image(run.dir, tmp_path / "x.exr", height=20, width=30, device="cpu"))
    assert exr.dtype == np.float32 and exr.shape == (20, 30, 3)


def test_denormalise_clips_and_rounds():
    normalisation = {"dtype": "uint16", "low": 0.0, "high": 65535.0}
    out = denormalise(np.array([[[-0.5, 0.5, 1.5]]], np.float32), normalisation)
    assert out.dtype == np.uint16
    assert out.tolist() == [[[0, 32768, 65535]]]


# ---------------------------------------------------------------------------------------------------
# Known bugs (see the report): each test states the behaviour the module docstrings promise.


def test_float_rgb_tiff_can_be_fitted(tmp_path):
    pixels = RNG.random((H, W, 3)).astype(np.float32)
    path = write_image(tmp_path / "image.tif", pixels)
    assert np.array_equal(read_image(path), pixels)
    assert ImageSignal.from_file(path).pixels.shape == (H, W, 3)


def test_exr_grey_alpha_keeps_alpha_last(tmp_path):
    import OpenEXR

    grey = np.full((4, 3), 0.25, np.float32)
    alpha = np.full((4, 3), 1.0, np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"Y": grey, "A": alpha}) as exr:
        exr.write(str(tmp_path / "ya.exr"))
    assert read_image(tmp_path / "ya.exr")[0, 0].tolist() == [0.25, 1.0]


def test_exr_opaque_composite_equals_colour(tmp_path, make_image):
    colour = make_image(8, 8) * 4.0  # HDR colour in [0, 4]
    rgba = np.concatenate([colour, np.ones((8, 8, 1), np.float32)], axis=2)
    path = write_image(tmp_path / "image.exr", rgba)
    kept = ImageSignal.from_file(path, ImageOptions(alpha="keep")).pixels.numpy()
    composited = ImageSignal.from_file(path, ImageOptions(alpha="composite", background=1.0)).pixels.numpy()
    np.testing.assert_allclose(kept[:, :, 3], 1.0, atol=1e-6)  # an opaque alpha stays 1
    np.testing.assert_allclose(composited, colour / 4.0, atol=1e-5)  # opaque: the background plays no part
