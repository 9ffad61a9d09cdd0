"""Pinhole cameras with OpenCV radial-tangential distortion, and the rays through their pixels.

Conventions (Blender / NeRF-synthetic / instant-ngp ``transforms.json``):

* ``c2w`` is the 4×4 camera-to-world matrix; the camera looks down its **−z** axis with **+y up**
  and **+x right** (OpenGL). Image rows grow downwards (OpenCV pixel coordinates).
* Pixel ``(row i, column j)`` has its centre at ``(u, v) = (j + ½, i + ½)``; its normalised image
  point is ``x = (u − c_x)/f_x``, ``y = (v − c_y)/f_y`` (after undistortion), and the ray direction
  is ``R · (x, −y, −1)`` normalised to unit length, from the origin ``c2w[:3, 3]``.
* Distortion (OpenCV, ``k1 k2 p1 p2``) maps an undistorted point ``(x, y)``, ``r² = x² + y²``, to
  ``x_d = x(1 + k1 r² + k2 r⁴) + 2 p1 x y + p2 (r² + 2x²)`` and
  ``y_d = y(1 + k1 r² + k2 r⁴) + p1 (r² + 2y²) + 2 p2 x y``. Rays need the inverse, found by
  Newton iterations (:func:`undistort`).

Example:
    >>> cam = Camera.from_fov(np.eye(4), width=4, height=4, fov_x=math.pi / 2)
    >>> origins, directions = camera_rays(cam)
    >>> directions.shape
    torch.Size([16, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from inrkit.errors import InrkitError


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: pose ``c2w (4, 4)``, focal lengths and principal point in pixels, distortion."""

    c2w: np.ndarray
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))  # k1 k2 p1 p2

    @classmethod
    def from_fov(cls, c2w: np.ndarray, width: int, height: int, fov_x: float) -> Camera:
        """Square pixels, centred principal point, horizontal field of view ``fov_x`` in radians."""
        focal = 0.5 * width / math.tan(0.5 * fov_x)
        return cls(np.asarray(c2w, dtype=np.float64), width, height, focal, focal, width / 2, height / 2)

    def scaled(self, factor: int) -> Camera:
        """The same camera for an image downscaled by an integer ``factor`` (``W // factor`` columns)."""
        width, height = self.width // factor, self.height // factor
        sx, sy = width / self.width, height / self.height
        return replace(self, width=width, height=height, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx,
                       cy=self.cy * sy)

    @property
    def has_distortion(self) -> bool:
        return any(value != 0.0 for value in self.distortion)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (instant-ngp key names)."""
        k1, k2, p1, p2 = self.distortion
        return {"transform_matrix": np.asarray(self.c2w).tolist(), "w": self.width, "h": self.height,
                "fl_x": self.fx, "fl_y": self.fy, "cx": self.cx, "cy": self.cy, "k1": k1, "k2": k2, "p1": p1, "p2": p2}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Camera:
        return cls(np.asarray(data["transform_matrix"], dtype=np.float64), int(data["w"]), int(data["h"]),
                   float(data["fl_x"]), float(data["fl_y"]), float(data["cx"]), float(data["cy"]),
                   (float(data["k1"]), float(data["k2"]), float(data["p1"]), float(data["p2"])))


def check_pose(c2w: np.ndarray, where: str) -> np.ndarray:
    """Validate a camera-to-world matrix: 3×4 or 4×4, finite, invertible rotation; returns it as 4×4 float64."""
    matrix = np.asarray(c2w, dtype=np.float64)
    if matrix.shape not in ((3, 4), (4, 4)):
        raise InrkitError(f"{where}: transform_matrix must be 4x4 (or 3x4), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise InrkitError(f"{where}: transform_matrix contains NaN or infinite values")
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if abs(np.linalg.det(matrix[:3, :3])) < 1e-6:
        raise InrkitError(f"{where}: transform_matrix is not invertible (its rotation has determinant ~0)")
    return matrix


def distort(x: torch.Tensor, y: torch.Tensor, k: tuple[float, float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """OpenCV radial-tangential distortion of normalised points (formula in the module docstring)."""
    k1, k2, p1, p2 = k
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2
    return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)


def undistort(xd: torch.Tensor, yd: torch.Tensor, k: tuple[float, float, float, float],
              iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert :func:`distort` by Newton's method: solve ``distort(x, y) = (x_d, y_d)`` from ``(x_d, y_d)``.

    Each iteration solves the 2×2 linear system ``J · δ = distort(x, y) − (x_d, y_d)`` in closed form.
    """
    k1, k2, p1, p2 = k
    x, y = xd.clone(), yd.clone()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2
        d_radial = 2 * k1 + 4 * k2 * r2  # d(radial)/d(r²) · 2
        fx_, fy_ = distort(x, y, k)
        ex, ey = fx_ - xd, fy_ - yd
        j_xx = radial + x * x * d_radial + 2 * p1 * y + 6 * p2 * x
        j_xy = x * y * d_radial + 2 * p1 * x + 2 * p2 * y
        j_yx = x * y * d_radial + 2 * p1 * x + 2 * p2 * y
        j_yy = radial + y * y * d_radial + 6 * p1 * y + 2 * p2 * x
        det = j_xx * j_yy - j_xy * j_yx
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        x = x - (j_yy * ex - j_xy * ey) / det
        y = y - (j_xx * ey - j_yx * ex) / det
    return x, y


