"""Radiance-field machinery: scenes, cameras and rays, occupancy grid, ray marching, volume rendering.

The NeRF model (a Field with density and colour heads) is :mod:`inrkit.fields.nerf_model`; fitting,
loading and rendering radiance fields are workflows of :mod:`inrkit.api.nerf`, also reachable here as
``inrkit.nerf.fit``, ``inrkit.nerf.load``, ``inrkit.nerf.NeRF`` and ``inrkit.nerf.NerfOptions``.

Example:
    >>> import inrkit
    >>> scene = inrkit.nerf.Scene.from_blender("lego/")                        # doctest: +SKIP
    >>> nerf = inrkit.nerf.fit(scene, preset="instant-ngp", seconds=300)       # doctest: +SKIP
    >>> nerf.render(scene.test_cameras[0])["rgb"].shape                         # doctest: +SKIP
    (800, 800, 3)
"""

from inrkit.nerf.cameras import Camera, camera_rays, pixel_rays
from inrkit.nerf.occupancy import OccupancyGrid
from inrkit.nerf.procedural import make_scene
from inrkit.nerf.scene import Scene, composite

__all__ = ["Camera", "OccupancyGrid", "Scene", "camera_rays", "composite", "make_scene", "pixel_rays"]
