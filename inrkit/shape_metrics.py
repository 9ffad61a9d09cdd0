"""Shape metrics between a reconstructed surface and a reference: Chamfer, normal consistency, F-score, IoU.

Surfaces are compared through point samples with normals (``points (N, 3)``, ``normals (N, 3)``),
as in Occupancy Networks / ConvONet:

* accuracy ``d(p→Q) = min_q ‖p − q‖`` for each predicted point, completeness ``d(q→P)`` for each
  reference point;
* **Chamfer-L1** ``= ½(mean d(p→Q) + mean d(q→P))``; **Chamfer-L2** ``= ½(mean d² + mean d²)``;
* **normal consistency** ``= ½(mean |n_p·n_q(p)| + mean |n_q·n_p(q)|)`` with the normal of the nearest point;
* **F-score@τ** ``= 2PR/(P + R)`` with precision ``P = frac(d(p→Q) < τ)`` and recall ``R = frac(d(q→P) < τ)``;
* **IoU** of two occupancy grids ``|A ∧ B| / |A ∨ B|`` (the WIRE/SL²A occupancy protocol: voxel
  centres of a grid over the shape's tight bounding box).
"""

from __future__ import annotations

import numpy as np


def surface_distances(pred_points: np.ndarray, pred_normals: np.ndarray, ref_points: np.ndarray,
                      ref_normals: np.ndarray, threshold: float = 0.01) -> dict[str, float]:
    """Chamfer-L1/L2, normal consistency and F-score@``threshold`` between two oriented point samples."""
    from scipy.spatial import cKDTree

    to_ref, nearest_ref = cKDTree(ref_points).query(pred_points, workers=-1)
    to_pred, nearest_pred = cKDTree(pred_points).query(ref_points, workers=-1)
    cos_pred = np.abs(np.einsum("ni,ni->n", pred_normals, ref_normals[nearest_ref]))
    cos_ref = np.abs(np.einsum("ni,ni->n", ref_normals, pred_normals[nearest_pred]))
    precision = float((to_ref < threshold).mean())
    recall = float((to_pred < threshold).mean())
    return {
        "chamfer_l1": float(0.5 * (to_ref.mean() + to_pred.mean())),
        "chamfer_l2": float(0.5 * ((to_ref**2).mean() + (to_pred**2).mean())),
        "normal_consistency": float(0.5 * (cos_pred.mean() + cos_ref.mean())),
        "fscore": 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
    }


def iou(occupied_a: np.ndarray, occupied_b: np.ndarray) -> float:
    """``|A ∧ B| / |A ∨ B|`` of two boolean arrays of one shape (1.0 when both are empty)."""
    union = np.logical_or(occupied_a, occupied_b).sum()
    return 1.0 if union == 0 else float(np.logical_and(occupied_a, occupied_b).sum() / union)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniformly by area on a triangle mesh and their face normals: ``(n, 3)``, ``(n, 3)``.

    A face is drawn with probability proportional to its area, then a point by the square-root
    barycentric rule ``(1 − √u)a + √u(1 − v)b + √u·v·c``.
    """
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=1)
    if not area.sum() > 0:
        raise ValueError("the mesh has zero surface area")
    face = rng.choice(len(faces), size=n, p=area / area.sum())
    u, v = np.sqrt(rng.random((n, 1))), rng.random((n, 1))
    points = (1 - u) * a[face] + u * (1 - v) * b[face] + u * v * c[face]
    normals = cross[face] / np.maximum(area[face], 1e-30)[:, None]
    return points, normals
