"""Scenes with ``aabb_scale > 1`` (distant backgrounds, real captures): sample counts stay close to a bounded scene's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import inrkit
from inrkit.nerf.marching import StepSchedule
from inrkit.nerf.procedural import make_scene


@pytest.mark.parametrize("steps_per_unit", [256, 1024])
def test_cone_stepping_keeps_steps_per_ray_close_to_a_bounded_scene(steps_per_unit: int):
    bounded = StepSchedule.instant_ngp(1, steps_per_unit).max_steps(math.sqrt(3))
    unbounded = StepSchedule.instant_ngp(4, steps_per_unit).max_steps(4 * math.sqrt(3))
    assert unbounded <= 1.5 * bounded  # a fixed cone of 1/256 at 256 steps/unit needed 4x


def test_backdrop_scene_trains_with_a_sane_ray_batch(tmp_path: Path):
    """A 16² render of scenes/backdrop.json (aabb_scale 4, every pixel opaque): after the batch adapts,
    a step holds about the target number of samples, spread over enough rays."""
    scene = make_scene("backdrop", tmp_path / "scene", resolution=16, n_train=8, n_test=1)
    torch.manual_seed(0)
    target = 1 << 13
    nerf = inrkit.nerf.fit(scene, preset="instant-ngp-cpu", steps=12, out=tmp_path / "run", device="cpu", quiet=True,
                           target_samples=target, grid_resolution=16)
    assert nerf.model.grid.n_cascades == 3
    samples, rays = nerf.metrics["samples_per_step"], nerf.metrics["rays_per_step"]
    assert 0.5 * target <= samples <= 1.5 * target
    bounded_steps = StepSchedule.instant_ngp(1, 256).max_steps(math.sqrt(3))
    assert samples / rays <= 1.5 * bounded_steps  # samples per ray, with the grid still in its warm-up
    assert rays >= 64 and nerf.metrics["test_views"] == 1
