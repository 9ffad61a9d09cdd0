"""Camera pose refinement (BARF, Lin et al. ICCV 2021; ``chenhsuanlin/bundle-adjusting-NeRF``).

* **se(3) exponential map** (:func:`se3_exp`): ``ξ = (ω, u) ∈ R⁶``, ``θ = |ω|``, ``W = [ω]×``::

      R = I + A·W + B·W²,   V = I + B·W + C·W²,   exp(ξ) = [[R, V·u], [0, 1]]
      A = sin θ/θ,   B = (1 − cos θ)/θ²,   C = (θ − sin θ)/θ³

  (Rodrigues; ``A, B, C`` by their Taylor series below ``θ = 0.1`` rad, so the map and its
  gradient are exact at ``ξ = 0``: ``exp(0) = I``).
* **Correction** (:class:`PoseCorrection`): a learnable ``ξ_i`` per training camera, zero at the start,
  composed on the world side as BARF does (``camera.pose.compose([pose_refine, pose])``: a rigid
  motion of the world frame), ``c2w_i ← exp(ξ_i)·c2w_i``. A world ray ``(o, d)`` of camera ``i``
  then becomes ``(R_i·o + t_i, R_i·d)``, whatever the camera model. Its optimiser group is BARF's:
  Adam (β 0.9/0.999, ε 10⁻⁸), learning rate ``1e-3 → 1e-5`` exponentially over the run.
* **Perturbation** (:func:`perturb_poses`): ``c2w ← exp(ν)·c2w`` with ``ν = (ω, u)``, ``ω ~ N(0, σ_r²I₃)``,
  ``u ~ N(0, σ_t²I₃)``, ``σ_r = rot/√3``, ``σ_t = trans/√3``, so ``rot`` (radians) and ``trans`` are the RMS
  rotation angle and translation length. BARF's Blender noise ``N(0, 0.15²I₆)`` is ``rot = 0.15√3`` = 14.9°,
  ``trans = 0.26``.
* **Alignment** (:func:`procrustes`, BARF's ``prealign_cameras``): the similarity ``x_ref = s·R·x + t`` taking
  the estimated camera centres onto the reference ones: centroids ``μ``, RMS radii ``r``, ``s = r_ref/r_est``,
  ``R = U·diag(1, 1, det(UVᵀ))·Vᵀ`` from the SVD ``UΣVᵀ`` of ``Σ_i x̂_ref,i·x̂_est,iᵀ`` (normalised centred
  centres; the determinant term is Umeyama's reflection guard; BARF flips a row of ``R`` instead).
* **Errors** (:func:`pose_errors`, BARF's ``evaluate_camera_alignment``): per camera, the angle of
  ``R_est·R_refᵀ`` and ``|t_est − t_ref|`` of the **world-to-camera** translations ``t = −Rᵀc``
  (``R``: camera-to-world rotation, ``c``: centre), after alignment; in scene units.

Example:
    >>> torch.allclose(se3_exp(torch.zeros(6)), torch.eye(4))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from inrkit.errors import InrkitError

POSE_LR = 1e-3  # BARF's lr_pose ...
POSE_LR_FINAL = 1e-5  # ... and lr_pose_end (ExponentialLR over the run)
POSE_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, which BARF's pose optimiser uses
POSE_EPS = 1e-8
TAYLOR_BELOW = 0.1  # rad: A, B, C from their series below this angle (error < 1e-12 with the terms kept)


def skew(w: torch.Tensor) -> torch.Tensor:
    """``[w]× (..., 3, 3)`` of ``w (..., 3)``: ``[w]×·v = w × v``."""
    zero = torch.zeros_like(w[..., 0])
    x, y, z = w.unbind(-1)
    return torch.stack((torch.stack((zero, -z, y), -1), torch.stack((z, zero, -x), -1),
                        torch.stack((-y, x, zero), -1)), -2)


def _coefficients(theta_squared: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A = sin θ/θ``, ``B = (1 − cos θ)/θ²``, ``C = (θ − sin θ)/θ³`` of ``θ² = |ω|²``, by their Taylor series near 0
    (no square root of 0 is differentiated, so the gradient at ``ω = 0`` is exact)."""
    t2 = theta_squared
    small = t2 < TAYLOR_BELOW**2
    t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))  # keeps the closed forms (and gradients) finite
    a = torch.where(small, 1 - t2 / 6 * (1 - t2 / 20 * (1 - t2 / 42)), torch.sin(t) / t)
    b = torch.where(small, 0.5 * (1 - t2 / 12 * (1 - t2 / 30 * (1 - t2 / 56))), (1 - torch.cos(t)) / (t * t))
    c = torch.where(small, (1 - t2 / 20 * (1 - t2 / 42 * (1 - t2 / 72))) / 6, (t - torch.sin(t)) / (t * t * t))
    return a, b, c


def se3_exp(xi: torch.Tensor) -> torch.Tensor:
    """``exp(ξ) (..., 4, 4)`` of ``ξ = (ω, u) (..., 6)`` (formula in the module docstring)."""
    w, u = xi[..., :3], xi[..., 3:]
    a, b, c = _coefficients((w * w).sum(-1)[..., None, None])
    wx = skew(w)
    wx2 = wx @ wx
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    rotation = eye + a * wx + b * wx2
    translation = ((eye + b * wx + c * wx2) @ u[..., None])[..., 0]
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=xi.dtype, device=xi.device).expand(*xi.shape[:-1], 1, 4)
    return torch.cat((torch.cat((rotation, translation[..., None]), -1), bottom), -2)


