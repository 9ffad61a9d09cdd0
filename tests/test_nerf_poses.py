"""Camera pose refinement (BARF): se(3) exponential map, Procrustes alignment, perturbation, the pose group of the
optimiser, rays of corrected cameras, resume, and recovery of a known perturbation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import inrkit
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.fields.nerf_model import NerfModel
from inrkit.fields.nerf_presets import model_config
from inrkit.nerf.poses import (
    PoseCorrection,
    Similarity,
    perturb_poses,
    pose_errors,
    procrustes,
    rotation_angle,
    se3_exp,
    skew,
)
from inrkit.nerf.procedural import make_scene
from inrkit.nerf.scene import Scene
from inrkit.signals.radiance import RadianceSignal
from inrkit.train import Trainer, TrainOptions
from inrkit.train.optim import build_optimizer
from inrkit.train.schedules import group_lr


def _twist(xi: torch.Tensor) -> torch.Tensor:
    """The 4×4 matrix ``[[ω]×, u; 0, 0]`` of the Lie algebra, whose matrix exponential is ``exp(ξ)``."""
    matrix = torch.zeros(4, 4, dtype=xi.dtype)
    matrix[:3, :3] = skew(xi[:3])
    matrix[:3, 3] = xi[3:]
    return matrix


def test_se3_exp_hand_computed_values():
    # 90° about z with u = (1, 0, 0): R = [[0, -1, 0], [1, 0, 0], [0, 0, 1]], and with θ = π/2,
    # V·u = u + B·ω×u + C·ω×(ω×u) = (1 − C·π²/4, B·π/2, 0) = (2/π, 2/π, 0)  (B = 4/π², C = (π/2 − 1)·8/π³)
    motion = se3_exp(torch.tensor([0.0, 0.0, math.pi / 2, 1.0, 0.0, 0.0], dtype=torch.float64))
    expected = torch.tensor([[0.0, -1.0, 0.0, 2 / math.pi], [1.0, 0.0, 0.0, 2 / math.pi], [0.0, 0.0, 1.0, 0.0],
                             [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(motion, expected, rtol=0, atol=1e-15)
    # a pure translation is itself; exp(0) is the identity (float32 too), with gradient 1 on u and 0 on ω
    torch.testing.assert_close(se3_exp(torch.tensor([0.0, 0, 0, 0.3, -0.2, 0.1], dtype=torch.float64))[:3, 3],
                               torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64), rtol=0, atol=0)
    zero = torch.zeros(3, 6, requires_grad=True)
    assert torch.equal(se3_exp(zero), torch.eye(4).expand(3, 4, 4))
    se3_exp(zero).sum().backward()
    assert torch.equal(zero.grad, torch.tensor([[0.0, 0, 0, 1, 1, 1]] * 3))


def test_se3_exp_matches_the_matrix_exponential_and_its_small_angle_limit():
    generator = torch.Generator().manual_seed(0)
    for scale in (1e-6, 0.0999, 0.1001, 0.5, 2.0, 3.0):  # both sides of the Taylor switch at θ = 0.1
        xi = torch.randn(6, generator=generator, dtype=torch.float64)
        xi[:3] *= scale / xi[:3].norm()
        motion = se3_exp(xi)
        torch.testing.assert_close(motion, torch.linalg.matrix_exp(_twist(xi)), rtol=0, atol=1e-13)
        rotation = motion[:3, :3]
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-14)
        assert float(rotation_angle(rotation, torch.eye(3, dtype=torch.float64))) == pytest.approx(scale, abs=1e-7)
    # first order: exp(ξ) ≈ I + [ω]× and V·u ≈ u + ½ω×u, with second-order remainders
    xi = torch.tensor([1e-5, -2e-5, 3e-5, 0.5, 0.2, -0.1], dtype=torch.float64)
    first_order = torch.eye(3, dtype=torch.float64) + skew(xi[:3])
    torch.testing.assert_close(se3_exp(xi)[:3, :3], first_order, rtol=0, atol=1e-9)
    torch.testing.assert_close(se3_exp(xi)[:3, 3], xi[3:] + 0.5 * torch.linalg.cross(xi[:3], xi[3:]), rtol=0, atol=1e-9)


def _random_rotation(generator: torch.Generator) -> torch.Tensor:
    axis_angle = torch.randn(3, generator=generator, dtype=torch.float64)
    return se3_exp(torch.cat((axis_angle, torch.zeros(3, dtype=torch.float64))))[:3, :3]


def test_procrustes_recovers_a_known_similarity():
    generator = torch.Generator().manual_seed(1)
    points = torch.randn(12, 3, generator=generator, dtype=torch.float64)
    known = Similarity(1.7, _random_rotation(generator), torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64))
    moved = known.scale * points @ known.rotation.T + known.translation
    found = procrustes(points, moved)
    assert found.scale == pytest.approx(1.7, abs=1e-12)
    torch.testing.assert_close(found.rotation, known.rotation, rtol=0, atol=1e-12)
    torch.testing.assert_close(found.translation, known.translation, rtol=0, atol=1e-12)
    # poses move with it, and the inverse takes them back
    poses = se3_exp(torch.randn(12, 6, generator=generator, dtype=torch.float64))
    poses[:, :3, 3] = points
    there = found.apply(poses)
    torch.testing.assert_close(there[:, :3, 3], moved, rtol=0, atol=1e-12)
    torch.testing.assert_close(found.inverse().apply(there), poses, rtol=0, atol=1e-12)
    rotation_error, translation_error = pose_errors(there, known.apply(poses))
    assert float(rotation_error.max()) < 1e-5 and float(translation_error.max()) < 1e-11
    # a mirrored point set still gets a proper rotation (det +1), and degenerate sets are refused
    assert float(torch.linalg.det(procrustes(points, points * torch.tensor([1.0, 1, -1])).rotation)) == pytest.approx(1)
    with pytest.raises(InrkitError, match="align"):
        procrustes(torch.zeros(5, 3), points[:5])


def test_perturbation_has_the_stated_rms_size_and_is_seeded():
    poses = torch.eye(4, dtype=torch.float64).repeat(4000, 1, 1)
    poses[:, :3, 3] = 4.0 * torch.nn.functional.normalize(torch.randn(4000, 3, dtype=torch.float64), dim=1)
    noisy = perturb_poses(poses, math.radians(15.0), 0.26, seed=5)
    angles = torch.rad2deg(rotation_angle(noisy[:, :3, :3], poses[:, :3, :3]))
    assert float(angles.square().mean().sqrt()) == pytest.approx(15.0, rel=0.03)
    assert torch.equal(noisy, perturb_poses(poses, math.radians(15.0), 0.26, seed=5))
    assert not torch.equal(noisy, perturb_poses(poses, math.radians(15.0), 0.26, seed=6))
    # the world-side noise moves the camera, not only its translation part: c ← R_ν·c + V·u
    pure_translation = perturb_poses(poses, 0.0, 0.26, seed=5)
    shifts = (pure_translation[:, :3, 3] - poses[:, :3, 3]).norm(dim=1)
    assert float(shifts.square().mean().sqrt()) == pytest.approx(0.26, rel=0.03)


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    folder = make_scene("spheres", tmp_path_factory.mktemp("poses") / "scene", resolution=16, n_train=8, n_test=2)
    return Scene.from_blender(folder)


def _model(scene: Scene, refine: bool) -> NerfModel:
    config = model_config("instant-ngp-cpu", scene.config(), overrides={"grid.resolution": 16, "march.steps_per_unit": 64})
    if refine:
        config["poses"] = {"n_cameras": len(scene.train_cameras)}
    torch.manual_seed(0)
    return NerfModel(config)


def test_zero_correction_leaves_rays_and_loss_unchanged_and_the_gradient_reaches_the_poses(tiny_scene: Scene):
    signal = RadianceSignal(tiny_scene, 2048, 256, "mse", "white", pose_noise=(5.0, 0.1))
    plain, refined = _model(tiny_scene, False), _model(tiny_scene, True)
    refined.load_state_dict({**plain.state_dict(), "poses.se3": refined.poses.se3.detach()})
    batch = signal.sample(256, torch.Generator().manual_seed(0))
    origins, directions = refined.poses.correct(batch.views, batch.coords, batch.directions)
    assert torch.equal(origins, batch.coords) and torch.equal(directions, batch.directions)
    torch.manual_seed(1)
    plain_loss = signal.loss(plain, batch)
    torch.manual_seed(1)
    refined_loss = signal.loss(refined, batch)
    assert torch.equal(plain_loss, refined_loss)
    refined_loss.backward()
    gradient = refined.poses.se3.grad
    seen = torch.zeros(len(tiny_scene.train_cameras), dtype=torch.bool)
    seen[batch.views.unique()] = True
    assert bool((gradient[seen].abs().sum(1) > 0).any()) and bool((gradient[~seen] == 0).all())
    # a rigid motion of camera i moves its rays: ξ with a translation u shifts the origins by u
    with torch.no_grad():
        refined.poses.se3[:, 3:] = torch.tensor([0.1, 0.0, 0.0])
    moved, turned = refined.poses.correct(batch.views, batch.coords, batch.directions)
    torch.testing.assert_close(moved, batch.coords + torch.tensor([0.1, 0.0, 0.0]))
    assert torch.equal(turned, batch.directions)


def test_pose_group_has_its_own_adam_and_exponential_schedule():
    module = torch.nn.Module()
    module.linear = torch.nn.Linear(3, 4)
    module.poses = PoseCorrection(5, lr=2e-3, lr_final=2e-5)
    for config in (None, {"otype": "Adam", "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}):
        optimizer = build_optimizer(module, 1e-2, config)
        pose_group = next(g for g in optimizer.param_groups if g["params"][0] is module.poses.se3)
        assert sum(len(g["params"]) for g in optimizer.param_groups) == 3  # weight, bias, se3: each once
        assert (pose_group["lr"], pose_group["betas"], pose_group["eps"]) == (2e-3, (0.9, 0.999), 1e-8)
        assert pose_group.get("l2_reg", 0.0) == 0.0 and pose_group.get("weight_decay", 0.0) == 0.0
    assert [group_lr(pose_group, 1e-2, "exp", p) for p in (0.0, 0.5, 1.0)] == pytest.approx([2e-3, 2e-4, 2e-5])
    assert group_lr(optimizer.param_groups[0], 1e-2, "exp", 1.0) == pytest.approx(1e-3)  # the field keeps its schedule


def _trainer(scene: Scene, run_dir: Path, steps: int) -> Trainer:
    model = _model(scene, True)
    signal = RadianceSignal(scene, 2048, 256, "mse", "random", pose_noise=(5.0, 0.1))
    options = TrainOptions(steps=steps, eval_every=0, quiet=True, device="cpu", batch_size=128)
    return Trainer(model, signal, options, run_dir, 1e-2, torch.device("cpu"))


def test_resume_restores_the_pose_corrections_and_their_optimizer_state_exactly(tiny_scene: Scene, tmp_path: Path):
    from safetensors.torch import load_file

    from inrkit.train.checkpoint import load_checkpoint

    first = _trainer(tiny_scene, tmp_path, 6)
    first.fit()
    assert float(first.field.poses.se3.detach().abs().max()) > 0  # the poses moved
    resumed = _trainer(tiny_scene, tmp_path, 9)
    resumed.resume()
    assert torch.equal(resumed.field.poses.se3, first.field.poses.se3)
    assert resumed.optimizer.param_groups[-1] == {**first.optimizer.param_groups[-1],
                                                   "params": resumed.optimizer.param_groups[-1]["params"]}
    for name in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(resumed.optimizer.state[resumed.field.poses.se3][name],
                           first.optimizer.state[first.field.poses.se3][name])
    # both continue to step 9 from the same state (equal up to the order of multithreaded CPU sums)
    _, tensors = load_checkpoint(tmp_path)
    first.options.steps = 9
    torch.set_rng_state(tensors["rng.torch"])
    first.fit()
    torch.set_rng_state(tensors["rng.torch"])  # as resume() set it
    resumed.fit()
    torch.testing.assert_close(resumed.field.poses.se3, first.field.poses.se3, rtol=1e-5, atol=1e-7)  # threaded sums
    assert "poses.se3" in load_file(str(tmp_path / "weights.safetensors"))


def test_cli_perturb_and_refine_poses_records_and_reports(tmp_path: Path, capsys):
    status = main(["nerf", "spheres", "--out", str(tmp_path / "run"), "--steps", "12", "--scene-resolution", "16",
                   "--target-samples", "2048", "--grid-resolution", "16", "--steps-per-unit", "64", "--device", "cpu",
                   "--quiet", "--perturb-poses", "10,0.2", "--refine-poses", "--pose-lr", "0.01", "--seed", "4"])
    assert status == 0
    assert "rotation error" in capsys.readouterr().out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["options"]["perturb_poses"] == "10,0.2" and config["options"]["refine_poses"] is True
    assert config["signal"]["pose_noise"] == [10.0, 0.2] and config["signal"]["pose_noise_seed"] == 4
    assert config["field"]["poses"] == {"n_cameras": 60, "lr": 0.01, "lr_final": 1e-4}
    poses = json.loads((tmp_path / "run" / "poses.json").read_text())
    assert len(poses["cameras"]) == 60 and poses["refined"] is True
    assert 5 < poses["rotation_error_deg_before"] < 15  # RMS 10° noise, measured after the Procrustes alignment
    initial = torch.tensor([camera["initial"] for camera in poses["cameras"]], dtype=torch.float64)
    reference = torch.tensor([camera["reference"] for camera in poses["cameras"]], dtype=torch.float64)
    torch.testing.assert_close(initial, perturb_poses(reference, math.radians(10), 0.2, seed=4), rtol=0, atol=1e-12)
    history = inrkit.nerf.load(tmp_path / "run").history
    assert {"rotation_error_deg", "translation_error", "rotation_error_deg_before"} <= set(history[-1])


@pytest.mark.parametrize("flags, message", [
    (["--perturb-poses", "15"], "ROT_DEG,TRANS"),
    (["--perturb-poses", "200,0.1"], "rotation in"),
    (["--pose-lr", "0.01"], "needs --refine-poses"),
    (["--refine-poses", "--progressive", "sape"], "sape is not wired for radiance fields"),
])
def test_bad_pose_options_are_one_line_errors(tmp_path: Path, capsys, flags: list[str], message: str):
    assert main(["nerf", "spheres", "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


RECOVERY_ROTATION = 0.5  # after / before: stated bounds of the recovery test below (measured 0.27 and 0.30:
RECOVERY_TRANSLATION = 0.5  # 4.76° → 1.28°, 0.102 → 0.030 units; the benchmark's refine-c2f row)


@pytest.mark.slow
def test_refinement_recovers_a_known_perturbation(tmp_path: Path):
    """Blocks at 32², 5° / 0.1 units of noise; the hash grid's levels open coarse to fine (BARF's point)."""
    fitted = inrkit.nerf.fit("blocks", preset="instant-ngp-cpu", steps=600, out=tmp_path / "run", quiet=True,
                             device="cpu", scene_resolution=32, target_samples=8192, grid_resolution=32,
                             perturb_poses="5,0.1", refine_poses=True, pose_lr=1e-2, coarse_to_fine=60)
    metrics = fitted.metrics
    assert metrics["rotation_error_deg"] < RECOVERY_ROTATION * metrics["rotation_error_deg_before"]
    assert metrics["translation_error"] < RECOVERY_TRANSLATION * metrics["translation_error_before"]
    assert np.isfinite(metrics["psnr"])


def test_barf_window_reaches_the_positional_encoding_of_a_pose_refining_nerf(tmp_path: Path, monkeypatch):
    """BARF's setting: ``--backbone relu-pe --refine-poses --progressive barf``; the cosine window is set on the
    density network's positional encoding (10 octaves after the identity: L = 10 bands) before every step."""
    from inrkit.encodings.bands import BandWeights

    seen: list[tuple[BandWeights, torch.Tensor]] = []
    original = BandWeights.set
    monkeypatch.setattr(BandWeights, "set", lambda self, weights: (seen.append((self, torch.as_tensor(weights))),
                                                                  original(self, weights))[1])
    scene = make_scene("spheres", tmp_path / "scene", resolution=8, n_train=4, n_test=1)
    fitted = inrkit.nerf.fit(scene, preset="instant-ngp-cpu", steps=4, out=tmp_path / "run", quiet=True, device="cpu",
                             backbone="relu-pe", refine_poses=True, perturb_poses="5,0.1", progressive="barf",
                             batch_size=64, grid_resolution=16, steps_per_unit=32)
    encoding = fitted.field.field.position_encoding
    assert {id(bands) for bands, _ in seen} == {id(encoding.bands)} and encoding.bands.n_bands == 10
    # p = t/4 at step t, α = 10·(p − 0.1)/(0.5 − 0.1): −2.5, 3.75, 10, 16.25; w_k = ½(1 − cos(π·clamp(α − k, 0, 1)))
    partial = 0.5 * (1 - math.cos(0.75 * math.pi))
    expected = [[0.0] * 10, [1.0, 1.0, 1.0, partial] + [0.0] * 6, [1.0] * 10, [1.0] * 10]
    torch.testing.assert_close(torch.stack([w for _, w in seen[:4]]), torch.tensor(expected), rtol=0, atol=1e-6)
    assert torch.equal(seen[-1][1], torch.ones(10))  # unlocked for the outputs
    assert (fitted.config["train"]["progressive_start"], fitted.config["train"]["progressive_end"]) == (0.1, 0.5)
    assert float(fitted.field.poses.se3.detach().abs().max()) > 0  # the poses were refined meanwhile
