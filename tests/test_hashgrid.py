"""Grid encodings against tiny-cuda-nn's formulas, hand-computed indices and interpolation."""

from __future__ import annotations

import math

import pytest
import torch

from inrkit.backends.grid_reference import PRIMES, level_indices
from inrkit.encodings import GridEncoding, build_encoding, grid_geometry
from inrkit.errors import ConfigError

NERF_SCALE = math.exp(math.log(2048 / 16) / 15)


def hashgrid(dims: int, **overrides) -> GridEncoding:
    return GridEncoding(dims, {"otype": "HashGrid", **overrides})


def test_nerf_config_parameter_counts_match_tcnn():
    """tcnn's 3-D NeRF grid (N_max 2048, L16, F2, T 2^19) has 12,196,240 parameters; with b = 2, 14,229,504."""
    assert hashgrid(3, log2_hashmap_size=19, per_level_scale=NERF_SCALE).n_params == 12_196_240
    assert hashgrid(3, log2_hashmap_size=19, per_level_scale=2.0).n_params == 14_229_504


def test_level_resolutions_and_table_sizes():
    nerf = grid_geometry(3, 16, 2, 19, 16, NERF_SCALE)
    assert nerf.resolutions == (16, 23, 31, 43, 59, 81, 112, 154, 213, 295, 407, 562, 777, 1073, 1483, 2048)
    assert nerf.sizes[:5] == (4096, 12168, 29792, 79512, 205384)  # dense levels, R^3 rounded up to 8
    assert nerf.sizes[5:] == (2**19,) * 11
    assert nerf.hashed == (False,) * 5 + (True,) * 11
    image = grid_geometry(2, 16, 2, 15, 16, 1.5)  # tcnn's data/config_hash.json
    assert image.resolutions[:7] == (16, 24, 36, 54, 81, 122, 183)
    assert image.n_params == 708_368
    assert image.offsets[1] == 256 and image.offsets[2] == 256 + 576
    dense = grid_geometry(3, 4, 2, 19, 16, 2.0, "Dense")
    assert dense.sizes == (4096, 32768, 262144, 2097152) and not any(dense.hashed)


def test_hash_indices_of_hand_computed_cells():
    # 3-D cell (1, 2, 3): 1·1 ⊕ 2·2654435761 ⊕ 3·805459861 in uint32, i.e. 1 ⊕ 1013904226 ⊕ 2416379583
    expected_hash = (1 ^ 1013904226 ^ 2416379583) % 2**19
    cell = torch.tensor([[1, 2, 3]])
    assert level_indices(cell, resolution=2048, size=2**19, hashed=True).item() == expected_hash
    assert (2 * PRIMES[1]) % 2**32 == 1013904226 and (3 * PRIMES[2]) % 2**32 == 2416379583
    # dense: 1 + 2·16 + 3·256
    assert level_indices(cell, resolution=16, size=4096, hashed=False).item() == 801
    # negative cells wrap in uint32 before the modulo: -1 -> 2^32 - 1
    assert level_indices(torch.tensor([[-1, 0]]), resolution=16, size=256, hashed=False).item() == (2**32 - 1) % 256


def test_bilinear_interpolation_of_one_level_by_hand():
    grid = GridEncoding(2, {"otype": "DenseGrid", "n_levels": 1, "n_features_per_level": 1, "base_resolution": 4})
    with torch.no_grad():
        grid.params.copy_(torch.arange(grid.n_params, dtype=torch.float32))
    s = grid.geometry.scales[0]  # 3.0: R = 4 vertices per axis
    x = torch.tensor([[0.3, 0.6]])
    p = x * s + 0.5  # (1.4, 2.3): cell (1, 2), fraction (0.4, 0.3)
    (c0, c1), (f0, f1) = p.floor().long()[0].tolist(), (p - p.floor())[0].tolist()
    value = lambda i, j: float(i + 4 * j)  # noqa: E731 - dense index i + R·j holds the value i + 4j
    expected = ((1 - f0) * (1 - f1) * value(c0, c1) + f0 * (1 - f1) * value(c0 + 1, c1)
                + (1 - f0) * f1 * value(c0, c1 + 1) + f0 * f1 * value(c0 + 1, c1 + 1))
    assert grid(x).item() == pytest.approx(expected, rel=1e-6)


def test_smoothstep_and_nearest_interpolation():
    config = {"otype": "DenseGrid", "n_levels": 1, "n_features_per_level": 1, "base_resolution": 4}
    linear = GridEncoding(1, config)
    smooth = GridEncoding(1, {**config, "interpolation": "Smoothstep"})
    nearest = GridEncoding(1, {**config, "interpolation": "Nearest"})
    for grid in (linear, smooth, nearest):
        with torch.no_grad():
            grid.params.copy_(torch.arange(8, dtype=torch.float32))
    x = torch.tensor([[0.25]])  # p = 0.25·3 + 0.5 = 1.25: between vertices 1 and 2, f = 0.25
    assert linear(x).item() == pytest.approx(1.25)
    assert smooth(x).item() == pytest.approx(1 + 0.25**2 * (3 - 2 * 0.25))
    assert nearest(x).item() == 1.0


