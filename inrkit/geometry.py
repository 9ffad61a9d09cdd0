"""Meshes from scalar fields: chunked grid evaluation and marching cubes.

:func:`sample_grid` evaluates any callable ``f(points (N, 3) float32) -> values (N,)`` on a regular
grid over an axis-aligned box, in chunks, so that peak memory is the ``float32`` volume (512 MB at
512³) plus one chunk. When ``f`` is a distance-like field with a known Lipschitz bound ``L``
(``|f(a) − f(b)| ≤ L·|a − b|``, e.g. ``L ≈ 1`` for a signed distance field), a coarse-to-fine pass
skips blocks that provably contain no level crossing: a block of diagonal ``d`` whose corner
values all lie on one side of ``level`` with ``min |f − level| > L·d`` is filled with that
corner value instead of being evaluated, which cuts the work at 512³ to a thin band around the
surface. Density fields (NeRF) pass ``lipschitz=None`` and are evaluated everywhere.

:func:`extract_mesh` runs scikit-image's marching cubes on that volume; mesh files are written by
:func:`inrkit.io.meshes.write_mesh`.

Example (a sphere of radius 0.5, then a density field whose inside is *above* the level):
    >>> import numpy as np
    >>> mesh = extract_mesh(lambda p: np.linalg.norm(p, axis=1) - 0.5, resolution=64, lipschitz=1.0)
    >>> float(np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5).max()) < 0.01
    True
    >>> density = extract_mesh(lambda p: 10 * np.exp(-4 * (p ** 2).sum(1)), resolution=32, level=5.0, inside="above")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inrkit.errors import InrkitError

CHUNK_POINTS = 1 << 18


INSIDE = ("below", "above")


ScalarFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class Mesh:
    """Triangles ``faces (F, 3)`` int64 over ``vertices (V, 3)`` float32; optional ``vertex_colors (V, 3|4)``."""

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None


def _axis_points(box: tuple[np.ndarray, np.ndarray], shape: tuple[int, int, int]) -> list[np.ndarray]:
    return [np.linspace(box[0][a], box[1][a], shape[a], dtype=np.float64) for a in range(3)]


def _evaluate(f: ScalarFunction, axes: list[np.ndarray], index: np.ndarray, chunk: int) -> np.ndarray:
    """``f`` at grid points ``index (N, 3)`` (integer indices into ``axes``), chunk by chunk: ``(N,)`` float32."""
    out = np.empty(len(index), dtype=np.float32)
    for start in range(0, len(index), chunk):
        part = index[start : start + chunk]
        points = np.stack([axes[a][part[:, a]] for a in range(3)], axis=1).astype(np.float32)
        values = np.asarray(f(points), dtype=np.float32).reshape(-1)
        if values.shape[0] != len(part):
            raise InrkitError(f"the field returned {values.shape[0]} values for {len(part)} points")
        out[start : start + len(part)] = values
    return out


def _strides(shape: tuple[int, int, int]) -> list[int]:
    """Coarse-to-fine strides 16, 4, 1 (fewer for small grids): each level keeps ≥ 16 points per axis."""
    strides = [1]
    while min(shape) // (strides[-1] * 4) >= 16 and strides[-1] < 16:
        strides.append(strides[-1] * 4)
    return strides[::-1]


def _level_index(size: int, stride: int) -> np.ndarray:
    """Grid indices ``0, s, 2s, …`` plus the last index: the corners of the blocks at this stride."""
    index = np.arange(0, size, stride)
    return index if index[-1] == size - 1 else np.append(index, size - 1)


def _block_of(index: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each grid index, the (up to two) blocks between consecutive ``corners`` that contain it."""
    upper = np.clip(np.searchsorted(corners, index, side="right") - 1, 0, len(corners) - 2)
    on_corner = (corners[upper] == index) & (upper > 0)
    return upper, np.where(on_corner, upper - 1, upper)


