"""Rays, volume rendering, occupancy grid and ray marching against hand-computed and closed-form values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inrkit.fields.nerf_model import NerfModel
from inrkit.nerf.cameras import Camera, camera_rays, distort, pixel_rays, undistort
from inrkit.nerf.marching import StepSchedule, march, ray_box
from inrkit.nerf.occupancy import OccupancyGrid, n_cascades, update_due
from inrkit.nerf.volume import composite_rays, exclusive_segment_sum, render_weights
from inrkit.signals.radiance import HUBER_DELTA, scaled_huber

TINY_FIELD = {
    "position_encoding": {"otype": "Identity"}, "density_network": {"otype": "ReLU", "n_neurons": 8, "n_hidden_layers": 1},
    "direction_encoding": {"otype": "Identity"}, "rgb_network": {"otype": "ReLU", "n_neurons": 8, "n_hidden_layers": 1},
}


def model_config(resolution: int = 32, steps_per_unit: int = 256, aabb_scale: int = 1) -> dict:
    return {"field": TINY_FIELD, "scene": {"scale": 0.33, "offset": [0.5, 0.5, 0.5], "aabb_scale": aabb_scale},
            "grid": {"resolution": resolution, "warmup_steps": 256, "sample_fraction": 1.0},
            "march": {"steps_per_unit": steps_per_unit, "max_samples": 1024}}


class SoftSphere(torch.nn.Module):
    """Analytic field: σ = 500·sigmoid((0.1 − |p − c|)/0.005) in unit-cube coordinates, colour from position."""

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        return 500.0 * torch.sigmoid((0.1 - (positions - 0.5).norm(dim=1)) / 0.005)

    def density_and_features(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.density(positions), positions

    def encode_directions(self, directions: torch.Tensor) -> torch.Tensor:
        return directions

    def colour(self, features: torch.Tensor, encoded_directions: torch.Tensor) -> torch.Tensor:
        return features.clamp(0, 1)

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.density(positions), self.colour(positions, directions)


# -- rays ---------------------------------------------------------------------------------------
def test_rays_match_hand_computation():
    # 4x2 image, 90° horizontal field of view: f = 0.5·4/tan(45°) = 2, principal point (2, 1).
    c2w = np.eye(4)
    c2w[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90° about z
    c2w[:3, 3] = [1, 2, 3]
    camera = Camera.from_fov(c2w, width=4, height=2, fov_x=math.pi / 2)
    assert camera.fx == pytest.approx(2.0) and camera.cx == 2.0 and camera.cy == 1.0
    origins, directions = camera_rays(camera)
    # pixel (row 0, col 0): x = (0.5 − 2)/2 = −0.75, y = (0.5 − 1)/2 = −0.25 → local (−0.75, 0.25, −1)
    local = np.array([-0.75, 0.25, -1.0])
    expected = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]) @ local  # = (−0.25, −0.75, −1)
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(directions[0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(origins.numpy(), np.tile([1, 2, 3], (8, 1)))
    # pixel (row 1, col 3): x = (3.5 − 2)/2 = 0.75, y = (1.5 − 1)/2 = 0.25 → local (0.75, −0.25, −1) → (0.25, 0.75, −1)
    np.testing.assert_allclose(directions[7].numpy(), np.array([0.25, 0.75, -1.0]) / math.sqrt(1.625), atol=1e-6)
    np.testing.assert_allclose(directions.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_undistort_inverts_distort_and_rays_reproject():
    k = (-0.12, 0.03, 0.002, -0.001)
    x, y = torch.meshgrid(torch.linspace(-0.6, 0.6, 9, dtype=torch.float64),
                          torch.linspace(-0.4, 0.4, 7, dtype=torch.float64), indexing="ij")
    xd, yd = distort(x, y, k)
    xu, yu = undistort(xd, yd, k)
    assert torch.allclose(xu, x, atol=1e-9) and torch.allclose(yu, y, atol=1e-9)
    camera = Camera(np.eye(4), 20, 10, 15.0, 16.0, 9.5, 5.2, k)
    rows, cols = torch.tensor([0, 4, 9]), torch.tensor([0, 11, 19])
    _, directions = pixel_rays(camera, rows, cols)
    d = directions.double()
    px, py = d[:, 0] / -d[:, 2], -d[:, 1] / -d[:, 2]  # undistorted normalised point
    qx, qy = distort(px, py, k)
    assert torch.allclose(qx * camera.fx + camera.cx, cols.double() + 0.5, atol=1e-4)
    assert torch.allclose(qy * camera.fy + camera.cy, rows.double() + 0.5, atol=1e-4)


def test_ray_box_slab():
    origins = torch.tensor([[-1.0, 0.5, 0.5], [0.5, 0.5, 0.5], [-1.0, 2.0, 0.5]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t_near, t_far = ray_box(origins, directions, 0.0, 1.0)
    assert t_near[0] == pytest.approx(1.0) and t_far[0] == pytest.approx(2.0)
    assert t_near[1] == pytest.approx(0.0) and t_far[1] == pytest.approx(0.5)  # starts inside
    assert t_far[2] <= t_near[2]  # misses


# -- volume rendering ---------------------------------------------------------------------------
def test_constant_density_slab_closed_form():
    """Two rays through slabs of constant density: w_i = e^{−σ iδ}(1 − e^{−σδ}), A = 1 − e^{−σL}."""
    n, length = 50, 2.0
    delta = length / n
    sigmas_per_ray = (0.7, 3.0)
    t_starts = torch.arange(n, dtype=torch.float64).repeat(2) * delta + 1.0
    t_ends = t_starts + delta
    ray_indices = torch.arange(2).repeat_interleave(n)
    sigmas = torch.tensor(sigmas_per_ray, dtype=torch.float64).repeat_interleave(n)
    weights, transmittance = render_weights(sigmas, t_ends - t_starts, ray_indices)
    for ray, sigma in enumerate(sigmas_per_ray):
        i = torch.arange(n, dtype=torch.float64)
        expected = torch.exp(-sigma * i * delta) * (1 - math.exp(-sigma * delta))
        assert torch.allclose(weights[ray * n:(ray + 1) * n], expected, atol=1e-12)
        assert torch.allclose(transmittance[ray * n:(ray + 1) * n], torch.exp(-sigma * i * delta), atol=1e-12)
    background = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    rgbs = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).expand(2 * n, 3)
    out = composite_rays(rgbs, sigmas, t_starts, t_ends, ray_indices, 2, background)
    for ray, sigma in enumerate(sigmas_per_ray):
        opacity = 1 - math.exp(-sigma * length)
        assert float(out["opacity"][ray]) == pytest.approx(opacity, abs=1e-12)
        assert out["rgb"][ray].tolist() == pytest.approx([opacity, 0.0, 1 - opacity], abs=1e-12)
        # expected depth of the discrete slab: Σ w_i (t_i + δ/2)
        i = torch.arange(n, dtype=torch.float64)
        depth = float((torch.exp(-sigma * i * delta) * (1 - math.exp(-sigma * delta)) * (1.0 + (i + 0.5) * delta)).sum())
        assert float(out["depth"][ray]) == pytest.approx(depth, abs=1e-10)


def test_early_termination_and_segment_sums():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0, 20.0])
    rays = torch.tensor([0, 0, 0, 2, 2])
    assert exclusive_segment_sum(values, rays).tolist() == [0.0, 1.0, 3.0, 0.0, 10.0]
    weights, _ = render_weights(torch.full((5,), 10.0), torch.ones(5), rays, min_transmittance=1e-4)
    assert weights[1] == 0 and weights[4] == 0 and weights[0] > 0.99  # T = e^{−10} < 1e-4 after the first sample


# -- occupancy grid and marching ----------------------------------------------------------------
def test_update_schedule_and_cascades():
    due = [step for step in range(300) if update_due(step)]
    assert due[:33] == list(range(33)) and 256 in due and 257 not in due and 272 in due
    assert n_cascades(1) == 1 and n_cascades(16) == 5 and n_cascades(5) == 4
    grid = OccupancyGrid(n_cascades=3, resolution=8)
    points = torch.tensor([[0.5, 0.5, 0.5], [0.9, 0.5, 0.5], [1.2, 0.5, 0.5], [1.9, 0.1, 0.5], [3.0, 0.5, 0.5]])
    assert grid.cascade_of(points).tolist() == [0, 0, 1, 2, 3]
    assert not bool(grid.is_occupied(points)[4])  # outside the outermost cascade


def test_grid_update_rule_max_with_decay():
    grid = OccupancyGrid(resolution=4, min_step=0.1)
    grid.update(0, lambda p: torch.full((p.shape[0],), 1.0))  # v_new = σ·Δt = 0.1 everywhere
    assert torch.allclose(grid.values, torch.full_like(grid.values, 0.1))
    grid.update(1, lambda p: torch.zeros(p.shape[0]))
    assert torch.allclose(grid.values, torch.full_like(grid.values, 0.095))  # decay 0.95, max with 0
    assert bool(grid.occupied.all())  # v > min(0.01, mean)


def _blob_model() -> NerfModel:
    model = NerfModel(model_config())
    model.field = SoftSphere()
    generator = torch.Generator().manual_seed(0)
    for step in range(16):  # warm-up updates: a random point in every cell each time
        model.grid.update(step, model.field.density, generator=generator)
    return model


def _rays(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    camera = Camera.from_fov(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 3.0], [0, 0, 0, 1]]), n, n, 0.5)
    return camera_rays(camera)


def test_occupancy_skipping_matches_dense_marching():
    model = _blob_model()
    occupied = model.grid.occupancy_fraction()
    assert 0.0 < occupied < 0.05  # the sphere fills a few percent of the box
    origins, directions = _rays()
    unit_origins = model.to_unit(origins)
    t_near, t_far = ray_box(unit_origins, directions, *model.box)
    skipped, _ = march(unit_origins, directions, t_near, t_far, model.grid, model.schedule, model.max_steps)
    dense, _ = march(unit_origins, directions, t_near, t_far, None, model.schedule, model.max_steps)
    assert 0 < len(skipped) < 0.2 * len(dense)
    assert bool(model.grid.is_occupied(skipped.positions).all())  # no sample in an empty cell
    assert bool((skipped.t_starts >= t_near[skipped.ray_indices] - 1e-6).all())
    assert bool((skipped.t_ends <= t_far[skipped.ray_indices] + 1e-6).all())
    assert bool((torch.diff(skipped.ray_indices) >= 0).all())
    # dense intervals of one ray tile [t_near, t_far] without gaps
    first = dense.ray_indices == dense.ray_indices[0]
    assert torch.allclose(dense.t_starts[first][1:], dense.t_ends[first][:-1])
    with_grid = model.render_rays(origins, directions, 1.0)
    without = model.render_rays(origins, directions, 1.0, use_grid=False)
    assert float(without["opacity"].max()) > 0.5  # the sphere is visible
    # cells are found by random points, so a silhouette cell that the sphere barely touches may be missed
    difference = (with_grid["rgb"] - without["rgb"]).abs().amax(dim=1)
    assert float(difference.quantile(0.99)) < 2e-2 and float(difference.max()) < 0.1
    assert float((with_grid["opacity"] - without["opacity"]).abs().mean()) < 2e-3


def test_training_render_matches_inference_render():
    model = _blob_model()
    origins, directions = _rays()
    background = torch.ones(len(origins), 3)
    train = model.render_train(origins, directions, background, torch.Generator().manual_seed(0))
    infer = model.render_rays(origins, directions, 1.0)
    assert int(train["n_samples"]) > 0
    assert float((train["rgb"] - infer["rgb"]).abs().max()) < 5e-2  # jittered start vs fixed start


def test_cone_stepping_schedule_is_continuous():
    schedule = StepSchedule.instant_ngp(aabb_scale=16)
    t0 = torch.tensor([0.01, 1.0, 30.0])
    t = schedule.positions(t0, torch.arange(2000))
    steps = torch.diff(t, dim=1)
    assert bool((steps > 0).all())
    assert float(steps.min()) >= schedule.min_step * (1 - 1e-4)
    assert float(steps.max()) <= schedule.max_step * (1 + 1e-4)
    assert t[0, -1] > 30  # crosses a 16-unit box well within the step bound
    assert schedule.max_steps(16 * math.sqrt(3)) < 5000


def test_multi_cascade_grid_with_cone_stepping_matches_dense():
    model = NerfModel(model_config(resolution=32, aabb_scale=4))
    model.field = SoftSphere()
    assert model.grid.n_cascades == 3 and model.schedule.cone > 0
    generator = torch.Generator().manual_seed(0)
    for step in range(16):
        model.grid.update(step, model.field.density, generator=generator)
    for cascade in (1, 2):  # outer cascades: occupied only where they overlap cascade 0's cube (the sphere)
        cells = torch.nonzero(model.grid.occupied[cascade]).squeeze(1)
        centres = model.grid.cell_points(cascade, cells, torch.full((len(cells), 3), 0.5))
        assert len(cells) and bool(((centres > 0) & (centres < 1)).all())
    origins, directions = _rays(16)
    with_grid = model.render_rays(origins, directions, 1.0)
    without = model.render_rays(origins, directions, 1.0, use_grid=False)
    assert float(without["opacity"].max()) > 0.5
    difference = (with_grid["rgb"] - without["rgb"]).abs().amax(dim=1)
    assert float(difference.quantile(0.99)) < 2e-2 and float(difference.max()) < 0.1


def test_scaled_huber_is_2_delta_times_the_huber_loss():
    """instant-ngp's Huber (tcnn: ``e²/2δ`` below δ, ``|e| − δ/2`` above; PyTorch's smooth L1 with β = δ) times
    2δ: the squared error below δ, continuous with a continuous slope at δ, linear tails ``2δ|e| − δ²``."""
    delta = HUBER_DELTA
    errors = torch.tensor([-1.0, -0.3, -0.1, -0.0999, -0.05, 0.0, 0.02, 0.0999, 0.1, 0.1001, 0.5, 2.0], dtype=torch.float64)
    huber = torch.nn.functional.smooth_l1_loss(errors, torch.zeros_like(errors), reduction="none", beta=delta)
    torch.testing.assert_close(scaled_huber(errors), 2 * delta * huber)
    small = errors.abs() < delta
    torch.testing.assert_close(scaled_huber(errors[small]), errors[small] ** 2)
    torch.testing.assert_close(scaled_huber(errors[~small]), 2 * delta * errors[~small].abs() - delta**2)
    at = torch.tensor([delta - 1e-9, delta + 1e-9], dtype=torch.float64, requires_grad=True)
    values = scaled_huber(at)
    (slopes,) = torch.autograd.grad(values.sum(), at)
    torch.testing.assert_close(values[0], values[1], atol=1e-8, rtol=0)
    torch.testing.assert_close(slopes, torch.full_like(slopes, 2 * delta), atol=1e-8, rtol=0)


def _reference_pixel_rays(camera: Camera, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ray generator as it was before the shared one (float64, pixel centres)."""
    x = (cols.to(torch.float64) + 0.5 - camera.cx) / camera.fx
    y = (rows.to(torch.float64) + 0.5 - camera.cy) / camera.fy
    if camera.has_distortion:
        x, y = undistort(x, y, camera.distortion)
    local = torch.stack((x, -y, -torch.ones_like(x)), dim=1)
    c2w = torch.as_tensor(np.asarray(camera.c2w), dtype=torch.float64)
    directions = local @ c2w[:3, :3].T
    directions = directions / directions.norm(dim=1, keepdim=True)
    return c2w[:3, 3].expand_as(directions).float(), directions.float()


