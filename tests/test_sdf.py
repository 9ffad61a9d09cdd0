"""SDF signal: shape files, exact ground truth on analytic shapes, losses, fitting, export in original units."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

import inrkit
from inrkit.errors import InrkitError, InrkitWarning
from inrkit.io.shapes import estimate_normals, read_shape
from inrkit.signals import open_signal
from inrkit.signals.sdf import EXTENT, SdfBatch, SdfOptions, SdfSignal, siren_sdf_loss
from inrkit.signals.sdf_sampling import SAMPLE_MIX, edge_defects, inside, signed_distance, training_samples

CENTRE = np.array([10.0, -5.0, 3.0])
RADIUS = 2.0
HALF = np.array([0.5, 0.3, 0.2])
FIT = {"model": "siren", "width": 32, "depth": 2, "omega0": 10.0, "lr": 1e-3, "steps": 400, "batch_size": 4096,
       "sdf_samples": 20_000, "eval_resolution": 48, "resolution": 48, "eval_every": 0, "device": "cpu", "quiet": True}


def box_sdf(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Exact signed distance to an axis-aligned box centred at 0: ``|max(q, 0)| + min(max_i q_i, 0)``, ``q = |p| − h``."""
    q = np.abs(points) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


def sphere_mesh(centre: np.ndarray = CENTRE, radius: float = RADIUS) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=radius).apply_translation(centre)


@pytest.fixture(scope="module")
def sphere_run(tmp_path_factory: pytest.TempPathFactory) -> inrkit.Run:
    folder = tmp_path_factory.mktemp("sdf")
    source = folder / "sphere.obj"
    sphere_mesh().export(source)
    return inrkit.fit(source, out=folder / "run", export=str(folder / "fit.ply"), **FIT)


# -- ground truth --------------------------------------------------------------------------------
def test_box_signed_distance_is_exact() -> None:
    box = trimesh.creation.box(extents=2 * HALF)
    rng = np.random.default_rng(0)
    points = rng.uniform(-1.0, 1.0, (20_000, 3))
    np.testing.assert_allclose(signed_distance(points, box.vertices, box.faces), box_sdf(points, HALF), atol=1e-9)


def test_sphere_signed_distance_matches_within_tessellation_error() -> None:
    mesh = sphere_mesh(np.zeros(3), 1.0)
    rng = np.random.default_rng(1)
    points = rng.uniform(-2.0, 2.0, (20_000, 3))
    exact = np.linalg.norm(points, axis=1) - 1.0
    computed = signed_distance(points, mesh.vertices, mesh.faces)
    assert np.abs(computed - exact).max() < 2e-3  # the icosphere's chords sag by < 1.2e-3
    assert (np.sign(computed) == np.sign(exact))[np.abs(exact) > 2e-3].all()


def test_training_samples_follow_the_mix_and_the_truth() -> None:
    box = trimesh.creation.box(extents=2 * HALF)
    points, distance = training_samples(np.asarray(box.vertices), np.asarray(box.faces), 8000, np.random.default_rng(0))
    assert points.shape == (8000, 3) and distance.shape == (8000,)
    assert np.abs(points).max() <= 1.0
    on_surface = round(SAMPLE_MIX[0][0] * 8000)
    np.testing.assert_allclose(box_sdf(points, HALF)[:on_surface], 0.0, atol=1e-9)
    np.testing.assert_allclose(distance, box_sdf(points, HALF), atol=1e-9)
    uniform = round(SAMPLE_MIX[-1][0] * 8000)
    assert (distance[-uniform:] > 0).mean() > 0.9  # the box fills 3 % of the cube
    assert (np.abs(distance[on_surface : on_surface + 2000]) < 0.03).all()


