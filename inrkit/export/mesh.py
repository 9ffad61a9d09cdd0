"""Meshes from scalar fields: chunked grid evaluation, marching cubes (scikit-image), mesh files (trimesh).

Interim helper of the radiance-field issue, written to the interface of the SDF issue's exporter
(``extract_mesh(f, box, resolution, level, inside, lipschitz, chunk) -> Mesh``, ``write_mesh``) so
that the two reconcile by keeping that one; ``lipschitz`` (its narrow-band skipping) is not
implemented here, every grid point is evaluated.

Example (a sphere of radius 0.5):
    >>> import numpy as np
    >>> mesh = extract_mesh(lambda p: np.linalg.norm(p, axis=1) - 0.5, resolution=64)
    >>> float(np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5).max()) < 0.01
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes

MESH_WRITE_SUFFIXES = (".ply", ".obj", ".stl", ".glb")
CHUNK_POINTS = 1 << 18
INSIDE = ("below", "above")

ScalarFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class Mesh:
    """Triangles ``faces (F, 3)`` int64 over ``vertices (V, 3)`` float32; optional ``vertex_colors (V, 3|4)``."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None


def sample_grid(f: ScalarFunction, box: tuple[Sequence[float], Sequence[float]], resolution: int,
                chunk: int = CHUNK_POINTS) -> np.ndarray:
    """``f`` on a ``resolution³`` lattice spanning ``box = (low (3,), high (3,))`` inclusive → ``(R, R, R)`` float32.

    Axis order ``[i, j, k]`` ↔ ``(x, y, z)``; ``f`` maps float32 points ``(N, 3)`` to ``(N,)`` and
    sees at most about ``chunk`` points at a time (whole y-z slabs).
    """
    low, high = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    axes = [np.linspace(low[d], high[d], resolution, dtype=np.float32) for d in range(3)]
    volume = np.empty((resolution, resolution, resolution), dtype=np.float32)
    slabs = max(1, chunk // (resolution * resolution))
    for start in range(0, resolution, slabs):
        xs = axes[0][start:start + slabs]
        points = np.stack(np.meshgrid(xs, axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 3)
        volume[start:start + len(xs)] = np.asarray(f(points), dtype=np.float32).reshape(len(xs), resolution, resolution)
    return volume


def marching_cubes(volume: np.ndarray, box: tuple[Sequence[float], Sequence[float]], level: float = 0.0,
                   inside: str = "below") -> Mesh:
    """Triangulate ``{f = level}`` of ``volume`` spanning ``box``; faces wind outwards.

    ``inside="below"`` (signed distance: negative inside) or ``"above"`` (density, occupancy). No
    crossing gives an empty mesh.
    """
    from skimage import measure

    if inside not in INSIDE:
        raise InrkitError(f"inside must be one of {', '.join(INSIDE)}, got {inside!r}")
    if not np.isfinite(volume).all():
        raise InrkitError("cannot extract a mesh: the field has NaN or infinite values")
    low, high = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    if not volume.min() < level < volume.max():
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
    spacing = tuple((high - low) / (np.asarray(volume.shape) - 1))
    vertices, faces, _, _ = measure.marching_cubes(volume, level, spacing=spacing, allow_degenerate=False,
                                                   gradient_direction="descent" if inside == "below" else "ascent")
    return Mesh((vertices + low).astype(np.float32), faces.astype(np.int64))


def extract_mesh(f: ScalarFunction, box: tuple[Sequence[float], Sequence[float]] = ((-1.0,) * 3, (1.0,) * 3),
                 resolution: int = 256, level: float = 0.0, inside: str = "below", lipschitz: float | None = None,
                 chunk: int = CHUNK_POINTS) -> Mesh:
    """Marching cubes of ``{f = level}`` over ``box`` at ``resolution`` points per axis (``lipschitz`` is ignored here)."""
    if resolution < 2:
        raise InrkitError(f"mesh resolution must be at least 2, got {resolution}")
    return marching_cubes(sample_grid(f, box, resolution, chunk), box, level, inside)


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray | None = None) -> Path:
    """Write PLY (binary), OBJ, STL or GLB atomically; ``vertex_colors (V, 3|4)`` uint8 or float in [0, 1]."""
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_WRITE_SUFFIXES:
        raise InrkitError(f"cannot write {path}: mesh files must end in {', '.join(MESH_WRITE_SUFFIXES)}")
    if len(faces) == 0:
        raise InrkitError(f"not writing {path}: the mesh is empty (no surface at that level in the box)")
    colors = None
    if vertex_colors is not None:
        colors = np.asarray(vertex_colors)
        if colors.dtype != np.uint8:
            colors = np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64),
                           vertex_colors=colors, process=False)
    data = mesh.export(file_type=suffix[1:])
    atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode())
    return path
