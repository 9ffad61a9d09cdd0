"""Signed distance fields from meshes and point clouds.

**Frame.** The shape is centred on its bounding-box centre ``c`` and scaled by ``s`` so that its
longest side spans [-0.9, 0.9]: ``x_unit = (x − c)/s``. ``c`` and ``s`` are stored in the run
config; exported meshes are mapped back with ``x = s·x_unit + c`` (the input's units).

**Values.** A field speaks [0, 1] to inrkit; the SDF signal reads its output ``v`` as the signed
distance ``sdf = 2v − 1`` in the normalised frame (negative inside). A SIREN (output range
[-1, 1]) therefore outputs the distance itself, as in the official code.

**Losses** (distances and gradients in the normalised frame):

* ``l1`` (meshes, default): ``mean |f − s|`` over a pool of samples with exact ground truth ``s``
  (:mod:`inrkit.signals.sdf_sampling`).
* ``mape`` (instant-ngp and ResFields): ``mean |f − s| / (|s| + 0.02)``; 0.02 is instant-ngp's 0.01
  in its unit cube, which is half the size of ours. It weights far samples 40× less than surface
  ones; with sine networks this leaves spurious surfaces ("floaters") in the corners of the box
  on short runs, which is why ``l1`` is the default.
* ``siren`` (point clouds, default; SIREN's ``loss_functions.sdf``): a batch of N surface points
  with normals ``n`` and N uniform points in [-1, 1]³, ``g = ∇ₓf``, means over all 2N points::

      L = 3000·mean(|f|·1_s) + 100·mean(e^{−100|f|}·1_off) + 100·mean((1 − cos∠(g, n))·1_s) + 50·mean(|‖g‖ − 1|)

**Metrics** (``evaluate``): the field is meshed by marching cubes at ``eval_resolution``; Chamfer
L1/L2, normal consistency and F-score@1 % are measured against the input surface in the frame where
the shape's longest side is 1 (:mod:`inrkit.shape_metrics`); for meshes, the volumetric IoU of
``sdf < 0`` on the voxel centres of an ``eval_resolution`` grid over the shape's bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit.errors import InrkitError, warn
from inrkit.geometry import Mesh, extract_mesh, sample_grid
from inrkit.io.meshes import write_mesh
from inrkit.io.shapes import Shape, read_shape
from inrkit.shape_metrics import iou, sample_surface, surface_distances
from inrkit.signals.base import Batch, Signal
from inrkit.signals.sdf_sampling import edge_defects, inside, training_samples

SDF_LOSSES = ("auto", "l1", "mape", "siren")
EXTENT = 0.9  # the longest side of the shape spans [-EXTENT, EXTENT]
DEFAULT_BATCH = 1 << 14
EVAL_POINTS = 50_000
FSCORE_THRESHOLD = 0.01  # of the longest bounding-box side
LIPSCHITZ = 2.0  # safety factor of the narrow-band grid evaluation (a trained SDF has |∇f| ≈ 1)
MAPE_EPSILON = 0.02
SIREN_WEIGHTS = {"surface": 3000.0, "off_surface": 100.0, "normal": 100.0, "eikonal": 50.0}
SIREN_CLIP_GRAD_NORM = 1.0  # train_sdf.py clips the gradient at total norm 1 (REFERENCE §1.1)
# the detail an SDF fit is sized for (relu-pe's octave count): a property of the signal, not of the export
# grid (--resolution), so that the architecture never depends on an output option; 256 is that grid's default
SAMPLES_PER_AXIS = 256


@dataclass
class SdfOptions:
    """How a mesh or point cloud becomes a signed distance signal, and how its mesh is exported."""

    sdf_loss: str = field(default="auto", metadata={"help": "auto (l1 for meshes, siren for point clouds) | l1 | mape | siren"})
    sdf_samples: int = field(default=250_000, metadata={"help": "training pool of a mesh: points with exact "
                                                                "distances, or surface points for the siren loss"})
    export: str | None = field(default=None, metadata={"help": "after fitting, write the mesh here (.ply .obj .stl .glb)"})
    resolution: int = field(default=256, metadata={"help": "marching-cubes grid points per axis for the exported mesh"})
    eval_resolution: int = field(default=128, metadata={"help": "grid for the evaluation mesh and the IoU voxels"})

    def validate(self) -> None:
        if self.sdf_loss not in SDF_LOSSES:
            raise InrkitError(f"--sdf-loss must be one of {', '.join(SDF_LOSSES)}, got {self.sdf_loss!r}")
        if self.sdf_samples < 1024:
            raise InrkitError(f"--sdf-samples must be at least 1024, got {self.sdf_samples}")
        for name in ("resolution", "eval_resolution"):
            value = getattr(self, name)
            if not 8 <= value <= 2048:
                raise InrkitError(f"--{name.replace('_', '-')} must be between 8 and 2048, got {value}")
        if self.export is not None:
            from inrkit.io.meshes import MESH_WRITE_SUFFIXES

            if Path(self.export).suffix.lower() not in MESH_WRITE_SUFFIXES:
                raise InrkitError(f"--export must end in {', '.join(MESH_WRITE_SUFFIXES)}, got {self.export!r}")


@dataclass
class SdfBatch(Batch):
    """``coords (N, 3)``, target distances ``values (N, 1)`` (regression), or for the SIREN loss
    ``normals (N, 3)`` and ``on_surface (N,)`` (values are then 0 on the surface and −1 elsewhere, a flag)."""

    normals: torch.Tensor | None = None
    on_surface: torch.Tensor | None = None


def field_distance(field: torch.nn.Module, coords: torch.Tensor) -> torch.Tensor:
    """The signed distance ``(N,)`` a field predicts at ``coords (N, 3)``: ``2·field(x) − 1``."""
    return 2.0 * field(coords).float()[:, 0] - 1.0


def siren_sdf_loss(field: torch.nn.Module, batch: SdfBatch) -> torch.Tensor:
    """SIREN's point-cloud SDF loss (see the module docstring); needs ``∇ₓf``, so it builds a double-backward graph."""
    assert batch.normals is not None and batch.on_surface is not None
    coords = batch.coords.detach().requires_grad_(True)
    sdf = field_distance(field, coords)
    (gradient,) = torch.autograd.grad(sdf.sum(), coords, create_graph=True)
    surface = batch.on_surface.float()
    off = 1.0 - surface
    w = SIREN_WEIGHTS
    cosine = torch.nn.functional.cosine_similarity(gradient, batch.normals, dim=1)
    return (w["surface"] * (sdf.abs() * surface).mean()
            + w["off_surface"] * (torch.exp(-100.0 * sdf.abs()) * off).mean()
            + w["normal"] * ((1.0 - cosine) * surface).mean()
            + w["eikonal"] * (gradient.norm(dim=1) - 1.0).abs().mean())