def test_open_mesh_keeps_its_signs_around_the_hole() -> None:
    mesh = sphere_mesh(np.zeros(3), 1.0)
    keep = mesh.triangles_center[:, 2] < 0.8  # cut a cap off: a hole of radius 0.6 at the top
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)[keep]
    boundary, non_manifold = edge_defects(vertices, faces)
    assert boundary > 0 and non_manifold == 0
    probes = np.array([[0, 0, 0], [0, 0, 0.7], [0.3, 0, -0.5], [0, 0, 1.5], [0, 0, 3.0], [1.5, 0, 0.9], [0, 2, 0]], float)
    assert inside(probes, vertices, faces).tolist() == [True, True, True, False, False, False, False]
    distance = signed_distance(probes, vertices, faces)
    assert (distance[:3] < 0).all() and (distance[3:] > 0).all()


def test_edge_defects_of_a_closed_mesh_with_split_seams() -> None:
    box = trimesh.creation.box()
    vertices = np.asarray(box.vertices)[np.asarray(box.faces)].reshape(-1, 3)  # every face has its own vertices
    faces = np.arange(len(vertices)).reshape(-1, 3)
    assert edge_defects(vertices, faces) == (0, 0)


def test_edge_defects_counts_non_manifold_edges() -> None:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], dtype=float)
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])  # three triangles share the edge 0-1
    assert edge_defects(vertices, faces) == (6, 1)


# -- reading shapes ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_mesh_formats(tmp_path: Path, suffix: str) -> None:
    mesh = sphere_mesh()
    path = tmp_path / f"sphere{suffix}"
    mesh.export(path)
    shape = read_shape(path)
    assert shape.is_mesh and len(shape.faces) == len(mesh.faces)
    np.testing.assert_allclose(shape.vertices.min(axis=0), mesh.vertices.min(axis=0), atol=1e-5)


def _sphere_points(n: int = 2000, seed: int = 0) -> np.ndarray:
    points = np.random.default_rng(seed).standard_normal((n, 3))
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def test_ply_without_faces_is_a_point_cloud_and_keeps_normals(tmp_path: Path) -> None:
    points = _sphere_points()
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(points).export(path)
    shape = read_shape(path)
    assert not shape.is_mesh and shape.normals_estimated
    header = (f"ply\nformat ascii 1.0\nelement vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property float nx\nproperty float ny\nproperty float nz\nend_header\n")
    path.write_text(header + "\n".join(" ".join(f"{v:.6f}" for v in (*p, *p)) for p in points) + "\n")
    shape = read_shape(path)
    assert not shape.normals_estimated
    np.testing.assert_allclose(shape.normals, points, atol=1e-5)


def test_xyz_with_and_without_normals(tmp_path: Path) -> None:
    points = _sphere_points()
    np.savetxt(tmp_path / "plain.xyz", points)
    np.savetxt(tmp_path / "oriented.xyz", np.concatenate([points, 3.0 * points], axis=1))
    assert read_shape(tmp_path / "plain.xyz").normals_estimated
    np.testing.assert_allclose(read_shape(tmp_path / "oriented.xyz").normals, points, atol=1e-6)


def test_estimated_normals_point_outwards() -> None:
    points = _sphere_points(3000)
    normals = estimate_normals(points * np.array([1.0, 0.6, 0.4]))  # an ellipsoid
    outward = np.einsum("ni,ni->n", normals, points)
    assert (outward > 0.5).mean() > 0.98


def test_normalisation_frame() -> None:
    signal = SdfSignal(read_shape_from(sphere_mesh()), SdfOptions(sdf_samples=4096))
    np.testing.assert_allclose(signal.centre, CENTRE, atol=1e-9)
    assert signal.scale == pytest.approx(RADIUS / EXTENT)
    np.testing.assert_allclose(np.abs(signal.vertices).max(), EXTENT)
    np.testing.assert_allclose(signal.to_original(signal.vertices), sphere_mesh().vertices)
    config = signal.config()
    assert config["kind"] == "sdf" and config["loss"] == "l1" and config["transform"]["scale"] == signal.scale


