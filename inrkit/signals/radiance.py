"""Radiance fields as a signal for the generic Trainer: rays from posed views, volume-rendered loss.

* **Batches** are random pixels of random training views (all training images live in one uint8
  tensor), as rays with their target RGBA.
* **Adaptive batch** (instant-ngp): the number of rays is rescaled after every step by
  ``target_samples / measured_samples`` (a multiple of 64 between 64 and ``target_samples``), so
  each step feeds about ``target_samples`` samples to the network whatever the grid's occupancy
  (instant-ngp's floor of 256 rays would overshoot a CPU target of 2^15 samples whenever a ray
  keeps more than 128, as the rays of an unbounded scene do early on).
  A fixed ``batch_size`` (rays) turns this off.
* **Background**: every training ray gets a random colour in [0, 1]³ behind the scene, which the
  target is composited onto too (instant-ngp's trick to force zero density in empty space); the
  evaluation composites both onto white (the NeRF-synthetic protocol).
* **Camera poses**: training rays come from the training poses, optionally perturbed by a known
  seeded se(3) noise (``pose_noise``, :func:`~inrkit.nerf.poses.perturb_poses`) while the scene's
  poses stay the reference. When the model refines poses (``model.poses``), each ray of camera ``i``
  is moved by its correction ``exp(ξ_i)`` inside the loss (so the loss reaches ``ξ``), and evaluation
  aligns the test cameras to the corrected training cameras by the similarity that takes the
  corrected camera centres onto the reference ones (BARF's Procrustes pre-alignment, applied in
  reverse to the test poses), then reports the pose errors before and after refinement.
* **Loss**: ``mse`` or ``huber``. The Huber loss (δ = 0.1, as instant-ngp) is scaled by 2δ so that it
  equals the squared error for errors below δ: ``ℓ(e) = e²`` for ``|e| < δ``, else ``2δ|e| − δ²``; the
  progress bar's live PSNR (computed from the loss) is then exact once errors are small.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import metrics
from inrkit.errors import InrkitError
from inrkit.fields.nerf_model import NerfModel
from inrkit.files import write_json
from inrkit.io.images import write_image
from inrkit.nerf.cameras import Camera, camera_rays, view_rays
from inrkit.nerf.poses import Similarity, perturb_poses, pose_errors, procrustes
from inrkit.nerf.scene import Scene, composite
from inrkit.signals.base import FINGERPRINT_POINTS, Batch, Signal

LOSSES = ("huber", "mse")
HUBER_DELTA = 0.1
BACKGROUNDS = ("random", "white", "black")
POSES_FILE = "poses.json"
RAY_GRANULARITY = 64  # the adaptive ray count is a multiple of this (instant-ngp: 256, a GPU's alignment)


@dataclass
class RayBatch(Batch):
    """``coords`` = ray origins ``(R, 3)``, ``values`` = target straight RGBA ``(R, 4)``; plus directions, backgrounds
    and the training view ``views (R,)`` of each ray."""

    directions: torch.Tensor
    background: torch.Tensor
    views: torch.Tensor


def scaled_huber(error: torch.Tensor, delta: float = HUBER_DELTA) -> torch.Tensor:
    """``e²`` for ``|e| < δ``, else ``2δ|e| − δ²`` (2δ × the Huber loss; continuous, linear tails)."""
    magnitude = error.abs()
    return torch.where(magnitude < delta, error * error, 2 * delta * magnitude - delta * delta)


@torch.no_grad()
def render_camera(model: NerfModel, camera: Camera, background: float | torch.Tensor = 1.0,
                  chunk: int | None = None) -> dict[str, np.ndarray]:
    """Render a whole view: ``rgb (H, W, 3)``, ``depth (H, W)`` (world units), ``opacity (H, W)``, numpy float32."""
    device = next(model.parameters()).device
    origins, directions = camera_rays(camera, device)
    out = model.render_rays(origins, directions, background, chunk=chunk)
    shape = (camera.height, camera.width)
    return {"rgb": out["rgb"].reshape(*shape, 3).cpu().numpy(), "depth": out["depth"].reshape(shape).cpu().numpy(),
            "opacity": out["opacity"].reshape(shape).cpu().numpy()}


def depth_image(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """8-bit grey map ``(H, W, 1)`` of the depth ``D/A`` of pixels with opacity ``A > 0.5``: the view's 2nd
    percentile of depth is white, its 98th percentile dark grey (40), empty pixels black."""
    solid = opacity > 0.5
    surface = depth / np.maximum(opacity, 1e-6)
    if not solid.any():
        return np.zeros((*depth.shape, 1), dtype=np.uint8)
    near, far = np.percentile(surface[solid], [2, 98])
    normalised = np.clip((far - surface) / max(far - near, 1e-9), 0, 1)
    return np.where(solid, np.round(40 + 215 * normalised), 0).astype(np.uint8)[:, :, None]


def evaluate_views(model: NerfModel, cameras: list[Camera], targets: list[np.ndarray], seconds: float | None = None,
                   keep_images: bool = False) -> dict[str, Any]:
    """PSNR and SSIM per view (prediction and straight-RGBA target both on white): means and per-view lists.

    With ``seconds``, views are rendered in order while the next one is expected to end within
    that wall time (at least one view); ``views`` says how many were evaluated. ``keep_images``
    adds ``images``: per evaluated view, the 8-bit colour ``(H, W, 3)`` and depth map ``(H, W, 1)``
    that :func:`write_test_renders` writes, so that outputs never render a view twice.
    """
    psnrs, ssims, images = [], [], []
    start = time.perf_counter()
    for camera, target in zip(cameras, targets, strict=True):
        spent = time.perf_counter() - start
        if psnrs and seconds is not None and spent + spent / len(psnrs) > seconds:
            break
        out = render_camera(model, camera, 1.0)
        prediction = torch.from_numpy(out["rgb"])
        reference = torch.from_numpy(composite(target, 1.0) if target.shape[2] == 4 else target)
        psnrs.append(metrics.psnr(prediction, reference))
        ssims.append(metrics.ssim(prediction, reference))
        if keep_images:
            images.append((np.round(np.clip(out["rgb"], 0, 1) * 255).astype(np.uint8),
                           depth_image(out["depth"], out["opacity"])))
    result = {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "psnr_per_view": psnrs,
              "ssim_per_view": ssims, "views": len(psnrs)}
    return result | {"images": images} if keep_images else result


class RadianceSignal(Signal):
    """Posed training views of a :class:`~inrkit.nerf.Scene` as a Signal; see the module docstring."""

    kind = "radiance"
    n_input_dims = 3
    n_output_dims = 3
    chunkable = False  # rays carry different sample counts; the ray batch is already sized to a sample target

    def __init__(self, scene: Scene, target_samples: int = 1 << 18, initial_rays: int = 4096,
                 loss: str = "huber", background: str = "random", eval_seconds: float | None = None,
                 pose_noise: tuple[float, float] | None = None, seed: int = 0) -> None:
        """``pose_noise = (rotation°, translation)``: RMS size of the seeded perturbation of the training poses."""
        if loss not in LOSSES:
            raise InrkitError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if background not in BACKGROUNDS:
            raise InrkitError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
        if target_samples < 256:
            raise InrkitError(f"target samples per step must be at least 256, got {target_samples}")
        self.scene = scene
        self.cameras = scene.train_cameras
        self.target_samples = target_samples
        self.n_rays = min(initial_rays, target_samples)
        self.loss_name = loss
        self.background = background
        self.last_samples = 0
        self.eval_seconds = eval_seconds
        height, width = self.cameras[0].height, self.cameras[0].width
        pixels = np.empty((len(self.cameras), height, width, 4), dtype=np.uint8)
        for index in range(len(self.cameras)):
            pixels[index] = np.round(scene.image("train", index) * 255)
        self.pixels = torch.from_numpy(pixels)
        self.height, self.width = height, width
        self.reference_c2w = torch.stack([torch.as_tensor(np.asarray(c.c2w), dtype=torch.float64) for c in self.cameras])
        self.pose_noise = pose_noise
        self.seed = seed
        self.initial_c2w = self.reference_c2w if pose_noise is None else \
            perturb_poses(self.reference_c2w, math.radians(pose_noise[0]), pose_noise[1], seed)
        if pose_noise is not None:
            self.cameras = [replace(c, c2w=pose.numpy()) for c, pose in zip(self.cameras, self.initial_c2w, strict=True)]
        self.c2w = self.initial_c2w.float()

    # -- Signal interface ------------------------------------------------------------------------
    @property
    def samples_per_axis(self) -> int:
        return max(self.height, self.width)

    @property
    def n_samples(self) -> int:
        return int(self.pixels.shape[0] * self.height * self.width)

    def to(self, device: torch.device) -> RadianceSignal:
        self.pixels = self.pixels.to(device)
        self.c2w = self.c2w.to(device)
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> RayBatch:
        """Random pixels of random training views; ``batch_size`` fixes the ray count (else adaptive)."""
        device = self.pixels.device
        n_rays = batch_size or self.n_rays
        views = torch.randint(len(self.cameras), (n_rays,), device=device, generator=generator)
        rows = torch.randint(self.height, (n_rays,), device=device, generator=generator)
        cols = torch.randint(self.width, (n_rays,), device=device, generator=generator)
        origins, directions = self._rays(views, rows, cols)
        target = self.pixels[views, rows, cols].float() / 255.0
        if self.background == "random":
            background = torch.rand(n_rays, 3, device=device, generator=generator)
        else:
            background = torch.full((n_rays, 3), 1.0 if self.background == "white" else 0.0, device=device)
        return RayBatch(origins, target, directions, background, views)

    def _rays(self, views: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rays through pixel centres of the given views (one camera model per view)."""
        return view_rays(self.cameras, self.c2w, views, rows, cols)

    def loss(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        assert isinstance(batch, RayBatch) and isinstance(field, NerfModel)
        origins, directions = batch.coords, batch.directions
        if field.poses is not None:
            origins, directions = field.poses.correct(batch.views, origins, directions)
        out = field.render_train(origins, directions, batch.background)
        alpha = batch.values[:, 3:]
        target = batch.values[:, :3] * alpha + batch.background * (1 - alpha)
        error = out["rgb"] - target
        self.last_samples = int(out["n_samples"])
        if self.last_samples and self.target_samples and batch.coords.shape[0] == self.n_rays:
            scaled = self.n_rays * self.target_samples / self.last_samples
            rounded = round(scaled / RAY_GRANULARITY) * RAY_GRANULARITY
            self.n_rays = int(min(max(RAY_GRANULARITY, rounded), self.target_samples))
        return (error * error).mean() if self.loss_name == "mse" else scaled_huber(error).mean()

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        """Test-view metrics within ``eval_seconds``; the renders are kept for :meth:`write_outputs`."""
        assert isinstance(field, NerfModel)
        targets = [self.scene.image("test", i) for i in range(len(self.scene.test_cameras))]
        cameras = self.aligned_cameras(field, self.scene.test_cameras)
        evaluation = evaluate_views(field, cameras, targets, self.eval_seconds, keep_images=True)
        self._remember(field, evaluation)
        return {"psnr": evaluation["psnr"], "ssim": evaluation["ssim"], "test_views": evaluation["views"],
                "rays_per_step": self.n_rays, "samples_per_step": self.last_samples, **self.pose_metrics(field)}

    # -- camera poses ----------------------------------------------------------------------------
    def train_poses(self, field: NerfModel) -> torch.Tensor:
        """The training poses ``(N, 4, 4)`` float64 as ``field`` sees them: initial, or corrected when it refines poses."""
        return self.initial_c2w if field.poses is None else field.poses.refine(self.initial_c2w)

    def alignment(self, field: NerfModel) -> Similarity:
        """The similarity taking the training camera centres of ``field`` onto the scene's (reference) ones."""
        return procrustes(self.train_poses(field)[:, :3, 3], self.reference_c2w[:, :3, 3])

    def aligned_cameras(self, field: NerfModel, cameras: list[Camera]) -> list[Camera]:
        """Reference-frame ``cameras`` moved into the frame of ``field``'s training poses (unchanged when the poses
        are neither perturbed nor refined)."""
        if self.pose_noise is None and field.poses is None:
            return list(cameras)
        inverse = self.alignment(field).inverse()
        poses = inverse.apply(torch.stack([torch.as_tensor(np.asarray(c.c2w), dtype=torch.float64) for c in cameras]))
        return [replace(camera, c2w=pose.numpy()) for camera, pose in zip(cameras, poses, strict=True)]

    def pose_metrics(self, field: NerfModel) -> dict[str, float]:
        """Mean rotation (degrees) and translation (scene units) errors of the aligned training poses, now and
        before training (the initial poses); empty when the poses are neither perturbed nor refined."""
        if self.pose_noise is None and field.poses is None:
            return {}
        result = {}
        for suffix, poses in (("", self.train_poses(field)), ("_before", self.initial_c2w)):
            aligned = procrustes(poses[:, :3, 3], self.reference_c2w[:, :3, 3]).apply(poses)
            rotation, translation = pose_errors(aligned, self.reference_c2w)
            result |= {f"rotation_error_deg{suffix}": float(rotation.mean()),
                       f"translation_error{suffix}": float(translation.mean())}
        return result

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        """Test views rendered on white (``renders/test_NNN.png``), depth maps and per-view metrics.

        Reuses the renders of the last :meth:`evaluate` when ``field`` is unchanged since; else
        evaluates (within ``eval_seconds``) first.
        """
        assert isinstance(field, NerfModel)
        evaluation = self._recall(field)
        if evaluation is None:
            self.evaluate(field)
            evaluation = self._recall(field)
        written = write_test_renders(self.scene, Path(out_dir) / "renders", evaluation)
        if self.pose_noise is not None or field.poses is not None:
            written.append(self.write_poses(field, Path(out_dir) / POSES_FILE))
        return written

    def write_poses(self, field: NerfModel, path: Path) -> Path:
        """``poses.json``: per training camera its reference, initial and trained camera-to-world poses (the trained
        ones in the training frame and aligned to the reference) with their errors, and the alignment."""
        poses = self.train_poses(field)
        similarity = self.alignment(field)
        aligned = similarity.apply(poses)
        rotation, translation = pose_errors(aligned, self.reference_c2w)
        cameras = [{"reference": ref.tolist(), "initial": initial.tolist(), "trained": trained.tolist(),
                    "trained_aligned": moved.tolist(), "rotation_error_deg": float(r), "translation_error": float(t)}
                   for ref, initial, trained, moved, r, t in zip(self.reference_c2w, self.initial_c2w, poses, aligned,
                                                                 rotation, translation, strict=True)]
        write_json(path, {"pose_noise": self.pose_noise, "refined": field.poses is not None,
                          "alignment": {"scale": similarity.scale, "rotation": similarity.rotation.tolist(),
                                        "translation": similarity.translation.tolist()},
                          **self.pose_metrics(field), "cameras": cameras})
        return path

    @torch.no_grad()
    def _fingerprint(self, field: torch.nn.Module) -> torch.Tensor:
        """Density and colour ``(FINGERPRINT_POINTS, 4)`` of the NeRF field at fixed points of its box and fixed
        directions (the model is not a plain coordinate field)."""
        assert isinstance(field, NerfModel)
        generator = torch.Generator().manual_seed(0)
        low, high = field.box
        device = next(field.parameters()).device
        positions = (low + (high - low) * torch.rand(FINGERPRINT_POINTS, 3, generator=generator)).to(device)
        directions = torch.nn.functional.normalize(torch.randn(FINGERPRINT_POINTS, 3, generator=generator), dim=1)
        sigma, rgb = field.field(positions, directions.to(device))
        return torch.cat((sigma.float()[:, None], rgb.float()), dim=1).cpu()

    def config(self) -> dict[str, Any]:
        noise = {} if self.pose_noise is None else {"pose_noise": list(self.pose_noise), "pose_noise_seed": self.seed}
        return {**self.scene.config(), "target_samples": self.target_samples, "loss": self.loss_name,
                "background": self.background, **noise}


def write_test_renders(scene: Scene, folder: Path, evaluation: dict[str, Any]) -> list[Path]:
    """Write colour and depth PNGs of the evaluated test views and ``metrics.json`` (per-view PSNR/SSIM).

    ``evaluation`` is a result of :func:`evaluate_views` with ``keep_images``.
    """
    written: list[Path] = []
    for index, (rgb, depth) in enumerate(evaluation["images"]):
        written.append(write_image(folder / f"test_{index:03d}.png", rgb))
        written.append(write_image(folder / f"depth_{index:03d}.png", depth))
    records = [{"view": index, "psnr": psnr, "ssim": ssim}
               for index, (psnr, ssim) in enumerate(zip(evaluation["psnr_per_view"], evaluation["ssim_per_view"], strict=True))]
    write_json(folder / "metrics.json", {"background": "white", "views": records, "psnr": evaluation["psnr"],
                                         "ssim": evaluation["ssim"], "test_views": len(scene.test_cameras)})
    written.append(folder / "metrics.json")
    return written
