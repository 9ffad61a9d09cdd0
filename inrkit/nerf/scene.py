"""Scenes for radiance fields: posed RGB(A) views in train/val/test splits, loaded lazily.

Two folder layouts are read by :meth:`Scene.from_blender`:

* **Blender / NeRF-synthetic**: ``transforms_{train,val,test}.json``, each with ``camera_angle_x``
  (and optionally ``camera_angle_y``) and ``frames[i] = {"file_path": "./train/r_0", "transform_matrix": 4×4}``
  (a missing image suffix means ``.png``).
* **instant-ngp**: one ``transforms.json`` with intrinsics ``fl_x fl_y cx cy w h`` (or ``camera_angle_x``),
  OpenCV distortion ``k1 k2 p1 p2``, ``aabb_scale``, and the world-to-unit-cube map ``scale``/``offset``
  (defaults 0.33 and (0.5, 0.5, 0.5), as instant-ngp). Frames may override any intrinsic.

A missing ``test`` split is made by holding out every ``holdout``-th view (indices 0, k, 2k, …) of
the training views; a missing ``val`` split is empty. Positions map into instant-ngp's unit cube by
``p_unit = scale · p_world + offset``; the scene box is ``[0.5 − aabb_scale/2, 0.5 + aabb_scale/2]³``.

Images are straight (not premultiplied) RGBA in [0, 1]; RGB files get alpha 1. They are decoded when
first asked for and kept in an LRU cache bounded by ``cache_mb``. A downscale factor ``s`` averages
``s×s`` blocks of premultiplied colour (exact area filtering of RGBA).

Example:
    >>> scene = Scene.from_blender("lego/", downscale=2)            # doctest: +SKIP
    >>> image = scene.image("test", 0)                                # (400, 400, 4) float32
    >>> rgb = composite(image, background=1.0)                        # onto white
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import read_json
from inrkit.io.images import IMAGE_SUFFIXES, image_size, read_image
from inrkit.nerf.cameras import Camera, check_pose

SPLITS = ("train", "val", "test")
DEFAULT_SCALE = 0.33
DEFAULT_OFFSET = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class View:
    """One posed image: its camera (already downscaled) and file."""

    camera: Camera
    path: Path


def composite(rgba: np.ndarray, background: float | np.ndarray = 1.0) -> np.ndarray:
    """Straight RGBA ``(..., 4)`` over a background: ``rgb·α + bg·(1 − α)`` → ``(..., 3)``."""
    alpha = rgba[..., 3:4]
    return rgba[..., :3] * alpha + np.asarray(background, dtype=np.float32) * (1.0 - alpha)


def _to_rgba(raw: np.ndarray) -> np.ndarray:
    """Any image array from :func:`read_image` → straight RGBA float32 in [0, 1]."""
    values = raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        values /= float(np.iinfo(raw.dtype).max)
    channels = values.shape[2]
    if channels in (1, 2):  # grey (+ alpha)
        values = np.concatenate([np.repeat(values[:, :, :1], 3, axis=2), values[:, :, 1:]], axis=2)
    if values.shape[2] == 3:
        values = np.concatenate([values, np.ones_like(values[:, :, :1])], axis=2)
    return np.clip(values, 0.0, 1.0)


def downscale_rgba(rgba: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor×factor`` blocks of premultiplied colour; returns straight RGBA."""
    if factor == 1:
        return rgba
    height, width = rgba.shape[0] // factor, rgba.shape[1] // factor
    cropped = rgba[: height * factor, : width * factor]
    premultiplied = np.concatenate([cropped[..., :3] * cropped[..., 3:], cropped[..., 3:]], axis=2)
    blocks = premultiplied.reshape(height, factor, width, factor, 4).mean(axis=(1, 3))
    alpha = blocks[..., 3:]
    rgb = np.where(alpha > 0, blocks[..., :3] / np.maximum(alpha, 1e-12), 0.0)
    return np.concatenate([rgb, alpha], axis=2).astype(np.float32)


def _resolve_image(folder: Path, file_path: str, where: str) -> Path:
    path = (folder / file_path).resolve()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        for suffix in (".png", *IMAGE_SUFFIXES):
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                return candidate
    if not path.is_file():
        raise InrkitError(f"{where}: image {file_path!r} not found in {folder}")
    return path