def rotation_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of ``r1·r2ᵀ`` for rotations ``(..., 3, 3)``: ``arccos((tr − 1)/2)``."""
    relative = r1 @ r2.transpose(-1, -2)
    cosine = (relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cosine.clamp(-1.0, 1.0))


def perturb_poses(c2w: torch.Tensor, rotation: float, translation: float, seed: int) -> torch.Tensor:
    """``exp(ν_i)·c2w_i`` for poses ``(N, 4, 4)`` with seeded se(3) noise ``ν_i`` (module docstring), float64.

    ``rotation`` is the RMS angle in radians and ``translation`` the RMS length in scene units.
    """
    noise = np.random.default_rng(seed).standard_normal((c2w.shape[0], 6))
    scales = np.array([rotation] * 3 + [translation] * 3) / math.sqrt(3)
    return se3_exp(torch.from_numpy(noise * scales)) @ c2w.double()


@dataclass(frozen=True)
class Similarity:
    """``x ↦ scale·rotation·x + translation`` (a Sim(3) of world points); ``rotation (3, 3)``, ``translation (3,)``."""

    scale: float
    rotation: torch.Tensor
    translation: torch.Tensor

    def apply(self, c2w: torch.Tensor) -> torch.Tensor:
        """Camera poses ``(N, 4, 4)`` moved by the similarity: ``[R·R_c | s·R·c + t]`` (the scale moves centres only)."""
        moved = c2w.clone()
        moved[..., :3, :3] = self.rotation @ c2w[..., :3, :3]
        moved[..., :3, 3] = self.scale * c2w[..., :3, 3] @ self.rotation.T + self.translation
        return moved

    def inverse(self) -> Similarity:
        """``x ↦ Rᵀ(x − t)/s``."""
        rotation = self.rotation.T
        return Similarity(1.0 / self.scale, rotation, -(rotation @ self.translation) / self.scale)


def procrustes(estimate: torch.Tensor, reference: torch.Tensor) -> Similarity:
    """The similarity taking points ``estimate (N, 3)`` onto ``reference (N, 3)`` (module docstring), float64."""
    estimate, reference = estimate.double(), reference.double()
    mean_est, mean_ref = estimate.mean(0), reference.mean(0)
    centred_est, centred_ref = estimate - mean_est, reference - mean_ref
    radius_est = centred_est.square().sum(1).mean().sqrt()
    radius_ref = centred_ref.square().sum(1).mean().sqrt()
    if estimate.shape[0] < 3 or float(radius_est) < 1e-9 or float(radius_ref) < 1e-9:
        raise InrkitError("cannot align camera poses: fewer than 3 cameras or all centres at one point")
    u, _, vt = torch.linalg.svd((centred_ref / radius_ref).T @ (centred_est / radius_est))
    sign = torch.ones(3, dtype=torch.float64)
    sign[2] = torch.sign(torch.linalg.det(u @ vt))
    rotation = u @ torch.diag(sign) @ vt
    scale = float(radius_ref / radius_est)
    return Similarity(scale, rotation, mean_ref - scale * rotation @ mean_est)


def pose_errors(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per camera: rotation error (degrees) and world-to-camera translation error (scene units) of aligned poses
    ``estimate`` against ``reference`` (both ``(N, 4, 4)`` camera-to-world; module docstring)."""
    r_est, r_ref = estimate[:, :3, :3].double(), reference[:, :3, :3].double()
    t_est = -(r_est.transpose(1, 2) @ estimate[:, :3, 3:].double())[..., 0]
    t_ref = -(r_ref.transpose(1, 2) @ reference[:, :3, 3:].double())[..., 0]
    return torch.rad2deg(rotation_angle(r_est, r_ref)), torch.linalg.vector_norm(t_est - t_ref, dim=1)


class PoseCorrection(nn.Module):
    """A learnable se(3) correction ``ξ (N, 6)`` per training camera, zero at the start (module docstring).

    Its parameters train in their own optimiser group (:meth:`optimizer_group`): BARF's Adam with the
    learning rate ``lr → lr_final`` exponentially over the run.
    """

    def __init__(self, n_cameras: int, lr: float = POSE_LR, lr_final: float = POSE_LR_FINAL) -> None:
        super().__init__()
        self.se3 = nn.Parameter(torch.zeros(n_cameras, 6))
        self.lr, self.lr_final = lr, lr_final

    def optimizer_group(self) -> dict:
        """This module's Adam group: parameters, BARF's betas/ε, no weight decay, and the exponential schedule
        ``lr(p) = lr_initial·(lr_final/lr_initial)^p`` over training progress ``p`` (read by the Trainer)."""
        return {"params": [self.se3], "lr": self.lr, "lr_initial": self.lr, "lr_final": self.lr_final,
                "betas": POSE_BETAS, "eps": POSE_EPS, "l2_reg": 0.0, "weight_decay": 0.0, "matrix": True}

    def matrices(self) -> torch.Tensor:
        """``exp(ξ_i) (N, 4, 4)``."""
        return se3_exp(self.se3)

    def correct(self, views: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rays ``(R, 3)`` of cameras ``views (R,)`` moved by their corrections: ``(R·o + t, R·d)`` (differentiable)."""
        motion = se3_exp(self.se3[views])
        rotation, translation = motion[:, :3, :3], motion[:, :3, 3]
        return (torch.einsum("rij,rj->ri", rotation, origins) + translation,
                torch.einsum("rij,rj->ri", rotation, directions))

    def refine(self, c2w: torch.Tensor) -> torch.Tensor:
        """Corrected poses ``exp(ξ_i)·c2w_i`` of the initial poses ``c2w (N, 4, 4)``, float64, no gradient."""
        with torch.no_grad():
            return se3_exp(self.se3.detach().double().cpu()) @ c2w.double().cpu()