def _camera_directions(camera: Camera, rows: torch.Tensor, cols: torch.Tensor, du: float | torch.Tensor,
                       dv: float | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Camera-space directions ``(x, −y, −1)`` (not normalised) through pixel ``(rows, cols)`` + ``(dv, du)``."""
    x = (cols.to(dtype) + du - camera.cx) / camera.fx
    y = (rows.to(dtype) + dv - camera.cy) / camera.fy
    if camera.has_distortion:
        x, y = undistort(x, y, camera.distortion)
    return torch.stack((x, -y, -torch.ones_like(x)), dim=1)


def pixel_rays(camera: Camera, rows: torch.Tensor, cols: torch.Tensor,
               offsets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through pixels ``(rows[n], cols[n])`` of ``camera``: ``origins (N, 3)``, unit ``directions (N, 3)``.

    ``offsets (N, 2)`` in [0, 1) replace the pixel-centre offset ½ (for jittered sampling). Float32,
    on the device of ``rows``.
    """
    device = rows.device
    du, dv = (0.5, 0.5) if offsets is None else (offsets[:, 0], offsets[:, 1])
    local = _camera_directions(camera, rows, cols, du, dv, torch.float64)
    c2w = torch.as_tensor(np.asarray(camera.c2w), dtype=torch.float64, device=device)
    directions = local @ c2w[:3, :3].T
    directions = directions / directions.norm(dim=1, keepdim=True)
    origins = c2w[:3, 3].expand_as(directions)
    return origins.float().contiguous(), directions.float().contiguous()


def camera_rays(camera: Camera, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through every pixel centre, row-major: ``origins, directions (H·W, 3)``."""
    rows, cols = torch.meshgrid(torch.arange(camera.height, device=device), torch.arange(camera.width, device=device),
                                indexing="ij")
    return pixel_rays(camera, rows.reshape(-1), cols.reshape(-1))


def view_rays(cameras: list[Camera], c2w: torch.Tensor, views: torch.Tensor, rows: torch.Tensor,
              cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through the pixel centres ``(rows[n], cols[n])`` of ``cameras[views[n]]``, float32.

    ``c2w (V, 4, 4)`` float32 holds the cameras' poses on the device of ``views``. When all the
    cameras share one undistorted pinhole model the rays are made in one float32 batch; otherwise
    each view goes through :func:`pixel_rays`.
    """
    if any(c.has_distortion for c in cameras) or len({(c.fx, c.fy, c.cx, c.cy) for c in cameras}) > 1:
        origins = torch.empty(len(views), 3, device=views.device)
        directions = torch.empty_like(origins)
        for index in torch.unique(views).tolist():
            mask = views == index
            origins[mask], directions[mask] = pixel_rays(cameras[index], rows[mask], cols[mask])
        return origins, directions
    local = _camera_directions(cameras[0], rows, cols, 0.5, 0.5, torch.float32)
    directions = torch.einsum("nij,nj->ni", c2w[views, :3, :3], local)
    directions = directions / directions.norm(dim=1, keepdim=True)
    return c2w[views, :3, 3], directions


def look_at(eye: np.ndarray, target: np.ndarray | None = None, up: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world matrix (OpenGL axes) at ``eye`` looking at ``target`` (default 0) with ``up`` (default +z) up."""
    eye = np.asarray(eye, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    back = eye - (np.zeros(3) if target is None else np.asarray(target, dtype=np.float64))
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-8:  # looking straight along ``up``
        right = np.cross(np.array([0.0, 1.0, 0.0]), back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


def orbit_cameras(reference: Camera, n_frames: int, radius: float | None = None, elevation: float = 30.0,
                  center: np.ndarray | None = None, up: np.ndarray | None = None) -> list[Camera]:
    """A turntable: ``n_frames`` cameras on a circle around ``center`` (axis ``up``), intrinsics of ``reference``.

    ``radius`` defaults to the reference camera's distance from ``center``; ``elevation`` in degrees.
    """
    center = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64) / np.linalg.norm(up)
    radius = float(np.linalg.norm(reference.c2w[:3, 3] - center)) if radius is None else radius
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    axis_a = np.cross(up, helper)
    axis_a /= np.linalg.norm(axis_a)
    axis_b = np.cross(up, axis_a)
    elev = math.radians(elevation)
    cameras = []
    for index in range(n_frames):
        angle = 2 * math.pi * index / n_frames
        eye = center + radius * (math.cos(elev) * (math.cos(angle) * axis_a + math.sin(angle) * axis_b)
                                 + math.sin(elev) * up)
        cameras.append(replace(reference, c2w=look_at(eye, center, up)))
    return cameras
