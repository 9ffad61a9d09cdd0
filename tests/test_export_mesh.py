"""Chunked grid evaluation, narrow-band refinement, marching cubes orientation and mesh files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from inrkit.errors import InrkitError
from inrkit.geometry import extract_mesh, sample_grid
from inrkit.io.meshes import write_mesh
from inrkit.shape_metrics import iou, sample_surface, surface_distances


def two_spheres(points: np.ndarray) -> np.ndarray:
    """Exact SDF of the union of two spheres (radius 0.3 at x = ±0.4)."""
    left = np.linalg.norm(points - [-0.4, 0.0, 0.0], axis=1) - 0.3
    right = np.linalg.norm(points - [0.4, 0.1, 0.0], axis=1) - 0.3
    return np.minimum(left, right)


@pytest.mark.parametrize("resolution", [33, 70, (40, 24, 17)])
def test_narrow_band_keeps_every_sign_and_the_values_near_the_surface(resolution) -> None:
    calls = []

    def counted(points: np.ndarray) -> np.ndarray:
        calls.append(len(points))
        return two_spheres(points)

    box = ((-1.0, -0.6, -0.5), (1.0, 0.6, 0.5))
    dense = sample_grid(two_spheres, box, resolution, chunk=1000)
    banded = sample_grid(counted, box, resolution, lipschitz=1.0, chunk=1000)
    assert banded.shape == dense.shape
    assert ((banded < 0) == (dense < 0)).all()
    near = np.abs(dense) < 0.05
    np.testing.assert_array_equal(banded[near], dense[near])
    assert max(calls) <= 1000  # chunked
    if isinstance(resolution, int) and resolution >= 64:
        assert sum(calls) < 0.6 * dense.size  # the far field is skipped


def test_grid_indexing_is_xyz() -> None:
    volume = sample_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], ((0, 0, 0), (1, 2, 3)), (2, 3, 4))
    assert volume[1, 0, 0] == pytest.approx(1.0) and volume[0, 2, 0] == pytest.approx(20.0)
    assert volume[0, 0, 3] == pytest.approx(300.0)


def test_sphere_mesh_is_accurate_and_faces_point_outwards() -> None:
    mesh = extract_mesh(lambda p: np.linalg.norm(p, axis=1) - 0.5, resolution=64, lipschitz=1.0)
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5).max() < 2e-3
    shape = trimesh.Trimesh(mesh.vertices, mesh.faces)
    assert shape.is_watertight and shape.volume == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.01)


def test_density_field_inside_above_the_level() -> None:
    density = extract_mesh(lambda p: 10.0 * np.exp(-8.0 * (p**2).sum(axis=1)), resolution=48, level=5.0, inside="above")
    radius = np.sqrt(np.log(2.0) / 8.0)
    assert np.abs(np.linalg.norm(density.vertices, axis=1) - radius).max() < 5e-3
    assert trimesh.Trimesh(density.vertices, density.faces).volume > 0  # outward winding


def test_no_crossing_gives_an_empty_mesh_that_is_not_written(tmp_path: Path) -> None:
    mesh = extract_mesh(lambda p: np.ones(len(p)), resolution=16)
    assert len(mesh.faces) == 0
    with pytest.raises(InrkitError, match="empty"):
        write_mesh(tmp_path / "empty.ply", mesh.vertices, mesh.faces)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl", ".glb"])
def test_write_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    colours = np.random.default_rng(0).random((len(sphere.vertices), 3))
    path = write_mesh(tmp_path / f"m{suffix}", sphere.vertices, sphere.faces, vertex_colors=colours)
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(sphere.faces)
    assert loaded.bounds == pytest.approx(sphere.bounds, abs=1e-5)
    if suffix == ".ply":
        expected = np.round(colours * 255).astype(np.uint8)
        np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], expected)
    with pytest.raises(InrkitError, match="must end in"):
        write_mesh(tmp_path / "m.fbx", sphere.vertices, sphere.faces)


def test_shape_metrics_on_known_offsets() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=5)
    rng = np.random.default_rng(0)
    points, normals = sample_surface(np.asarray(sphere.vertices), np.asarray(sphere.faces), 20_000, rng)
    same = surface_distances(points, normals, points, normals)
    assert same["chamfer_l1"] == 0.0 and same["normal_consistency"] == pytest.approx(1.0) and same["fscore"] == 1.0
    shifted = surface_distances(points * 1.02, normals, points, normals, threshold=0.01)
    assert shifted["chamfer_l1"] == pytest.approx(0.02, rel=0.05)
    assert shifted["chamfer_l2"] == pytest.approx(0.02**2, rel=0.1)
    assert shifted["fscore"] < 0.05
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[:2], b[1:3] = True, True
    assert iou(a, b) == pytest.approx(1 / 3)