def test_export_resolution_does_not_change_the_network() -> None:
    from inrkit.fields import ModelOptions, preset_config

    shape = read_shape_from(sphere_mesh())
    configs = [preset_config(ModelOptions(model="relu-pe"), 3, 1, signal.samples_per_axis)
               for signal in (SdfSignal(shape, SdfOptions(sdf_samples=4096, resolution=r)) for r in (32, 1024))]
    assert configs[0] == configs[1]


def read_shape_from(mesh: trimesh.Trimesh):
    from inrkit.io.shapes import Shape

    return Shape(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64))


# -- losses ----------------------------------------------------------------------------------------
class SphereField(torch.nn.Module):
    """The exact SDF of a sphere of radius ``r`` at the origin, in inrkit's [0, 1] output convention."""

    def __init__(self, radius: float) -> None:
        super().__init__()
        self.radius = torch.nn.Parameter(torch.tensor(radius))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return ((coords.norm(dim=1, keepdim=True) - self.radius) + 1.0) / 2.0


def test_siren_loss_vanishes_on_the_true_sdf_except_the_off_surface_term() -> None:
    points = torch.from_numpy(_sphere_points(512).astype(np.float32)) * 0.5
    uniform = torch.rand(512, 3) * 2 - 1
    batch = SdfBatch(torch.cat([points, uniform]), torch.zeros(1024, 1), torch.cat([points * 2, torch.zeros(512, 3)]),
                     torch.cat([torch.ones(512, dtype=torch.bool), torch.zeros(512, dtype=torch.bool)]))
    exact = SphereField(0.5)
    off_surface = 100.0 * torch.exp(-100.0 * ((uniform.norm(dim=1) - 0.5).abs())).sum() / 1024
    assert siren_sdf_loss(exact, batch).item() == pytest.approx(float(off_surface), rel=1e-4, abs=1e-5)
    assert siren_sdf_loss(SphereField(0.45), batch).item() > float(off_surface) + 3000 * 0.05 / 2 * 0.99


def test_regression_losses() -> None:
    signal = SdfSignal(read_shape_from(sphere_mesh()), SdfOptions(sdf_samples=4096, sdf_loss="l1"))
    batch = signal.sample(1000, torch.Generator().manual_seed(0))
    radius = RADIUS / signal.scale
    centred = batch.coords.norm(dim=1) - radius
    assert float((centred - batch.values[:, 0]).abs().max()) < 5e-3  # tessellation error only
    assert signal.loss(SphereField(radius), batch).item() < 5e-3
    signal.loss_name = "mape"
    assert signal.loss(SphereField(radius), batch).item() < 0.1


def test_point_cloud_defaults_to_the_siren_loss(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "cloud.xyz", np.concatenate([_sphere_points(), _sphere_points()], axis=1))
    signal = open_signal(tmp_path / "cloud.xyz")
    assert signal.loss_name == "siren"
    batch = signal.sample(256, torch.Generator().manual_seed(0))
    assert batch.on_surface.sum() == 128 and batch.normals.shape == (256, 3)
    with pytest.raises(InrkitError, match="needs a mesh"):
        open_signal(tmp_path / "cloud.xyz", {"sdf_loss": "mape"})


def test_siren_loss_clips_the_gradient_at_norm_1_under_the_paper_protocol(tmp_path: Path) -> None:
    """SIREN's train_sdf.py clips the total gradient norm at 1; the device protocol and the regression losses do not."""
    np.savetxt(tmp_path / "cloud.xyz", np.concatenate([_sphere_points(), _sphere_points()], axis=1))
    mesh = SdfSignal(read_shape_from(sphere_mesh()), SdfOptions(sdf_samples=4096))
    assert mesh.default_options("siren", "paper") == mesh.default_options("siren", "device") == {}
    fit = {**FIT, "steps": 2, "batch_size": 256, "eval_resolution": 16, "resolution": 16}
    run = inrkit.fit(tmp_path / "cloud.xyz", out=tmp_path / "run", protocol="paper", **fit)
    assert run.config["signal"]["loss"] == "siren"
    assert run.config["train"]["clip_grad_norm"] == 1.0
    device = inrkit.fit(tmp_path / "cloud.xyz", out=tmp_path / "device", protocol="device", **fit)
    assert device.config["train"]["clip_grad_norm"] is None
    mine = inrkit.fit(tmp_path / "cloud.xyz", out=tmp_path / "mine", protocol="paper", **{**fit, "clip_grad_norm": 5.0})
    assert mine.config["train"]["clip_grad_norm"] == 5.0  # the user's value wins