def test_output_is_level_major():
    grid = hashgrid(2, n_levels=3, n_features_per_level=4, log2_hashmap_size=10)
    with torch.no_grad():
        grid.params.zero_()
        features = grid.params.view(-1, 4)
        features[grid.geometry.offsets[1]:grid.geometry.offsets[2]] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    y = grid(torch.rand(5, 2))
    assert torch.allclose(y[:, 4:8], torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(5, 4))
    assert torch.all(y[:, :4] == 0) and torch.all(y[:, 8:] == 0)


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_every_input_dimension_and_feature_count(dims):
    for features in (1, 2, 4, 8):
        grid = hashgrid(dims, n_levels=4, n_features_per_level=features, log2_hashmap_size=12)
        x = torch.rand(50, dims, requires_grad=True)
        y = grid(x)
        assert y.shape == (50, 4 * features)
        y.sum().backward()
        assert torch.isfinite(x.grad).all() and grid.params.grad.abs().sum() > 0


def test_init_is_uniform_1e4():
    params = hashgrid(3, log2_hashmap_size=14).params
    assert params.abs().max() <= 1e-4 and params.std() > 4e-5


def test_coordinates_outside_unit_cube_wrap_like_tcnn():
    """Not clamped (as tcnn): every index stays inside its table, dense levels repeat with period R/s."""
    grid = GridEncoding(2, {"otype": "DenseGrid", "n_levels": 1, "n_features_per_level": 2, "base_resolution": 8})
    with torch.no_grad():
        grid.params.normal_()
    outside = torch.tensor([[-0.5, 0.2], [1.7, -3.0], [12.0, 0.5]])
    y = grid(outside)
    assert torch.isfinite(y).all()
    # R^2 = 64 entries (already a multiple of 8): moving the cell by R along y adds R^2 to the index
    period = grid.geometry.resolutions[0] / grid.geometry.scales[0]
    inside = torch.tensor([[0.3, 0.4]])
    assert torch.allclose(grid(inside + torch.tensor([[0.0, period]])), grid(inside), atol=1e-4)


def test_max_level_masks_finer_levels_and_their_gradients():
    grid = hashgrid(2, n_levels=8, n_features_per_level=2, log2_hashmap_size=12)
    grid.max_level = 0.5  # tcnn: level l is on iff l < 0.5·8 + 1e-3, so levels 0-4
    x = torch.rand(64, 2)
    y = grid(x)
    assert torch.all(y[:, 10:] == 0) and torch.all(y[:, 8:10] != 0)
    y.sum().backward()
    offsets = grid.geometry.offsets
    assert torch.all(grid.params.grad[offsets[5] * 2:] == 0)
    assert grid.params.grad[: offsets[5] * 2].abs().sum() > 0
    grid.max_level = 0.0
    assert torch.all(grid(x)[:, 2:] == 0)  # level 0 is always on


@pytest.mark.parametrize(("key", "value"), [
    ("n_features_per_level", 3), ("log2_hashmap_size", 40), ("log2_hashmap_size", 0), ("base_resolution", -4),
    ("per_level_scale", 0.5), ("n_levels", 0), ("interpolation", "Cubic"), ("type", "Sparse"), ("hash", "Prime"),
])
def test_invalid_grid_configs_name_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        hashgrid(2, **{key: value})


def test_invalid_input_dimension_and_otype():
    with pytest.raises(ConfigError, match="n_input_dims"):
        hashgrid(5)
    with pytest.raises(ConfigError, match="otype"):
        build_encoding(2, {"otype": "Blob"})


def test_reference_has_input_gradient_for_eikonal_losses():
    torch.manual_seed(0)
    grid = hashgrid(3, n_levels=2, base_resolution=4, log2_hashmap_size=12)  # cells of 1/3 and 1/7
    with torch.no_grad():
        grid.params.normal_()
    x = torch.rand(8, 3, dtype=torch.float32, requires_grad=True)
    (grad,) = torch.autograd.grad(grid(x).sum(), x, create_graph=True)
    eps = 1e-4
    numeric = torch.stack([(grid(x + eps * e) - grid(x - eps * e)).sum(1) / (2 * eps) for e in torch.eye(3)], 1)
    assert torch.allclose(grad, numeric, rtol=1e-2, atol=1e-2)
    grad.sum().backward()  # second order runs