def sample_grid(
    f: ScalarFunction,
    box: tuple[Sequence[float], Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    resolution: int | Sequence[int] = 256,
    level: float = 0.0,
    lipschitz: float | None = None,
    chunk: int = CHUNK_POINTS,
) -> np.ndarray:
    """Values of ``f`` on the grid ``linspace(box[0][a], box[1][a], resolution[a])`` per axis: ``(Rx, Ry, Rz)`` float32.

    Indexing is ``volume[i, j, k] = f(x_i, y_j, z_k)``. With ``lipschitz`` set, blocks that cannot
    contain the ``level`` set (see the module docstring) hold a constant of the right sign
    instead of the exact value: signs, and therefore occupancy and marching cubes, stay exact as
    long as ``f`` respects the bound.
    """
    low, high = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    if not (high > low).all():
        raise InrkitError(f"mesh box must have positive size, got {low.tolist()} .. {high.tolist()}")
    shape = tuple(int(r) for r in (resolution if isinstance(resolution, Sequence) else (resolution,) * 3))
    if min(shape) < 2:
        raise InrkitError(f"grid resolution must be at least 2, got {shape}")
    axes = _axis_points((low, high), shape)
    if lipschitz is None:
        index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
        return _evaluate(f, axes, index, chunk).reshape(shape)
    spacing = (high - low) / (np.asarray(shape) - 1)
    strides = _strides(shape)
    corners = [_level_index(n, strides[0]) for n in shape]
    grid = np.stack(np.meshgrid(*corners, indexing="ij"), axis=-1).reshape(-1, 3)
    values = _evaluate(f, axes, grid, chunk).reshape([len(c) for c in corners]) - level
    for stride in strides[1:]:
        fine = [_level_index(n, stride) for n in shape]
        values = _refine(f, axes, corners, values, fine, stride * 4 * np.linalg.norm(spacing) * lipschitz, level, chunk)
        corners = fine
    values += level
    return values


def _refine(f: ScalarFunction, axes: list[np.ndarray], corners: list[np.ndarray], values: np.ndarray,
            fine: list[np.ndarray], band: float, level: float, chunk: int) -> np.ndarray:
    """Values on the ``fine`` sub-grid: exact inside blocks of ``corners`` that may hold the level set, filled elsewhere.

    ``values`` are ``f − level`` at ``corners``; a block is active unless its 8 corner values share
    a sign and all exceed ``band`` in magnitude. Inactive blocks are filled with their corner
    value of smallest magnitude.
    """
    cube = [values[dx : values.shape[0] - 1 + dx, dy : values.shape[1] - 1 + dy, dz : values.shape[2] - 1 + dz]
            for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
    stacked = np.stack(cube)
    same_sign = (np.sign(stacked) == np.sign(stacked[0])).all(axis=0)
    nearest = np.abs(stacked).min(axis=0)
    active = ~same_sign | (nearest <= band)
    fill = np.sign(stacked[0]) * np.maximum(nearest, band)
    blocks = [_block_of(index, c) for index, c in zip(fine, corners, strict=True)]
    out = np.empty([len(i) for i in fine], dtype=np.float32)
    for x0 in range(0, len(fine[0]), 16):  # slabs along x keep the index temporaries small
        rows = slice(x0, x0 + 16)
        bx = (blocks[0][0][rows], blocks[0][1][rows])
        ix = np.ix_(bx[0], blocks[1][0], blocks[2][0])
        out[rows] = fill[ix]
        need = active[bx[0]] | active[bx[1]]  # a point is needed if any block holding it is active: OR axis by axis
        need = need[:, blocks[1][0]] | need[:, blocks[1][1]]
        need = need[:, :, blocks[2][0]] | need[:, :, blocks[2][1]]
        local = np.argwhere(need)
        if len(local):
            index = np.stack([fine[0][rows][local[:, 0]], fine[1][local[:, 1]], fine[2][local[:, 2]]], axis=1)
            out[rows][need] = _evaluate(f, axes, index, chunk) - level
    return out


def marching_cubes(volume: np.ndarray, box: tuple[Sequence[float], Sequence[float]], level: float = 0.0,
                   inside: str = "below") -> Mesh:
    """Triangulate ``{f = level}`` of a grid ``volume (Rx, Ry, Rz)`` spanning ``box``; faces wind outwards.

    ``inside="below"`` (signed distance: negative inside) or ``"above"`` (density, occupancy).
    An empty mesh (no crossing) has zero vertices and faces.
    """
    from skimage import measure

    if inside not in INSIDE:
        raise InrkitError(f"inside must be one of {', '.join(INSIDE)}, got {inside!r}")
    if not np.isfinite(volume).all():
        raise InrkitError("cannot extract a mesh: the field has NaN or infinite values")
    low, high = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    if not (volume.min() < level < volume.max()):
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
    spacing = tuple((high - low) / (np.asarray(volume.shape) - 1))
    vertices, faces, _, _ = measure.marching_cubes(
        volume, level, spacing=spacing, gradient_direction="descent" if inside == "below" else "ascent",
        allow_degenerate=False,
    )
    return Mesh((vertices + low).astype(np.float32), faces.astype(np.int64))


def extract_mesh(
    f: ScalarFunction,
    box: tuple[Sequence[float], Sequence[float]] = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)),
    resolution: int | Sequence[int] = 256,
    level: float = 0.0,
    inside: str = "below",
    lipschitz: float | None = None,
    chunk: int = CHUNK_POINTS,
) -> Mesh:
    """Marching cubes of ``{f = level}`` over ``box`` at ``resolution`` grid points per axis.

    ``f`` maps ``(N, 3)`` float32 points to ``(N,)`` values; see :func:`sample_grid` for
    ``lipschitz`` (pass about 1–2 for signed distances, None for densities) and
    :func:`marching_cubes` for ``inside``.
    """
    volume = sample_grid(f, box, resolution, level, lipschitz, chunk)
    return marching_cubes(volume, box, level, inside)