# -- fitting and export --------------------------------------------------------------------------------
def test_fitted_sphere_metrics(sphere_run: inrkit.Run) -> None:
    metrics = sphere_run.metrics
    assert metrics["iou"] > 0.97
    assert metrics["chamfer_l1"] < 0.01  # 1 % of the bounding-box side
    assert metrics["normal_consistency"] > 0.98
    assert metrics["fscore"] > 0.9


def test_export_is_in_original_units(sphere_run: inrkit.Run) -> None:
    exported = trimesh.load(sphere_run.dir.parent / "fit.ply", process=False)
    radii = np.linalg.norm(exported.vertices - CENTRE, axis=1)
    assert abs(radii.mean() - RADIUS) < 0.02 * RADIUS
    assert np.abs(radii - RADIUS).max() < 0.05 * RADIUS
    assert (sphere_run.dir / "mesh.ply").is_file()


def test_mesh_command_and_reload(sphere_run: inrkit.Run, tmp_path: Path) -> None:
    out = inrkit.export_mesh(sphere_run.dir, tmp_path / "again.obj", resolution=40, device="cpu")
    mesh = trimesh.load(out, process=False, force="mesh")
    radii = np.linalg.norm(mesh.vertices - CENTRE, axis=1)
    assert abs(radii.mean() - RADIUS) < 0.03 * RADIUS
    reopened = inrkit.signals.signal_from_config(sphere_run.config["signal"])
    assert reopened.scale == pytest.approx(sphere_run.config["signal"]["transform"]["scale"])


def test_open_mesh_fits_with_a_warning(tmp_path: Path) -> None:
    mesh = sphere_mesh()
    mesh.update_faces(mesh.triangles_center[:, 2] < CENTRE[2] + 1.6)
    path = tmp_path / "open.ply"
    mesh.export(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        signal = open_signal(path, {"sdf_samples": 4096})
    assert any(issubclass(w.category, InrkitWarning) and "not a closed manifold" in str(w.message) for w in caught)
    assert signal.defects[0] > 0


# -- every backbone ----------------------------------------------------------------------------------
BACKBONES = {
    "siren": {"width": 16, "depth": 2},
    "finer": {"width": 16, "depth": 2},
    "sl2a": {"width": 16, "depth": 2, "rank": 4, "degree": 8},
    "relu-pe": {"width": 16, "depth": 2},
    "hashgrid": {"width": 16, "depth": 1, "n_levels": 4, "log2_hashmap_size": 10},
    "hashgrid-siren": {"width": 16, "depth": 1, "n_levels": 4, "log2_hashmap_size": 10},
}


@functools.cache
def small_signal(loss: str) -> SdfSignal:
    return SdfSignal(read_shape_from(trimesh.creation.icosphere(subdivisions=2)), SdfOptions(sdf_samples=2048, sdf_loss=loss))


@pytest.mark.parametrize("model", BACKBONES)
@pytest.mark.parametrize("loss", ["l1", "siren"])
def test_every_backbone_trains_on_both_losses(model: str, loss: str) -> None:
    from inrkit.fields import Field, ModelOptions, preset_config

    signal = small_signal(loss)
    torch.manual_seed(0)
    field = Field(preset_config(ModelOptions(model=model, **BACKBONES[model]), 3, 1, signal.samples_per_axis))
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-2 if model.startswith("hashgrid") else 1e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(8):
        value = signal.loss(field, signal.sample(256, generator))
        optimizer.zero_grad()
        value.backward()
        assert all(torch.isfinite(p.grad).all() for p in field.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(value.item())
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < losses[0]