def distance_function(field: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """``f(points (N, 3) float32, normalised frame) -> signed distance (N,)`` for :mod:`inrkit.geometry`."""
    device = next(field.parameters()).device

    @torch.no_grad()
    def f(points: np.ndarray) -> np.ndarray:
        return field_distance(field, torch.from_numpy(points).to(device)).cpu().numpy()

    return f


def field_mesh(field: torch.nn.Module, resolution: int, transform: dict[str, Any] | None = None) -> Mesh:
    """Marching cubes of the field's zero level set over [-1, 1]³ at ``resolution``³ grid points.

    Vertices are in the normalised frame, or in the input's units ``s·x + c`` when ``transform``
    (``{"centre": c, "scale": s}``, from the signal config) is given.
    """
    mesh = extract_mesh(distance_function(field), resolution=resolution, lipschitz=LIPSCHITZ)
    if transform is not None:
        mesh.vertices = mesh.vertices.astype(np.float64) * transform["scale"] + np.asarray(transform["centre"])
    return mesh


class SdfSignal(Signal):
    """A mesh or oriented point cloud to fit as a signed distance field; see the module docstring."""

    kind = "sdf"
    n_input_dims = 3
    n_output_dims = 1
    loss_is_mse = False

    def __init__(self, shape: Shape, options: SdfOptions | None = None, source: str | None = None) -> None:
        self.options = options or SdfOptions()
        self.options.validate()
        self.source = source
        self.is_mesh = shape.is_mesh
        used = shape.vertices[np.unique(shape.faces)] if shape.is_mesh else shape.vertices
        low, high = used.min(axis=0), used.max(axis=0)
        self.centre = (low + high) / 2.0
        self.scale = float((high - low).max() / (2.0 * EXTENT))
        self.vertices = (shape.vertices - self.centre) / self.scale  # normalised frame
        self.faces = shape.faces
        self.normals = shape.normals
        self.loss_name = self.options.sdf_loss
        if self.loss_name == "auto":
            self.loss_name = "l1" if self.is_mesh else "siren"
        if not self.is_mesh and self.loss_name != "siren":
            raise InrkitError(f"--sdf-loss {self.loss_name} needs a mesh: a point cloud has no signed distances; use siren")
        self.defects = edge_defects(shape.vertices, shape.faces) if self.is_mesh else (0, 0)
        self._warn_about_input(shape)
        rng = np.random.default_rng(0)  # the pool depends on the file only, so a resumed run sees the same data
        if self.loss_name == "siren":
            if self.is_mesh:
                points, normals = sample_surface(self.vertices, self.faces, self.options.sdf_samples, rng)
            else:
                points, normals = self.vertices, self.normals
            self.points = torch.from_numpy(points.astype(np.float32))
            self.point_normals = torch.from_numpy(normals.astype(np.float32))
            self.distances = torch.zeros(len(points), 1)
        else:
            points, distances = training_samples(self.vertices, self.faces, self.options.sdf_samples, rng)
            self.points = torch.from_numpy(points.astype(np.float32))
            self.distances = torch.from_numpy(distances.astype(np.float32)[:, None])
            self.point_normals = None
        self._reference: tuple[np.ndarray, np.ndarray] | None = None
        self._iou_grid: tuple[tuple[np.ndarray, np.ndarray], tuple[int, int, int], np.ndarray] | None = None

    def _warn_about_input(self, shape: Shape) -> None:
        name = Path(self.source).name if self.source else "the mesh"
        boundary, non_manifold = self.defects
        if boundary or non_manifold:
            warn(f"{name} is not a closed manifold ({boundary} boundary edges, {non_manifold} non-manifold edges): "
                 "inside/outside comes from generalised winding numbers, exact away from holes but approximate "
                 "near large openings")
        if shape.normals_estimated:
            warn(f"{name} has no normals: estimated from {16} neighbours and oriented by propagation; "
                 "give normals (PLY nx ny nz, or XYZ with 6 columns) if signs come out wrong")

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, options: SdfOptions | None = None) -> SdfSignal:
        """Read a mesh (OBJ PLY STL OFF GLB) or point cloud (PLY XYZ) and build the signal."""
        options = options or SdfOptions()
        options.validate()
        return cls(read_shape(path), options, source=str(Path(path).resolve()))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SdfSignal:
        """Reopen the signal described by :meth:`config`."""
        if config.get("source") is None:
            raise InrkitError("this run was fitted to an in-memory shape; its signal cannot be reopened")
        return cls.from_file(config["source"], SdfOptions(**config.get("options", {})))

    # -- frame ----------------------------------------------------------------------------------
    def to_original(self, points: np.ndarray) -> np.ndarray:
        """Normalised-frame points ``(N, 3)`` to the input's units: ``s·x + c``."""
        return points * self.scale + self.centre

    # -- Signal interface -----------------------------------------------------------------------
    @property
    def samples_per_axis(self) -> int:
        """A constant, :data:`SAMPLES_PER_AXIS`: a shape has no sampling grid, and the export ``resolution``
        must not change the network."""
        return SAMPLES_PER_AXIS

    @property
    def n_samples(self) -> int:
        return len(self.points)

    def default_options(self, model: str, protocol: str) -> dict[str, Any]:
        """Under ``paper`` with the ``siren`` loss: SIREN's SDF protocol clips the gradient at total norm
        :data:`SIREN_CLIP_GRAD_NORM` (``train_sdf.py``, REFERENCE §1.1), ``g ← g·min(1, 1/‖g‖₂)``
        before each step. Not under ``device``: on a torus point cloud (20k points, ``siren`` at the
        device defaults, 300 and 600 steps, seeds 0 and 1, 2-core CPU) the clip raised the final training
        loss by 8–15 % in all four runs and lowered the F-score in three (0.38–0.70 against 0.59–0.91).
        The regression losses are not clipped."""
        return {"clip_grad_norm": SIREN_CLIP_GRAD_NORM} if self.loss_name == "siren" and protocol == "paper" else {}

    def to(self, device: torch.device) -> SdfSignal:
        self.points = self.points.to(device)
        self.distances = self.distances.to(device)
        if self.point_normals is not None:
            self.point_normals = self.point_normals.to(device)
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> SdfBatch:
        """A random batch (``batch_size`` None: :data:`DEFAULT_BATCH`; a full pool is too large for one step)."""
        size = min(batch_size or DEFAULT_BATCH, 2 * self.n_samples)
        device = self.points.device
        if self.loss_name != "siren":
            index = torch.randint(self.n_samples, (size,), device=device, generator=generator)
            return SdfBatch(self.points[index], self.distances[index])
        half = max(1, size // 2)
        index = torch.randint(self.n_samples, (half,), device=device, generator=generator)
        uniform = torch.rand((size - half, 3), device=device, generator=generator) * 2.0 - 1.0
        coords = torch.cat((self.points[index], uniform))
        on_surface = torch.cat((torch.ones(half, dtype=torch.bool, device=device),
                                torch.zeros(size - half, dtype=torch.bool, device=device)))
        normals = torch.cat((self.point_normals[index], torch.zeros_like(uniform)))
        return SdfBatch(coords, torch.where(on_surface, 0.0, -1.0)[:, None], normals, on_surface)

    def loss(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if self.loss_name == "siren":
            assert isinstance(batch, SdfBatch)
            return siren_sdf_loss(field, batch)
        error = (field_distance(field, batch.coords) - batch.values[:, 0]).abs()
        if self.loss_name == "mape":
            error = error / (batch.values[:, 0].abs() + MAPE_EPSILON)
        return error.mean()

    @property
    def pool_size(self) -> int | None:
        """The sampled points with their distances under the regression losses (``l1``, ``mape``: a mean of
        per-point terms); None under ``siren``, whose off-surface points are drawn fresh each step."""
        return None if self.loss_name == "siren" else self.n_samples

    def pool_batch(self, index: torch.Tensor) -> Batch:
        return SdfBatch(self.points[index], self.distances[index])

    def residuals(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``(B, 1)``: ``f(x_i) − d_i``."""
        return field_distance(field, batch.coords)[:, None] - batch.values

    def sample_losses(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``(B,)``: ``|r_i|`` (``l1``) or ``|r_i|/(|d_i| + ε)`` (``mape``), the terms :meth:`loss` averages."""
        error = self.residuals(field, batch)[:, 0].abs()
        return error / (batch.values[:, 0].abs() + MAPE_EPSILON) if self.loss_name == "mape" else error

    # -- meshes and metrics ---------------------------------------------------------------------
    def mesh(self, field: torch.nn.Module, resolution: int) -> Mesh:
        """The zero level set by marching cubes over [-1, 1]³, in the normalised frame."""
        return field_mesh(field, resolution)

    def _reference_samples(self) -> tuple[np.ndarray, np.ndarray]:
        if self._reference is None:
            rng = np.random.default_rng(1)
            if self.is_mesh:
                self._reference = sample_surface(self.vertices, self.faces, EVAL_POINTS, rng)
            else:
                keep = rng.permutation(len(self.vertices))[:EVAL_POINTS]
                self._reference = (self.vertices[keep], self.normals[keep])
        return self._reference

    def _iou_reference(self) -> tuple[tuple[np.ndarray, np.ndarray], tuple[int, int, int], np.ndarray]:
        """Voxel-centre grid over the shape's bounding box (longest side ``eval_resolution`` voxels) and its occupancy."""
        if self._iou_grid is None:
            used = self.vertices[np.unique(self.faces)]
            low, high = used.min(axis=0), used.max(axis=0)
            voxel = float((high - low).max()) / self.options.eval_resolution
            shape = tuple(max(1, int(np.ceil((high[a] - low[a]) / voxel - 1e-9))) for a in range(3))
            centre = (low + high) / 2.0
            first = centre - (np.asarray(shape) - 1) * voxel / 2.0
            last = first + (np.asarray(shape) - 1) * voxel
            axes = [np.linspace(first[a], last[a], shape[a]) for a in range(3)]
            points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
            occupied = inside(points, self.vertices, self.faces).reshape(shape)
            self._iou_grid = ((first, last), shape, occupied)  # type: ignore[assignment]
        assert self._iou_grid is not None
        return self._iou_grid

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        mesh = self.mesh(field, self.options.eval_resolution)
        metrics = self.mesh_metrics(mesh)
        if self.is_mesh:
            box, shape, occupied = self._iou_reference()
            grid = np.asarray(box[1]) - np.asarray(box[0])
            if min(shape) >= 2 and (grid > 0).all():  # a flat shape has no volume: no IoU, rather than NaN
                predicted = sample_grid(distance_function(field), box, shape, lipschitz=LIPSCHITZ) < 0
                value = iou(predicted, occupied)
                if math.isfinite(value):
                    metrics["iou"] = value
        return metrics

    def mesh_metrics(self, mesh: Mesh) -> dict[str, float]:
        """Chamfer L1/L2, normal consistency, F-score of a normalised-frame mesh against the input surface."""
        if len(mesh.faces) == 0:
            return {"chamfer_l1": float("inf"), "chamfer_l2": float("inf"), "normal_consistency": 0.0, "fscore": 0.0}
        unit = 2.0 * EXTENT  # normalised-frame length of the longest side
        points, normals = sample_surface(mesh.vertices.astype(np.float64), mesh.faces, EVAL_POINTS, np.random.default_rng(2))
        ref_points, ref_normals = self._reference_samples()
        return surface_distances(points / unit, normals, ref_points / unit, ref_normals, FSCORE_THRESHOLD)

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        """``out_dir/mesh.ply`` (and ``options.export``) at ``options.resolution``, in the input's units."""
        mesh = self.mesh(field, self.options.resolution)
        if len(mesh.faces) == 0:
            message = f"the fitted field has no zero crossing in the box, so there is no mesh (the run is in {out_dir})"
            if self.options.export:
                raise InrkitError(f"{message}; nothing written to {self.options.export}")
            warn(message)
            return []
        vertices = self.to_original(mesh.vertices.astype(np.float64))
        paths = [write_mesh(Path(out_dir) / "mesh.ply", vertices, mesh.faces)]
        if self.options.export:
            paths.append(write_mesh(self.options.export, vertices, mesh.faces))
        return paths

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "options": asdict(self.options),
            "shape": "mesh" if self.is_mesh else "points",
            "n_vertices": len(self.vertices),
            "n_faces": 0 if self.faces is None else len(self.faces),
            "loss": self.loss_name,
            "transform": {"centre": self.centre.tolist(), "scale": self.scale},
            "boundary_edges": self.defects[0],
            "non_manifold_edges": self.defects[1],
        }
