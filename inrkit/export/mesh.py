"""Meshes from implicit functions: chunked marching cubes (scikit-image) and writing (trimesh).

Example:
    >>> import numpy as np
    >>> sphere = lambda p: 0.5 - np.linalg.norm(p, axis=1)          # positive inside
    >>> vertices, faces = extract_mesh(sphere, ([-1, -1, -1], [1, 1, 1]), resolution=32, level=0.0)
    >>> bool(np.allclose(np.linalg.norm(vertices, axis=1), 0.5, atol=0.02))
    True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError

MESH_SUFFIXES = (".ply", ".obj", ".glb", ".stl", ".off")


def sample_grid(fn: Callable[[np.ndarray], np.ndarray], bounds: tuple[Sequence[float], Sequence[float]],
                resolution: int, chunk: int = 1 << 18) -> np.ndarray:
    """``fn`` on a ``resolution³`` lattice spanning ``bounds = (low (3,), high (3,))`` inclusive → ``(R, R, R)`` float32.

    Axis order ``[i, j, k]`` ↔ ``(x, y, z)``; ``fn`` maps points ``(N, 3)`` to values ``(N,)`` and is
    called on at most ``chunk`` points at a time (whole z-columns of x-y slabs).
    """
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    axes = [np.linspace(low[d], high[d], resolution) for d in range(3)]
    volume = np.empty((resolution, resolution, resolution), dtype=np.float32)
    rows_per_chunk = max(1, chunk // (resolution * resolution))
    for start in range(0, resolution, rows_per_chunk):
        xs = axes[0][start:start + rows_per_chunk]
        grid = np.stack(np.meshgrid(xs, axes[1], axes[2], indexing="ij"), axis=-1).reshape(-1, 3)
        volume[start:start + len(xs)] = np.asarray(fn(grid), dtype=np.float32).reshape(len(xs), resolution, resolution)
    return volume


def extract_mesh(fn: Callable[[np.ndarray], np.ndarray], bounds: tuple[Sequence[float], Sequence[float]],
                 resolution: int = 256, level: float = 0.0, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the ``level`` set of ``fn`` inside ``bounds``: ``vertices (V, 3)`` float64, ``faces (F, 3)`` int.

    Faces are oriented so that normals point towards *decreasing* ``fn`` (outwards for a density or
    occupancy; negate an SDF first, or pass ``lambda p: -sdf(p)``).
    """
    from skimage.measure import marching_cubes

    if resolution < 2:
        raise InrkitError(f"mesh resolution must be at least 2, got {resolution}")
    volume = sample_grid(fn, bounds, resolution, chunk)
    if not np.isfinite(volume).all():
        raise InrkitError("cannot extract a mesh: the field has NaN or infinite values")
    if not volume.min() < level < volume.max():
        raise InrkitError(f"cannot extract a mesh: no surface at level {level:g} (values span "
                          f"{volume.min():.4g} .. {volume.max():.4g})")
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    spacing = (high - low) / (resolution - 1)
    vertices, faces, _, _ = marching_cubes(volume, level=level, spacing=tuple(spacing), gradient_direction="ascent")
    return vertices + low, faces.astype(np.int64)


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Write a triangle mesh (PLY, OBJ, GLB, STL, OFF by suffix), atomically; ``colors (V, 3)`` in [0, 1] per vertex."""
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InrkitError(f"cannot write mesh {path}: unsupported suffix {suffix or '(none)'!r}; use {' '.join(MESH_SUFFIXES)}")
    vertex_colors = None
    if colors is not None:
        rgb = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
        vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, vertex_colors=vertex_colors, process=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        mesh.export(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
