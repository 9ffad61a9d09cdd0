"""Procedural scenes with exact ground truth: coloured spheres and boxes, ray-traced analytically.

A definition (JSON, see ``scenes/*.json``) lists objects —
``{"type": "sphere", "center", "radius", "color"}`` or ``{"type": "box", "center", "half_size", "color"}``,
either with an optional ``"checker": {"color", "size"}`` texture — a directional ``light``, an
``ambient`` term and an optional ``aabb_scale`` (default 1; written into the transforms files, so a
scene with a distant backdrop trains with instant-ngp's outer cascades). A surface point with albedo
``a`` and normal ``n`` (facing the ray: surfaces are two-sided, so a camera inside a box sees its
walls lit) has the view-independent colour ``a·(ambient + (1 − ambient)·max(0, n·l))``. Pixels
average 2×2 stratified rays (premultiplied), missed rays are transparent, so the images are RGBA like NeRF-synthetic.

:func:`make_scene` writes a Blender-format folder (``transforms_{train,test}.json`` + PNGs) that
:meth:`inrkit.nerf.Scene.from_blender` opens; :func:`signed_distance` gives the exact surface for
checking extracted meshes.

Example:
    >>> folder = make_scene("spheres", "/tmp/spheres", resolution=32, n_train=8, n_test=2)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit.errors import InrkitError
from inrkit.files import read_json, write_json
from inrkit.io.images import write_image
from inrkit.nerf.cameras import Camera, look_at, pixel_rays

SCENES_DIR = Path(__file__).resolve().parents[2] / "scenes"
CAMERA_ANGLE_X = 0.6911112070083618  # NeRF-synthetic's horizontal field of view
CAMERA_RADIUS = 4.0


def load_definition(name_or_path: str | Path) -> dict[str, Any]:
    """A scene definition from a JSON path or a name in the repository's ``scenes/`` folder."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SCENES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SCENES_DIR.glob("*.json"))) if SCENES_DIR.is_dir() else "none"
        raise InrkitError(f"no procedural scene {name_or_path!r} (known: {known})")
    try:
        definition = read_json(path)
    except (OSError, ValueError) as err:
        raise InrkitError(f"cannot read scene definition {path}: {err}") from None
    if not isinstance(definition, dict) or not definition.get("objects"):
        raise InrkitError(f"scene definition {path} has no objects")
    aabb_scale = definition.get("aabb_scale", 1)
    if not isinstance(aabb_scale, int) or aabb_scale < 1 or aabb_scale & (aabb_scale - 1):
        raise InrkitError(f"scene definition {path}: aabb_scale must be a power of 2, got {aabb_scale!r}")
    if not isinstance(definition["objects"], list):
        raise InrkitError(f"scene definition {path}: objects must be a list")
    _check_vector(definition, "light", 3, path, "the scene")
    ambient = definition.get("ambient", 0.3)
    if not (_is_number(ambient) and 0 <= ambient <= 1):
        raise InrkitError(f"scene definition {path}: ambient must be a number in [0, 1], got {ambient!r}")
    for index, obj in enumerate(definition["objects"]):
        if not isinstance(obj, dict) or obj.get("type") not in ("sphere", "box"):
            kind = obj.get("type") if isinstance(obj, dict) else obj
            raise InrkitError(f"scene definition {path}: unknown object type {kind!r} (sphere | box)")
        where = f"object {index} ({obj['type']})"
        _check_vector(obj, "center", 3, path, where, required=True)
        _check_vector(obj, "color", 3, path, where, required=True)
        if obj["type"] == "sphere" and not (_is_number(obj.get("radius")) and obj["radius"] > 0):
            raise InrkitError(f"scene definition {path}: {where} needs a positive radius, got {obj.get('radius')!r}")
        if obj["type"] == "box":
            _check_vector(obj, "half_size", 3, path, where, required=True)
        checker = obj.get("checker")
        if checker is not None:
            if not isinstance(checker, dict) or not (_is_number(checker.get("size")) and checker["size"] > 0):
                raise InrkitError(f"scene definition {path}: {where} checker needs a positive size")
            _check_vector(checker, "color", 3, path, f"{where} checker", required=True)
    return definition


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_vector(entry: dict[str, Any], key: str, length: int, path: Path, where: str, required: bool = False) -> None:
    """``entry[key]`` must be ``length`` finite numbers (when present, or always when ``required``)."""
    if key not in entry and not required:
        return
    value = entry.get(key)
    if not (isinstance(value, list) and len(value) == length and all(_is_number(v) for v in value)):
        raise InrkitError(f"scene definition {path}: {where} {key} must be {length} numbers, got {value!r}")


