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


TARGET = 1 << 13  # samples per step of the tiny fit below


@pytest.fixture(scope="module")
def backdrop(tmp_path_factory: pytest.TempPathFactory) -> inrkit.nerf.NeRF:
    """A 16² render of scenes/backdrop.json (aabb_scale 4, every pixel opaque), 12 CPU steps."""
    folder = tmp_path_factory.mktemp("backdrop")
    scene = make_scene("backdrop", folder / "scene", resolution=16, n_train=8, n_test=2)
    torch.manual_seed(0)
    return inrkit.nerf.fit(scene, preset="instant-ngp-cpu", steps=12, out=folder / "run", device="cpu", quiet=True,
                           target_samples=TARGET, grid_resolution=16)


def test_backdrop_scene_trains_with_a_sane_ray_batch(backdrop: inrkit.nerf.NeRF):
    """After the batch adapts, a step holds about the target number of samples, spread over enough rays."""
    assert backdrop.model.grid.n_cascades == 3
    samples, rays = backdrop.metrics["samples_per_step"], backdrop.metrics["rays_per_step"]
    assert 0.5 * TARGET <= samples <= 1.5 * TARGET
    bounded_steps = StepSchedule.instant_ngp(1, 256).max_steps(math.sqrt(3))
    assert samples / rays <= 1.5 * bounded_steps  # samples per ray, with the grid still in its warm-up
    assert rays >= 64 and backdrop.metrics["test_views"] == 2


def test_outputs_reuse_the_evaluation_and_respect_its_budget(backdrop: inrkit.nerf.NeRF, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch):
    from inrkit.signals import radiance

    renders = sorted(p.name for p in (backdrop.dir / "renders").iterdir())
    assert renders == ["depth_000.png", "depth_001.png", "metrics.json", "test_000.png", "test_001.png"]
    signal = radiance.RadianceSignal(backdrop.scene, eval_seconds=0.0)
    assert signal.evaluate(backdrop.model)["test_views"] == 1  # at least one view, however small the budget
    calls = []
    monkeypatch.setattr(radiance, "render_camera", lambda *args, **kwargs: calls.append(args))
    signal.write_outputs(backdrop.model, tmp_path)
    assert calls == [] and (tmp_path / "renders" / "test_000.png").is_file()
