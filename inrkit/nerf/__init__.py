"""Radiance fields: scenes, cameras and rays, occupancy grid, ray marching, volume rendering, the NeRF field.

Example:
    >>> import inrkit
    >>> scene = inrkit.nerf.Scene.from_blender("lego/")                        # doctest: +SKIP
    >>> nerf = inrkit.nerf.fit(scene, preset="instant-ngp", seconds=300)       # doctest: +SKIP
    >>> nerf.render(scene.test_cameras[0])["rgb"].shape                         # doctest: +SKIP
    (800, 800, 3)
"""

from inrkit.nerf.cameras import Camera, camera_rays, pixel_rays
from inrkit.nerf.field import NerfField
from inrkit.nerf.model import NerfModel
from inrkit.nerf.occupancy import OccupancyGrid
from inrkit.nerf.presets import PRESETS
from inrkit.nerf.procedural import make_scene
from inrkit.nerf.scene import Scene, composite

from inrkit.nerf.api import NeRF, NerfOptions, fit, load  # isort: skip  (imports the layers above)

__all__ = [
    "PRESETS",
    "Camera",
    "NeRF",
    "NerfField",
    "NerfModel",
    "NerfOptions",
    "OccupancyGrid",
    "Scene",
    "camera_rays",
    "composite",
    "fit",
    "load",
    "make_scene",
    "pixel_rays",
]