def is_definition(path: str | Path) -> bool:
    """True for a ``.json`` file holding a procedural scene definition (not a transforms file)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "objects" in data and "frames" not in data


def _hit_sphere(o: torch.Tensor, d: torch.Tensor, obj: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    center = torch.tensor(obj["center"], dtype=o.dtype)
    oc = o - center
    b = (oc * d).sum(1)
    c = (oc * oc).sum(1) - obj["radius"] ** 2
    disc = b * b - c
    root = torch.sqrt(disc.clamp_min(0))
    t = torch.where(-b - root > 1e-6, -b - root, -b + root)
    t = torch.where((disc >= 0) & (t > 1e-6), t, torch.full_like(t, math.inf))
    normal = o + t[:, None] * d - center
    return t, normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _hit_box(o: torch.Tensor, d: torch.Tensor, obj: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    center = torch.tensor(obj["center"], dtype=o.dtype)
    half = torch.tensor(obj["half_size"], dtype=o.dtype)
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1, t2 = (center - half - o) / safe, (center + half - o) / safe
    t_near = torch.minimum(t1, t2).amax(1)
    t_far = torch.maximum(t1, t2).amin(1)
    t = torch.where(t_near > 1e-6, t_near, t_far)
    t = torch.where((t_far >= t_near) & (t > 1e-6), t, torch.full_like(t, math.inf))
    local = (o + t[:, None] * d - center) / half
    axis = local.abs().argmax(1)
    normal = torch.zeros_like(local)
    normal[torch.arange(len(axis)), axis] = torch.sign(local[torch.arange(len(axis)), axis])
    return t, normal


def _albedo(obj: dict[str, Any], points: torch.Tensor) -> torch.Tensor:
    colour = torch.tensor(obj["color"], dtype=points.dtype).expand(points.shape[0], 3)
    checker = obj.get("checker")
    if checker is None:
        return colour
    cells = torch.floor(points / float(checker["size"])).long().sum(1)
    return torch.where((cells % 2 == 0)[:, None], colour, torch.tensor(checker["color"], dtype=points.dtype))


def trace(definition: dict[str, Any], origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact colour ``(R, 3)`` and hit distance ``(R,)`` (``inf`` on a miss) of world rays (float64)."""
    o, d = origins.double(), directions.double()
    best = torch.full((o.shape[0],), math.inf, dtype=torch.float64)
    colour = torch.zeros(o.shape[0], 3, dtype=torch.float64)
    light = torch.tensor(definition.get("light", [0.0, 0.0, 1.0]), dtype=torch.float64)
    light = light / light.norm()
    ambient = float(definition.get("ambient", 0.3))
    for obj in definition["objects"]:
        t, normal = (_hit_sphere if obj["type"] == "sphere" else _hit_box)(o, d, obj)
        closer = t < best
        if not bool(closer.any()):
            continue
        points = o[closer] + t[closer, None] * d[closer]
        facing = normal[closer] * -torch.sign((normal[closer] * d[closer]).sum(1, keepdim=True))  # two-sided
        shade = ambient + (1 - ambient) * (facing @ light).clamp_min(0)
        colour[closer] = _albedo(obj, points) * shade[:, None]
        best = torch.where(closer, t, best)
    return colour.clamp(0, 1), best