def _intrinsics(meta: dict[str, Any], frame: dict[str, Any], width: int, height: int) -> dict[str, float]:
    """Focal lengths, principal point and distortion; frame keys override the file's."""
    def get(key: str, default: Any = None) -> Any:
        return frame.get(key, meta.get(key, default))

    fx = get("fl_x")
    if fx is None:
        angle_x = get("camera_angle_x")
        if angle_x is None:
            raise InrkitError("transforms give neither fl_x nor camera_angle_x")
        fx = 0.5 * width / math.tan(0.5 * float(angle_x))
    fy = get("fl_y")
    if fy is None:
        angle_y = get("camera_angle_y")
        fy = fx if angle_y is None else 0.5 * height / math.tan(0.5 * float(angle_y))
    values = {"fx": float(fx), "fy": float(fy), "cx": float(get("cx", width / 2)), "cy": float(get("cy", height / 2)),
              "k1": float(get("k1", 0.0)), "k2": float(get("k2", 0.0)), "p1": float(get("p1", 0.0)), "p2": float(get("p2", 0.0))}
    if not all(math.isfinite(v) for v in values.values()) or values["fx"] <= 0 or values["fy"] <= 0:
        raise InrkitError(f"invalid camera intrinsics {values}")
    return values


class Scene:
    """Posed views in splits plus the world-to-unit-cube map; see the module docstring."""

    def __init__(self, splits: dict[str, list[View]], scale: float = DEFAULT_SCALE,
                 offset: tuple[float, float, float] = DEFAULT_OFFSET, aabb_scale: int = 1, source: str | None = None,
                 downscale: int = 1, holdout: int = 8, cache_mb: float = 512.0) -> None:
        self.splits = {name: list(splits.get(name, [])) for name in SPLITS}
        if not self.splits["train"]:
            raise InrkitError("the scene has no training views")
        if not self.splits["test"]:
            raise InrkitError("the scene has no test views")
        if aabb_scale < 1 or aabb_scale > 128 or aabb_scale & (aabb_scale - 1):
            raise InrkitError(f"aabb_scale must be a power of 2 between 1 and 128, got {aabb_scale}")
        self.scale = float(scale)
        self.offset = tuple(float(v) for v in offset)
        self.aabb_scale = int(aabb_scale)
        self.source = source
        self.downscale = downscale
        self.holdout = holdout
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cached_bytes = 0

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_blender(cls, path: str | Path, downscale: int = 1, holdout: int = 8, cache_mb: float = 512.0) -> Scene:
        """Open a Blender (``transforms_{split}.json``) or instant-ngp (``transforms.json``) scene folder."""
        folder = Path(path)
        if not folder.is_dir():
            raise InrkitError(f"cannot open scene {folder}: not a directory")
        if not isinstance(downscale, int) or downscale < 1:
            raise InrkitError(f"downscale must be a positive integer, got {downscale}")
        if holdout < 2:
            raise InrkitError(f"holdout must be at least 2 (every k-th view is a test view), got {holdout}")
        split_files = {name: folder / f"transforms_{name}.json" for name in SPLITS}
        if split_files["train"].is_file():
            metas = {name: cls._read_transforms(file) for name, file in split_files.items() if file.is_file()}
        elif (folder / "transforms.json").is_file():
            metas = {"all": cls._read_transforms(folder / "transforms.json")}
        else:
            raise InrkitError(f"cannot open scene {folder}: no transforms_train.json or transforms.json in it")
        views = {name: cls._views(folder, meta, name, downscale) for name, meta in metas.items()}
        if "all" in views:
            views = {"train": views.pop("all")}
        for name, listed in views.items():
            if not listed:
                raise InrkitError(f"cannot open scene {folder}: split {name!r} has no frames")
        if "test" not in views:
            everything = views["train"]
            if len(everything) < 2:
                raise InrkitError(f"cannot open scene {folder}: {len(everything)} view(s) cannot be split into train and test")
            views["test"] = everything[::holdout]
            views["train"] = [view for index, view in enumerate(everything) if index % holdout]
        first = next(iter(metas.values()))
        scale = float(first.get("scale", DEFAULT_SCALE))
        offset = first.get("offset", DEFAULT_OFFSET)
        if not (math.isfinite(scale) and scale > 0) or len(offset) != 3:
            raise InrkitError(f"cannot open scene {folder}: invalid scale {scale} or offset {offset}")
        return cls(views, scale=scale, offset=tuple(offset), aabb_scale=int(first.get("aabb_scale", 1)),
                   source=str(folder.resolve()), downscale=downscale, holdout=holdout, cache_mb=cache_mb)

    @staticmethod
    def _read_transforms(path: Path) -> dict[str, Any]:
        try:
            meta = read_json(path)
        except (OSError, ValueError) as err:
            raise InrkitError(f"cannot read {path}: {err}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
            raise InrkitError(f"cannot read {path}: no 'frames' list")
        if meta.get("is_fisheye") or meta.get("fisheye"):
            raise InrkitError(f"cannot read {path}: fisheye cameras are not supported")
        return meta

    @staticmethod
    def _views(folder: Path, meta: dict[str, Any], split: str, downscale: int) -> list[View]:
        views: list[View] = []
        size: tuple[int, int] | None = None
        for index, frame in enumerate(meta["frames"]):
            where = f"{split} frame {index}"
            if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
                raise InrkitError(f"{where}: needs 'file_path' and 'transform_matrix'")
            image_path = _resolve_image(folder, str(frame["file_path"]), where)
            try:
                file_height, file_width = image_size(image_path)
            except InrkitError as err:
                raise InrkitError(f"{where}: {err}") from None
            except Exception as err:
                raise InrkitError(f"{where}: cannot read image {image_path.name} ({err})") from None
            if size is not None and size != (file_height, file_width):
                raise InrkitError(f"{where}: image {image_path.name} is {file_width}x{file_height}, but earlier views are "
                                  f"{size[1]}x{size[0]}; all views of a split must have one size")
            size = (file_height, file_width)
            width = int(frame.get("w", meta.get("w", file_width)))
            height = int(frame.get("h", meta.get("h", file_height)))
            if (height, width) != (file_height, file_width):
                raise InrkitError(f"{where}: transforms say {width}x{height}, "
                                  f"image {image_path.name} is {file_width}x{file_height}")
            if width // downscale < 2 or height // downscale < 2:
                raise InrkitError(f"downscale {downscale} leaves less than 2x2 pixels of {width}x{height} images")
            k = _intrinsics(meta, frame, width, height)
            pose = check_pose(frame["transform_matrix"], where)
            camera = Camera(pose, width, height, k["fx"], k["fy"], k["cx"], k["cy"], (k["k1"], k["k2"], k["p1"], k["p2"]))
            views.append(View(camera.scaled(downscale) if downscale > 1 else camera, image_path))
        return views

    # -- accessors ------------------------------------------------------------------------------
    @property
    def train_cameras(self) -> list[Camera]:
        return [view.camera for view in self.splits["train"]]

    @property
    def val_cameras(self) -> list[Camera]:
        return [view.camera for view in self.splits["val"]]

    @property
    def test_cameras(self) -> list[Camera]:
        return [view.camera for view in self.splits["test"]]

    def cameras(self, split: str) -> list[Camera]:
        if split not in SPLITS:
            raise InrkitError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return [view.camera for view in self.splits[split]]

    def image(self, split: str, index: int) -> np.ndarray:
        """Straight RGBA ``(H, W, 4)`` float32 in [0, 1] of view ``index`` of ``split`` (cached)."""
        view = self.splits[split][index]
        cached = self._cache.get(view.path)
        if cached is not None:
            self._cache.move_to_end(view.path)
            return cached
        try:
            rgba = _to_rgba(read_image(view.path))
        except InrkitError as err:
            raise InrkitError(f"{split} view {index}: {err}") from None
        rgba = downscale_rgba(rgba, self.downscale)
        if rgba.shape[:2] != (view.camera.height, view.camera.width):
            raise InrkitError(f"{split} view {index}: image {view.path.name} changed size since the scene was opened")
        if not np.isfinite(rgba).all():
            raise InrkitError(f"{split} view {index}: image {view.path.name} contains NaN or infinite values")
        self._cache[view.path] = rgba
        self._cached_bytes += rgba.nbytes
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.nbytes
        return rgba

    def verify_images(self) -> None:
        """Decode every image once (so a corrupt file fails before training starts, not after)."""
        for split, views in self.splits.items():
            for index in range(len(views)):
                self.image(split, index)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The scene box in world coordinates: ``(low (3,), high (3,))``."""
        half = 0.5 * self.aabb_scale
        low_unit, high_unit = 0.5 - half, 0.5 + half
        offset = np.asarray(self.offset)
        return (low_unit - offset) / self.scale, (high_unit - offset) / self.scale

    def config(self) -> dict[str, Any]:
        """JSON-able description sufficient to reopen the scene (:meth:`from_config`)."""
        return {"kind": "radiance", "source": self.source, "downscale": self.downscale, "holdout": self.holdout,
                "scale": self.scale, "offset": list(self.offset), "aabb_scale": self.aabb_scale,
                "n_views": {name: len(views) for name, views in self.splits.items()},
                "test_cameras": [camera.to_json() for camera in self.test_cameras]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Scene:
        if config.get("source") is None:
            raise InrkitError("this run's scene was built in memory; it cannot be reopened")
        return cls.from_blender(config["source"], downscale=int(config["downscale"]), holdout=int(config["holdout"]))
