"""Signed-distance ground truth and training samples for triangle meshes.

Distances are exact point–triangle distances (libigl's AABB tree). Signs come from the **fast
generalised winding number** (Barill et al. 2018, libigl): ``w(p) = Σ_f Ω_f(p)/4π`` is 1 inside a
closed surface and 0 outside, and degrades gracefully around holes (``w ≈ ½`` in the opening
itself), so open scans such as the Stanford bunny do not get sign flips along rays through their
holes, as ray-parity tests (and containment tests) do. A point is inside iff ``w > ½``.

Training samples (fractions of the pool, coordinates in the normalised frame [-1, 1]³):
1/8 exactly on the surface (distance 0), 2/8 on the surface plus N(0, 0.005²) per axis,
2/8 plus N(0, 0.02²), 1/8 plus N(0, 0.08²), and 2/8 uniform in the box: dense near the surface
where the zero level set is decided, with enough volume samples to keep the far field signed.
"""

from __future__ import annotations

import numpy as np

from inrkit.shape_metrics import sample_surface

# (fraction of the pool, jitter σ; None = uniform in the box); the fractions sum to 1.
SAMPLE_MIX: tuple[tuple[float, float | None], ...] = ((1 / 8, 0.0), (2 / 8, 0.005), (2 / 8, 0.02), (1 / 8, 0.08), (2 / 8, None))


def _arrays(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(vertices, dtype=np.float64),
            np.ascontiguousarray(faces, dtype=np.int64))


def inside(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Occupancy ``(N,)`` bool: fast generalised winding number of the mesh at ``points`` above ½."""
    import igl

    points, vertices, faces = _arrays(points, vertices, faces)
    return igl.fast_winding_number(vertices, faces, points) > 0.5


def signed_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Signed distance ``(N,)`` float64 of ``points (N, 3)`` to the mesh: negative inside (winding number > ½).

    The magnitude is the exact distance to the nearest triangle (libigl's
    ``point_mesh_squared_distance``; its fast-winding-number ``signed_distance`` mode
    approximates the magnitude too, by up to 0.3 % on a box).
    """
    import igl

    points, vertices, faces = _arrays(points, vertices, faces)
    squared, _, _ = igl.point_mesh_squared_distance(points, vertices, faces)
    return np.where(inside(points, vertices, faces), -1.0, 1.0) * np.sqrt(squared)


def edge_defects(vertices: np.ndarray, faces: np.ndarray) -> tuple[int, int]:
    """``(boundary edges, non-manifold edges)`` after welding vertices at identical positions.

    An edge used by one face is a boundary (the mesh has a hole), one used by more than two is
    non-manifold. Both are 0 for a closed 2-manifold.
    """
    _, weld = np.unique(vertices, axis=0, return_inverse=True)
    welded = weld.reshape(-1)[faces]
    edges = np.sort(welded[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum()), int((counts > 2).sum())


def training_samples(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training points ``(n, 3)`` in [-1, 1]³ (see :data:`SAMPLE_MIX`) and their signed distances ``(n,)``."""
    counts = [round(fraction * n) for fraction, _ in SAMPLE_MIX]
    counts[-1] = n - sum(counts[:-1])
    near = sum(c for c, (_, sigma) in zip(counts, SAMPLE_MIX, strict=True) if sigma is not None)
    surface, _ = sample_surface(vertices, faces, near, rng)
    parts, start = [], 0
    for count, (_, sigma) in zip(counts, SAMPLE_MIX, strict=True):
        if sigma is None:
            parts.append(rng.uniform(-1.0, 1.0, (count, 3)))
        else:
            parts.append(surface[start : start + count] + sigma * rng.standard_normal((count, 3)))
            start += count
    points = np.clip(np.concatenate(parts), -1.0, 1.0)
    distance = np.zeros(n)
    exact = counts[0]  # the first part lies on the surface
    distance[exact:] = signed_distance(points[exact:], vertices, faces)
    return points, distance