def signed_distance(definition: dict[str, Any], points: np.ndarray) -> np.ndarray:
    """Exact signed distance ``(N,)`` to the union of the objects (negative inside)."""
    p = np.asarray(points, dtype=np.float64)
    distance = np.full(p.shape[0], np.inf)
    for obj in definition["objects"]:
        center = np.asarray(obj["center"])
        if obj["type"] == "sphere":
            d = np.linalg.norm(p - center, axis=1) - obj["radius"]
        else:
            q = np.abs(p - center) - np.asarray(obj["half_size"])
            d = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
        distance = np.minimum(distance, d)
    return distance


def render_view(definition: dict[str, Any], camera: Camera, supersampling: int = 2) -> np.ndarray:
    """Straight RGBA ``(H, W, 4)`` float32: ``s×s`` stratified rays per pixel, premultiplied average."""
    rows, cols = torch.meshgrid(torch.arange(camera.height), torch.arange(camera.width), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    premultiplied = torch.zeros(rows.numel(), 4, dtype=torch.float64)
    for sy in range(supersampling):
        for sx in range(supersampling):
            offsets = torch.tensor([(sx + 0.5) / supersampling, (sy + 0.5) / supersampling]).expand(rows.numel(), 2)
            origins, directions = pixel_rays(camera, rows, cols, offsets)
            colour, t = trace(definition, origins, directions)
            hit = torch.isfinite(t).double()[:, None]
            premultiplied += torch.cat((colour * hit, hit), dim=1)
    premultiplied /= supersampling**2
    alpha = premultiplied[:, 3:]
    rgb = torch.where(alpha > 0, premultiplied[:, :3] / alpha.clamp_min(1e-12), torch.zeros_like(premultiplied[:, :3]))
    return torch.cat((rgb, alpha), 1).reshape(camera.height, camera.width, 4).float().numpy()


def hemisphere_poses(n: int, seed: int, radius: float = CAMERA_RADIUS) -> list[np.ndarray]:
    """``n`` camera-to-world matrices at random points of the upper hemisphere (elevation 10°–80°), looking at 0."""
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(n):
        azimuth = rng.uniform(0, 2 * math.pi)
        elevation = math.asin(rng.uniform(math.sin(math.radians(10)), math.sin(math.radians(80))))
        eye = radius * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                                 math.sin(elevation)])
        poses.append(look_at(eye))
    return poses


def ring_poses(n: int, elevation_deg: float = 30.0, radius: float = CAMERA_RADIUS, phase: float = 0.37) -> list[np.ndarray]:
    """``n`` camera-to-world matrices evenly spaced on a ring at ``elevation_deg``, looking at 0."""
    elevation = math.radians(elevation_deg)
    poses = []
    for index in range(n):
        azimuth = phase + 2 * math.pi * index / n
        eye = radius * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                                 math.sin(elevation)])
        poses.append(look_at(eye))
    return poses


def make_scene(name_or_path: str | Path, out_dir: str | Path, resolution: int = 128, n_train: int = 60,
               n_test: int = 8, seed: int = 0, supersampling: int = 2) -> Path:
    """Render a procedural scene into a Blender-format folder; returns ``out_dir``.

    The folder also gets ``scene.json``, the definition itself (for :func:`signed_distance`).
    """
    definition = load_definition(name_or_path)
    aabb_scale = definition.get("aabb_scale", 1)
    if resolution < 8 or n_train < 2 or n_test < 1:
        raise InrkitError("procedural scenes need resolution >= 8, at least 2 training and 1 test view")
    folder = Path(out_dir)
    for split, poses in (("train", hemisphere_poses(n_train, seed)), ("test", ring_poses(n_test))):
        frames = []
        for index, pose in enumerate(poses):
            camera = Camera.from_fov(pose, resolution, resolution, CAMERA_ANGLE_X)
            rgba = render_view(definition, camera, supersampling)
            write_image(folder / split / f"r_{index}.png", np.round(rgba * 255).astype(np.uint8))
            frames.append({"file_path": f"./{split}/r_{index}", "transform_matrix": pose.tolist()})
        write_json(folder / f"transforms_{split}.json", {"camera_angle_x": CAMERA_ANGLE_X, "aabb_scale": aabb_scale,
                                                         "frames": frames})
    write_json(folder / "scene.json", definition)
    return folder