def _reference_batched_rays(camera: Camera, c2w: torch.Tensor, views, rows, cols):
    """The float32 batch path RadianceSignal had before the shared one (one pinhole model, no distortion)."""
    x = (cols.float() + 0.5 - camera.cx) / camera.fx
    y = (rows.float() + 0.5 - camera.cy) / camera.fy
    local = torch.stack((x, -y, -torch.ones_like(x)), dim=1)
    directions = torch.einsum("nij,nj->ni", c2w[views, :3, :3], local)
    return c2w[views, :3, 3], directions / directions.norm(dim=1, keepdim=True)


def _test_cameras() -> list[Camera]:
    from inrkit.nerf.cameras import look_at

    poses = [look_at(np.array([3.0, -1.0, 2.0])), look_at(np.array([-2.0, 2.5, 1.0]), np.array([0.1, 0.0, 0.2])),
             look_at(np.array([0.5, 0.5, 4.0]))]
    return [Camera(poses[0], 12, 10, 11.0, 11.0, 6.0, 5.0),
            Camera(poses[1], 12, 10, 11.0, 11.0, 6.0, 5.0),
            Camera(poses[2], 12, 10, 13.0, 12.0, 5.3, 4.7, (0.1, -0.05, 0.01, -0.02))]


def test_unified_ray_generator_gives_the_rays_it_gave_before():
    from inrkit.nerf.cameras import view_rays

    cameras = _test_cameras()
    for camera in cameras:  # incl. one with distortion and an off-centre principal point
        rows, cols = torch.meshgrid(torch.arange(camera.height), torch.arange(camera.width), indexing="ij")
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        for new, old in zip(camera_rays(camera), _reference_pixel_rays(camera, rows, cols), strict=True):
            assert torch.equal(new, old)
    c2w = torch.stack([torch.as_tensor(c.c2w, dtype=torch.float32) for c in cameras])
    generator = torch.Generator().manual_seed(0)
    views = torch.randint(3, (200,), generator=generator)
    rows, cols = torch.randint(10, (200,), generator=generator), torch.randint(12, (200,), generator=generator)
    shared = views % 2  # the two cameras with one pinhole model: the float32 batch path
    for new, old in zip(view_rays(cameras[:2], c2w[:2], shared, rows, cols),
                        _reference_batched_rays(cameras[0], c2w[:2], shared, rows, cols), strict=True):
        assert torch.equal(new, old)
    origins, directions = view_rays(cameras, c2w, views, rows, cols)  # mixed models: per view
    for index, camera in enumerate(cameras):
        mask = views == index
        old_origins, old_directions = _reference_pixel_rays(camera, rows[mask], cols[mask])
        assert torch.equal(origins[mask], old_origins) and torch.equal(directions[mask], old_directions)
