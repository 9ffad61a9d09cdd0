"""The radiance-field API: ``fit``, ``load`` and the :class:`NeRF` they return.

Example:
    >>> import inrkit
    >>> scene = inrkit.nerf.Scene.from_blender("lego/")                         # doctest: +SKIP
    >>> nerf = inrkit.nerf.fit(scene, preset="instant-ngp", seconds=300)        # doctest: +SKIP
    >>> nerf.metrics["psnr"], nerf.evaluate(scene.test_cameras)["psnr"]         # doctest: +SKIP
    >>> image = nerf.render(scene.test_cameras[0])["rgb"]                        # (H, W, 3) in [0, 1]
    >>> nerf.export_mesh("lego.ply", resolution=256)                            # doctest: +SKIP
    >>> nerf.render_turntable("lego.mp4")                                       # doctest: +SKIP
    >>> same = inrkit.nerf.load(nerf.dir)                                        # doctest: +SKIP
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit.api.lifecycle import (
    RESUMABLE,
    Run,
    check_fit_backend,
    load_run,
    removed_unless_trained,
    resume_run,
    train_run,
)
from inrkit.devices import resolve_device, seed_everything
from inrkit.errors import InrkitError
from inrkit.fields.nerf_model import NerfModel, is_nerf_config
from inrkit.fields.nerf_presets import get_nerf_preset, model_config
from inrkit.files import atomic_path, write_json
from inrkit.nerf.cameras import Camera, orbit_cameras
from inrkit.nerf.poses import POSE_LR, POSE_LR_FINAL
from inrkit.nerf.procedural import SCENES_DIR, is_definition, make_scene
from inrkit.nerf.scene import Scene
from inrkit.runs import CONFIG_FILE, check_run_dir, prepare_run_dir, read_config
from inrkit.signals.radiance import BACKGROUNDS, LOSSES, RadianceSignal, evaluate_views, render_camera
from inrkit.train import TrainOptions
from inrkit.version import __version__

__all__ = ["NeRF", "NerfOptions", "fit", "load"]

EVAL_FRACTION = 0.2  # with --seconds S, evaluating the test views after training may take up to 0.2·S
SETUP_FRACTION = 0.1  # ... and preparing the scene 0.1·S before it (more is taken from training)
MIN_TRAIN_FRACTION = 0.5  # training keeps at least this fraction of S
MESH_DENSITY_THRESHOLD = 2.5  # instant-ngp's default marching-cubes level (σ per unit-cube length)
MAX_SCENE_RESOLUTION = 2048  # --scene-resolution: procedural views are rendered in memory


@dataclass
class NerfOptions:
    """What to fit and how; the ``inrkit nerf`` flags are generated from these fields."""

    preset: str = field(default="auto", metadata={"help": "instant-ngp | instant-ngp-cpu | auto (the first on CUDA)"})
    backbone: str | None = field(default=None, metadata={
        "help": "replace the density MLP by an inrkit backbone (siren, relu-pe, ...)"})
    downscale: int = field(default=1, metadata={"help": "divide image width and height by this integer"})
    holdout: int = field(default=8, metadata={"help": "without a test split, every k-th view is a test view"})
    loss: str | None = field(default=None, metadata={"help": "huber | mse (default: the preset's)"})
    target_samples: int | None = field(default=None, metadata={"help": "samples per step of the adaptive ray batch"})
    train_background: str = field(default="random", metadata={"help": "random | white | black behind training rays"})
    grid_resolution: int | None = field(default=None, metadata={"help": "occupancy-grid cells per axis (default: the preset's)"})
    steps_per_unit: int | None = field(default=None, metadata={"help": "ray-marching steps per unit-cube length"})
    scene_resolution: int = field(default=128, metadata={"help": "image size for procedural scene definitions (.json)"})
    refine_poses: bool = field(default=False, metadata={
        "help": "learn an se(3) correction of each training camera's pose jointly with the field (BARF: own Adam, "
                "lr --pose-lr decaying x0.01 over the run); test views are aligned to the refined cameras and the "
                "pose errors are reported"})
    pose_lr: float | None = field(default=None, metadata={
        "help": f"initial learning rate of the pose corrections (default: BARF's {POSE_LR:g})"})
    perturb_poses: str | None = field(default=None, metadata={
        "help": "ROT_DEG,TRANS: perturb the training poses by seeded se(3) noise of this RMS rotation (degrees) and "
                "translation (scene units); the scene's poses stay the reference (BARF's Blender setting: 15,0.26)"})

    def validate(self) -> None:
        """Raise :class:`InrkitError` for impossible settings (before anything is read or written)."""
        if self.loss is not None and self.loss not in LOSSES:
            raise InrkitError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.train_background not in BACKGROUNDS:
            raise InrkitError(f"--train-background must be one of {', '.join(BACKGROUNDS)}, got {self.train_background!r}")
        for name in ("target_samples", "grid_resolution", "steps_per_unit"):
            value = getattr(self, name)
            if value is not None and value < (256 if name == "target_samples" else 2):
                raise InrkitError(f"--{name.replace('_', '-')} is too small: {value}")
        if self.scene_resolution > MAX_SCENE_RESOLUTION:
            raise InrkitError(f"--scene-resolution must be at most {MAX_SCENE_RESOLUTION} (it renders about 70 views of "
                              f"that size), got {self.scene_resolution}")
        if self.downscale < 1 or self.holdout < 2 or self.scene_resolution < 8:
            raise InrkitError("--downscale must be >= 1, --holdout >= 2 and --scene-resolution >= 8")
        if self.pose_lr is not None and not (0 < self.pose_lr <= 1):
            raise InrkitError(f"--pose-lr must be in (0, 1], got {self.pose_lr}")
        if self.pose_lr is not None and not self.refine_poses:
            raise InrkitError("--pose-lr needs --refine-poses")
        self.pose_noise()

    def pose_noise(self) -> tuple[float, float] | None:
        """``--perturb-poses ROT_DEG,TRANS`` as two numbers (None without it); InrkitError when malformed."""
        if self.perturb_poses is None:
            return None
        try:
            rotation, translation = (float(part) for part in str(self.perturb_poses).split(","))
        except ValueError:
            raise InrkitError(f"--perturb-poses must be ROT_DEG,TRANS (e.g. 15,0.26), got {self.perturb_poses!r}") from None
        if not (0 <= rotation <= 180 and translation >= 0 and math.isfinite(translation)):
            raise InrkitError(f"--perturb-poses needs a rotation in [0, 180] degrees and a finite translation >= 0, "
                              f"got {self.perturb_poses!r}")
        return rotation, translation


def _resolve_preset(name: str, device: torch.device) -> str:
    if name == "auto":
        return "instant-ngp" if device.type == "cuda" else "instant-ngp-cpu"
    get_nerf_preset(name)
    return name


def turntable_config(scene: Scene) -> dict[str, Any]:
    """Orbit defaults from the training cameras: centre of the box, mean up vector, mean distance and elevation."""
    centre = -np.asarray(scene.offset) / scene.scale + 0.5 / scene.scale
    poses = np.stack([c.c2w for c in scene.train_cameras])
    up = poses[:, :3, 1].mean(axis=0)
    up = up / max(np.linalg.norm(up), 1e-9)
    offsets = poses[:, :3, 3] - centre
    radius = float(np.linalg.norm(offsets, axis=1).mean())
    elevation = float(np.degrees(np.arcsin(np.clip((offsets @ up) / np.linalg.norm(offsets, axis=1), -1, 1)).mean()))
    return {"center": centre.tolist(), "up": up.tolist(), "radius": radius, "elevation": elevation,
            "camera": scene.test_cameras[0].to_json()}


@dataclass
class NeRF(Run):
    """A fitted radiance field (a :class:`~inrkit.api.lifecycle.Run` whose field is a
    :class:`~inrkit.fields.NerfModel`): render views, evaluate, export a mesh or a turntable video."""

    scene: Scene | None = None

    @property
    def model(self) -> NerfModel:
        return self.field

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> NeRF:
        self.model.to(resolve_device(device) if isinstance(device, str) else device)
        return self

    def render(self, camera: Camera, background: float | tuple[float, float, float] = 1.0) -> dict[str, np.ndarray]:
        """``rgb (H, W, 3)`` on ``background``, ``depth (H, W)`` (world units, expected) and ``opacity (H, W)``."""
        self.model.eval()
        return render_camera(self.model, camera, torch.tensor(background, dtype=torch.float32, device=self.device))

    def evaluate(self, cameras: list[Camera] | Scene | None = None, images: list[np.ndarray] | None = None) -> dict[str, Any]:
        """Mean and per-view PSNR/SSIM on white (``psnr``, ``ssim``, ``psnr_per_view``, ``ssim_per_view``,
        ``views``) of every view in ``cameras`` (default: the scene's test views), without a time budget.

        Ground truth comes from ``images`` (straight RGBA or RGB ``(H, W, C)`` in [0, 1]) or, for
        cameras of this NeRF's scene, from the scene's images. A NeRF fitted here with perturbed or refined
        poses renders the cameras aligned to its training cameras, as its own evaluation does.
        """
        scene = cameras if isinstance(cameras, Scene) else self.scene
        if cameras is None or isinstance(cameras, Scene):
            if scene is None:
                raise InrkitError("evaluate needs cameras and images, or a scene")
            cameras = scene.test_cameras
        if images is None:
            if scene is None:
                raise InrkitError("evaluate needs ground-truth images for cameras that are not from this NeRF's scene")
            images = [self._scene_image(scene, camera) for camera in cameras]
        self.model.eval()
        if isinstance(self.signal, RadianceSignal):
            cameras = self.signal.aligned_cameras(self.model, list(cameras))
        return evaluate_views(self.model, list(cameras), images)

    @staticmethod
    def _scene_image(scene: Scene, camera: Camera) -> np.ndarray:
        for split, views in scene.splits.items():
            for index, view in enumerate(views):
                if view.camera is camera or view.camera.to_json() == camera.to_json():
                    return scene.image(split, index)
        raise InrkitError("a camera given to evaluate is not a view of the scene; pass its images too")

    def export_mesh(self, path: str | Path, resolution: int = 256, threshold: float = MESH_DENSITY_THRESHOLD,
                    chunk: int = 1 << 18) -> Path:
        """Marching cubes of ``σ = threshold`` over the occupied part of the box; vertex colours seen along −normal."""
        from inrkit.geometry import extract_mesh
        from inrkit.io.meshes import write_mesh

        self.model.eval()
        device = self.device
        low, high = self._occupied_bounds()

        def density(points: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return self.model.density_world(torch.from_numpy(points).float().to(device)).cpu().numpy()

        mesh = extract_mesh(density, (low, high), resolution, threshold, inside="above", chunk=chunk)
        if len(mesh.faces) == 0:
            raise InrkitError(f"cannot export a mesh: the density never crosses {threshold:g} in the scene box")
        colors = self._vertex_colors(mesh.vertices, (high - low).max() / resolution, chunk)
        return write_mesh(path, mesh.vertices, mesh.faces, colors)

    def _occupied_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World box of the occupied cells of the finest cascade, grown by one cell (the whole box if none)."""
        grid = self.model.grid
        cells = torch.nonzero(grid.occupied[0]).squeeze(1)
        if cells.numel() == 0:
            low_unit, high_unit = np.full(3, self.model.box[0]), np.full(3, self.model.box[1])
        else:
            corners = torch.cat((grid.cell_points(0, cells, torch.zeros(len(cells), 3, device=cells.device)),
                                 grid.cell_points(0, cells, torch.ones(len(cells), 3, device=cells.device))))
            cell = 1.0 / grid.resolution
            low_unit = (corners.amin(0).cpu().numpy() - cell).clip(self.model.box[0], self.model.box[1])
            high_unit = (corners.amax(0).cpu().numpy() + cell).clip(self.model.box[0], self.model.box[1])
        offset = self.model.offset.cpu().numpy()
        return (low_unit - offset) / self.model.scale, (high_unit - offset) / self.model.scale

    @torch.no_grad()
    def _vertex_colors(self, vertices: np.ndarray, step: float, chunk: int) -> np.ndarray:
        """Colour of each vertex seen from outside: direction ``−n`` with ``n = −∇σ/|∇σ|`` (central differences)."""
        device = self.device
        colors = np.empty((len(vertices), 3), dtype=np.float32)
        eye = torch.eye(3, device=device) * step
        for start in range(0, len(vertices), chunk // 8):
            points = torch.from_numpy(np.ascontiguousarray(vertices[start:start + chunk // 8])).float().to(device)
            gradient = torch.stack([self.model.density_world(points + eye[d]) - self.model.density_world(points - eye[d])
                                    for d in range(3)], dim=1)
            outward = -gradient / gradient.norm(dim=1, keepdim=True).clamp_min(1e-12)
            _, rgb = self.model.field(self.model.to_unit(points), -outward)
            colors[start:start + len(points)] = rgb.cpu().numpy()
        return colors

    def turntable_cameras(self, n_frames: int = 120, size: tuple[int, int] | None = None) -> list[Camera]:
        """Cameras orbiting the scene (from the training cameras' mean distance, elevation and up vector)."""
        orbit = self.config["turntable"]
        reference = Camera.from_json(orbit["camera"])
        if size is not None:
            width, height = size
            factor = width / reference.width
            reference = Camera(reference.c2w, width, height, reference.fx * factor, reference.fy * factor,
                               width / 2, height / 2)
        return orbit_cameras(reference, n_frames, orbit["radius"], orbit["elevation"], np.asarray(orbit["center"]),
                             np.asarray(orbit["up"]))

    def render_turntable(self, path: str | Path, n_frames: int = 120, fps: int = 30,
                         size: tuple[int, int] | None = None) -> Path:
        """Write an orbit video (``.mp4`` via ffmpeg, or ``.gif``) on white, atomically."""
        import imageio.v3 as iio

        from inrkit.io.video import write_mp4

        path = Path(path)
        if path.suffix.lower() not in (".mp4", ".gif"):
            raise InrkitError(f"turntable output must be .mp4 or .gif, got {path.name}")
        if n_frames < 1:
            raise InrkitError(f"turntable needs at least one frame, got {n_frames}")
        frames = np.stack([np.round(np.clip(self.render(camera)["rgb"], 0, 1) * 255).astype(np.uint8)
                           for camera in self.turntable_cameras(n_frames, size)])
        if path.suffix.lower() == ".mp4" and frames.shape[1] % 2 + frames.shape[2] % 2:
            frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # yuv420p needs even sizes
        if path.suffix.lower() == ".mp4":
            return write_mp4(path, frames, fps)
        with atomic_path(path, path.suffix) as tmp:
            iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)
        return path


def open_scene(scene: str | Path | Scene, options: NerfOptions, work_dir: Path | None = None) -> Scene:
    """A :class:`Scene` from a folder, a procedural definition (``.json`` or a name) or a Scene."""
    if isinstance(scene, Scene):
        return scene
    path = Path(scene)
    if is_definition(path) or (not path.exists() and (SCENES_DIR / f"{path}.json").is_file()):
        if work_dir is None:
            raise InrkitError("a procedural scene needs an output directory to be rendered into")
        folder = make_scene(scene, work_dir / "scene", resolution=options.scene_resolution)
        return Scene.from_blender(folder, downscale=options.downscale, holdout=options.holdout)
    if not path.exists():
        raise InrkitError(f"cannot open scene {path}: no such directory")
    return Scene.from_blender(path, downscale=options.downscale, holdout=options.holdout)


def fit(scene: str | Path | Scene | None, preset: str = "auto", *, seconds: float | None = None, steps: int | None = None,
        out: str | Path | None = None, resume: bool = False, overwrite: bool = False, report: bool | None = None,
        **options: Any) -> NeRF:
    """Fit a radiance field to ``scene`` (a folder, a procedural definition or its name, or a :class:`Scene`).

    ``options`` are fields of :class:`NerfOptions` and :class:`~inrkit.train.TrainOptions` (``lr``,
    ``schedule``, ``batch_size`` = fixed rays per step, ``eval_every``, ``device``, ``quiet``, ...).
    On a CPU expect minutes for a 128² procedural scene and hours for 800² scenes. ``report``: as for
    :func:`inrkit.fit` (``out/report.html`` rewritten at every evaluation).
    """
    started = time.perf_counter()
    nerf_names = set(NerfOptions.__dataclass_fields__)
    train_names = set(TrainOptions.__dataclass_fields__)
    unknown = sorted(set(options) - nerf_names - train_names)
    if unknown:
        raise InrkitError(f"unknown option {unknown[0]!r}")
    nerf_options = NerfOptions(preset=preset, **{k: v for k, v in options.items() if k in nerf_names})
    train_kwargs = {"schedule": "ngp", "eval_every": 0, **{k: v for k, v in options.items() if k in train_names}}
    train_options = TrainOptions(steps=steps, seconds=seconds, **train_kwargs)
    train_options.validate()
    nerf_options.validate()
    if train_options.progressive == "sape":
        raise InrkitError("--progressive sape is not wired for radiance fields (its mask is fed per-pixel losses at "
                          "fixed coordinates); use barf, nerfies, step or levels")
    train_options.resolve_defaults()  # the values used, recorded in config.json
    if train_options.backend == "tcnn":
        raise InrkitError("--backend tcnn is not wired for radiance fields yet; use auto, fast or torch")
    if resume:
        given = {k: v for k, v in {**options, "steps": steps, "seconds": seconds}.items()
                 if k in RESUMABLE and (v is not None or k in options)}
        return _resume(out, given, scene, report)
    if scene is None:
        raise InrkitError("nothing to fit: give a scene folder or a procedural scene")
    device = resolve_device(train_options.device)
    preset_name = _resolve_preset(nerf_options.preset, device)
    chosen = get_nerf_preset(preset_name)
    if train_options.ema_decay is None:
        train_options.ema_decay = chosen.ema_decay  # instant-ngp's EMA of the weights; recorded in config.json
    inputs = () if isinstance(scene, Scene) or not Path(scene).exists() else (Path(scene),)
    if out is not None:  # refused before the scene is read or rendered
        check_run_dir(Path(out), overwrite, inputs, resumable=True)
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="inrkit-nerf-"))
    staging = Path(tempfile.mkdtemp(prefix="inrkit-scene-"))
    try:
        opened = open_scene(scene, nerf_options, staging)
        opened.verify_images()  # a corrupt image fails here, before anything is written
        overrides = {k: v for k, v in (("grid.resolution", nerf_options.grid_resolution),
                                        ("march.steps_per_unit", nerf_options.steps_per_unit)) if v is not None}
        config_model = model_config(preset_name, opened.config(), nerf_options.backbone, overrides)
        if nerf_options.refine_poses:
            pose_lr = nerf_options.pose_lr or POSE_LR
            config_model["poses"] = {"n_cameras": len(opened.train_cameras), "lr": pose_lr,
                                     "lr_final": pose_lr * POSE_LR_FINAL / POSE_LR}
        seed_everything(train_options.seed)
        try:
            model = NerfModel(config_model).to(device)
        except ValueError as err:
            raise InrkitError(f"cannot build the NeRF: {err}") from None
        check_fit_backend(model, train_options, device)
        prepare_run_dir(run_dir, overwrite, inputs)
        if (staging / "scene").is_dir():  # a rendered procedural scene moves into the run
            shutil.move(str(staging / "scene"), run_dir / "scene")
            opened = Scene.from_blender(run_dir / "scene", downscale=nerf_options.downscale, holdout=nerf_options.holdout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    signal = _signal(opened, nerf_options, chosen, train_options)  # evaluation budget from the whole --seconds
    if not nerf_options.refine_poses:  # refined cameras move, and may come to see cells the initial ones miss
        model.grid.mark_unseen(signal.cameras, model.to_unit, model.from_unit)
    _charge_setup(train_options, time.perf_counter() - started)
    lr = train_options.lr if train_options.lr is not None else chosen.lr
    config = {
        "inrkit_version": __version__,
        "kind": "nerf",
        "field": config_model,
        "options": asdict(nerf_options) | {"preset": preset_name},
        "signal": {},
        "model": {"model": preset_name if nerf_options.backbone is None else f"{preset_name}+{nerf_options.backbone}"},
        "train": {**asdict(train_options), "lr": lr},
        "turntable": turntable_config(opened),
    }
    config["signal"] = signal.config()
    with removed_unless_trained(run_dir):
        write_json(run_dir / CONFIG_FILE, config)
        return _finish(train_run(config, model, signal, train_options, run_dir, device, resume=False, report=report))


def _charge_setup(options: TrainOptions, setup_seconds: float) -> None:
    """Take scene preparation beyond ``SETUP_FRACTION·S`` out of the training time ``S = options.seconds``.

    Rendering a procedural scene, reading images and masking the grid by the views may take
    ``SETUP_FRACTION·S``; what goes beyond is taken from training (which keeps at least
    ``MIN_TRAIN_FRACTION·S``), so that with the evaluation budget the command ends within about
    ``(1 + SETUP_FRACTION + EVAL_FRACTION)·S``.
    """
    if not options.seconds:
        return
    excess = setup_seconds - SETUP_FRACTION * options.seconds
    if excess <= 0:
        return
    training = max(options.seconds - excess, MIN_TRAIN_FRACTION * options.seconds)
    if not options.quiet:
        print(f"inrkit: preparing the scene took {setup_seconds:.0f} s, so training gets {training:.0f} s of "
              f"--seconds {options.seconds:g} (outputs included, the command ends within about 1.3x)", file=sys.stderr)
    options.seconds = training


def _signal(scene: Scene, options: NerfOptions, preset: Any, train: TrainOptions) -> RadianceSignal:
    """The training signal; with a time budget, an evaluation of the test views may take ``EVAL_FRACTION`` of it."""
    eval_seconds = EVAL_FRACTION * train.seconds if train.seconds else None
    return RadianceSignal(scene, options.target_samples or preset.target_samples, preset.initial_rays,
                          options.loss or preset.loss, options.train_background, eval_seconds, options.pose_noise(),
                          train.seed)


def _finish(run: Run) -> NeRF:
    """The :class:`NeRF` of a trained run, and one line on what the outputs cost."""
    metrics = {**run.metrics, "outputs_seconds": round(run.output_seconds, 3)}
    scene = run.signal.scene
    if not run.config["train"]["quiet"]:
        views, total = metrics.get("test_views", 0), len(scene.test_cameras)
        budget = f" (the evaluation budget, {EVAL_FRACTION:g} x --seconds, ran out)" if views < total else ""
        print(f"outputs written in {run.output_seconds:.1f} s: evaluation and renders of {views} of {total} "
              f"test views{budget} -> {run.dir / 'renders'}", file=sys.stderr)
    return NeRF(run.dir, run.field, run.config, metrics, run.signal, run.output_seconds, scene)


def _resume(out: str | Path | None, given: dict[str, Any], source: str | Path | Scene | None,
            report: bool | None = None) -> NeRF:
    """Continue the run in ``out``; the options in ``given`` (any of :data:`RESUMABLE`) replace the saved ones.
    ``source``: the scene (or its folder's new path when it moved); None reopens the recorded folder."""
    if out is not None and not is_nerf_run(out):
        raise InrkitError(f"cannot resume {out}: not a radiance-field run (inrkit nerf)")

    def reopen(config: dict[str, Any], options: TrainOptions) -> RadianceSignal:
        """The training signal (its evaluation budget from the resumed ``--seconds``)."""
        nerf_options = NerfOptions(**config["options"])
        if isinstance(source, Scene):
            scene = source
        else:
            folder = source if source is not None else config["signal"].get("source")
            if source is None and folder is not None and not Path(folder).is_dir() and (Path(out) / "scene").is_dir():
                folder = Path(out) / "scene"  # a procedural scene rendered into a run that was moved or copied
            if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
                raise InrkitError(f"--source {folder} is not a scene folder (transforms_*.json and images)")
            if folder is not None and not Path(folder).is_dir():
                raise InrkitError(f"the run's scene {folder} no longer exists; give its new path with --source PATH")
            scene = Scene.from_config({**config["signal"], "source": None if folder is None else str(folder)})
        return _signal(scene, nerf_options, get_nerf_preset(nerf_options.preset), options)

    return _finish(resume_run(out, given, reopen, report=report))


def load(run: str | Path, device: str = "cpu") -> NeRF:
    """Open a radiance-field run directory or ``.inrz`` file (weights, occupancy grid, metrics); the scene is
    not reopened."""
    if (Path(run) / CONFIG_FILE).is_file() and not is_nerf_run(run):
        raise InrkitError(f"{run} is not a radiance-field run (inrkit nerf)")
    opened = load_run(run)
    if not is_nerf_config(opened.config["field"]):
        raise InrkitError(f"{run} is not a radiance-field run (inrkit nerf)")
    return NeRF(opened.dir, opened.field.to(resolve_device(device)), opened.config, opened.metrics)


def is_nerf_run(path: str | Path) -> bool:
    """True when ``path`` is a run directory written by :func:`fit`."""
    try:
        return is_nerf_config(read_config(Path(path))["field"])
    except InrkitError:
        return False
