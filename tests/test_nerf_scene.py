"""Scene parsing (Blender and instant-ngp transforms), procedural scenes, lazy images, and bad scene folders."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.nerf.procedural import load_definition, make_scene, signed_distance
from inrkit.nerf.scene import Scene, composite, downscale_rgba


@pytest.fixture(scope="module")
def blender_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16x16 procedural scene in Blender layout: 6 training and 2 test views."""
    return make_scene("spheres", tmp_path_factory.mktemp("scene") / "spheres", resolution=16, n_train=6, n_test=2)


def copy_scene(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_blender_layout(blender_dir: Path):
    scene = Scene.from_blender(blender_dir)
    assert len(scene.train_cameras) == 6 and len(scene.test_cameras) == 2 and scene.val_cameras == []
    camera = scene.test_cameras[0]
    meta = json.loads((blender_dir / "transforms_test.json").read_text())
    assert camera.fx == pytest.approx(0.5 * 16 / math.tan(0.5 * meta["camera_angle_x"]))
    assert (camera.cx, camera.cy, camera.width, camera.height) == (8.0, 8.0, 16, 16)
    np.testing.assert_allclose(camera.c2w, meta["frames"][0]["transform_matrix"])
    image = scene.image("test", 0)
    assert image.shape == (16, 16, 4) and image.dtype == np.float32
    assert 0.0 < image[..., 3].mean() < 1.0  # objects on a transparent background
    assert scene.image("test", 0) is image  # cached
    assert (scene.scale, scene.offset, scene.aabb_scale) == (0.33, (0.5, 0.5, 0.5), 1)


def test_procedural_ground_truth_is_exact(blender_dir: Path):
    definition = load_definition("spheres")
    scene = Scene.from_blender(blender_dir)
    alpha = scene.image("test", 0)[..., 3]
    assert set(np.unique(np.round(alpha * 4)).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}  # 2x2 supersampling
    assert signed_distance(definition, np.array([[-0.2, 0.0, 0.0]]))[0] == pytest.approx(-0.5)
    assert signed_distance(definition, np.array([[0.0, 0.0, 2.0]]))[0] > 1.0


def test_instant_ngp_layout_with_holdout_distortion_and_box(blender_dir: Path, tmp_path: Path):
    folder = copy_scene(blender_dir, tmp_path / "ngp")
    frames = json.loads((folder / "transforms_train.json").read_text())["frames"]
    for path in folder.glob("transforms_*.json"):
        path.unlink()
    meta = {"fl_x": 20.0, "fl_y": 21.0, "cx": 7.5, "cy": 8.5, "w": 16, "h": 16, "k1": -0.05, "k2": 0.01, "p1": 0.001,
            "p2": -0.002, "aabb_scale": 4, "scale": 0.25, "offset": [0.5, 0.4, 0.5], "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(meta))
    scene = Scene.from_blender(folder, holdout=3)
    assert len(scene.test_cameras) == 2 and len(scene.train_cameras) == 4  # views 0 and 3 held out
    np.testing.assert_allclose(scene.test_cameras[1].c2w, frames[3]["transform_matrix"])
    camera = scene.train_cameras[0]
    assert (camera.fx, camera.fy, camera.cx, camera.cy) == (20.0, 21.0, 7.5, 8.5)
    assert camera.distortion == (-0.05, 0.01, 0.001, -0.002)
    assert (scene.scale, scene.offset, scene.aabb_scale) == (0.25, (0.5, 0.4, 0.5), 4)
    low, high = scene.bounds()
    np.testing.assert_allclose(low, (np.array([-1.5] * 3) - [0.5, 0.4, 0.5]) / 0.25)
    np.testing.assert_allclose(high, (np.array([2.5] * 3) - [0.5, 0.4, 0.5]) / 0.25)


def test_downscale_averages_premultiplied_colour(blender_dir: Path):
    scene = Scene.from_blender(blender_dir, downscale=2)
    camera = scene.test_cameras[0]
    full = Scene.from_blender(blender_dir).test_cameras[0]
    assert (camera.width, camera.height, camera.fx) == (8, 8, pytest.approx(full.fx / 2))
    assert scene.image("test", 0).shape == (8, 8, 4)
    rgba = np.zeros((2, 2, 4), np.float32)
    rgba[0, 0] = [1, 0, 0, 1]  # one red opaque pixel, three transparent ones
    small = downscale_rgba(rgba, 2)
    np.testing.assert_allclose(small[0, 0], [1, 0, 0, 0.25])  # colour stays red, coverage 1/4
    np.testing.assert_allclose(composite(small, 1.0)[0, 0], [1, 0.75, 0.75])


def test_image_cache_is_bounded(blender_dir: Path):
    scene = Scene.from_blender(blender_dir, cache_mb=16 * 16 * 4 * 4 * 2.5 / 2**20)
    for index in range(6):
        scene.image("train", index)
    assert len(scene._cache) == 2


# -- bad input ----------------------------------------------------------------------------------
def _edit_frames(folder: Path, split: str, edit) -> None:
    path = folder / f"transforms_{split}.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def _broken(blender_dir: Path, tmp_path: Path, problem: str) -> Path:
    folder = copy_scene(blender_dir, tmp_path / problem)
    if problem == "no-transforms":
        for path in folder.glob("transforms_*.json"):
            path.unlink()
    elif problem == "missing-image":
        (folder / "train" / "r_2.png").unlink()
    elif problem == "unreadable-image":
        (folder / "train" / "r_1.png").write_bytes(b"not a png at all")
    elif problem == "truncated-image":
        data = (folder / "test" / "r_1.png").read_bytes()
        (folder / "test" / "r_1.png").write_bytes(data[: len(data) // 2])
    elif problem == "different-sizes":
        from inrkit.io.images import write_image

        write_image(folder / "train" / "r_3.png", np.zeros((8, 8, 4), np.uint8))
    elif problem == "nan-pose":
        _edit_frames(folder, "train", lambda m: m["frames"][1]["transform_matrix"][0].__setitem__(3, float("nan")))
    elif problem == "singular-pose":
        _edit_frames(folder, "test", lambda m: m["frames"][0].__setitem__("transform_matrix", [[0.0] * 4] * 3 + [[0, 0, 0, 1]]))
    elif problem == "empty-split":
        _edit_frames(folder, "test", lambda m: m.__setitem__("frames", []))
    elif problem == "bad-json":
        (folder / "transforms_train.json").write_text("{not json")
    return folder


BAD_SCENES = {
    "no-transforms": "no transforms_train.json or transforms.json",
    "missing-image": "not found",
    "unreadable-image": "not a readable image",
    "truncated-image": "not a readable image",
    "different-sizes": "must have one size",
    "nan-pose": "NaN",
    "singular-pose": "not invertible",
    "empty-split": "has no frames",
    "bad-json": "cannot read",
}


@pytest.mark.parametrize("problem", sorted(BAD_SCENES))
def test_bad_scene_one_line_exit_2_nothing_written(blender_dir: Path, tmp_path: Path, capsys, problem: str):
    folder = _broken(blender_dir, tmp_path, problem)
    out = tmp_path / f"run-{problem}"
    status = main(["nerf", str(folder), "--out", str(out), "--steps", "5", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("inrkit: error:") and "\n" not in err and BAD_SCENES[problem] in err
    assert not out.exists()


def test_scene_errors_from_the_api(blender_dir: Path, tmp_path: Path):
    with pytest.raises(InrkitError, match="not a directory"):
        Scene.from_blender(tmp_path / "nowhere")
    with pytest.raises(InrkitError, match="downscale"):
        Scene.from_blender(blender_dir, downscale=0)
    with pytest.raises(InrkitError, match="no procedural scene"):
        make_scene("no-such-scene", tmp_path / "x")
