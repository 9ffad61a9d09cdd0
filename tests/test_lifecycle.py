"""One run lifecycle for every signal kind: radiance fields train, resume and load like images; runs whose
source moved resume with --source; the package's layers hold (import-linter contracts)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inrkit
from inrkit.api.lifecycle import Run
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.fields import Field, NerfModel
from inrkit.nerf.procedural import make_scene

ROOT = Path(__file__).resolve().parents[1]
TINY_NERF = {"preset": "instant-ngp-cpu", "device": "cpu", "quiet": True, "target_samples": 2048, "grid_resolution": 16}


@pytest.fixture(scope="module")
def nerf_run(tmp_path_factory: pytest.TempPathFactory) -> inrkit.nerf.NeRF:
    folder = tmp_path_factory.mktemp("lifecycle")
    scene_dir = make_scene("spheres", folder / "scene", resolution=16, n_train=8, n_test=1)
    return inrkit.nerf.fit(scene_dir, steps=12, out=folder / "run", **TINY_NERF)


def test_a_nerf_run_is_a_run_with_a_nerf_model(nerf_run: inrkit.nerf.NeRF):
    assert isinstance(nerf_run, Run) and isinstance(nerf_run.field, NerfModel)
    config = json.loads((nerf_run.dir / "config.json").read_text())
    assert config["field"]["otype"] == "NerfModel" and "nerf" not in config
    loaded = inrkit.load_run(nerf_run.dir)  # the generic loader opens radiance runs too
    assert isinstance(loaded.field, NerfModel)
    assert loaded.metrics["step"] == 12
    assert inrkit.load(nerf_run.dir).n_params == nerf_run.field.n_params


def test_a_nerf_run_written_before_the_one_lifecycle_still_loads(nerf_run: inrkit.nerf.NeRF, tmp_path: Path):
    old = tmp_path / "old-run"
    shutil.copytree(nerf_run.dir, old)
    config = json.loads((old / "config.json").read_text())
    config["nerf"] = config.pop("field")
    del config["nerf"]["otype"]  # configs written before the otype key
    (old / "config.json").write_text(json.dumps(config))
    reloaded = inrkit.nerf.load(old)
    camera = nerf_run.scene.test_cameras[0]
    assert torch.equal(torch.from_numpy(reloaded.render(camera)["rgb"]), torch.from_numpy(nerf_run.render(camera)["rgb"]))


def test_a_copied_nerf_run_resumes_from_its_own_scene(nerf_run: inrkit.nerf.NeRF, tmp_path: Path):
    """A procedural scene lives in the run; a run copied elsewhere resumes from its copy of the scene."""
    definition = ROOT / "scenes" / "spheres.json"
    original = tmp_path / "run"
    assert main(["nerf", str(definition), "--out", str(original), "--steps", "6", "--scene-resolution", "16",
                 "--target-samples", "2048", "--grid-resolution", "16", "--device", "cpu", "--quiet"]) == 0
    moved = tmp_path / "moved"
    shutil.move(original, moved)
    assert main(["nerf", "--resume", "--out", str(moved), "--steps", "8", "--device", "cpu", "--quiet"]) == 0
    assert inrkit.nerf.load(moved).metrics["step"] == 8


def test_resume_names_source_when_the_signal_moved(smooth_png, tmp_path: Path, capsys):
    source = smooth_png("photo.png")
    run_dir = tmp_path / "run"
    inrkit.fit(source, model="siren", width=16, depth=2, steps=4, out=run_dir, device="cpu", quiet=True)
    moved = source.rename(tmp_path / "elsewhere.png")
    assert main(["fit", "--resume", "--out", str(run_dir), "--steps", "6", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--source" in error and "photo.png" in error
    assert main(["fit", "--resume", "--out", str(run_dir), "--steps", "6", "--source", str(moved), "--quiet"]) == 0
    run = inrkit.load_run(run_dir)
    assert run.metrics["step"] == 6 and isinstance(run.field, Field)


def test_nerf_resume_names_source_when_the_scene_moved(tmp_path: Path):
    scene_dir = make_scene("spheres", tmp_path / "scene", resolution=16, n_train=4, n_test=1)
    inrkit.nerf.fit(scene_dir, steps=4, out=tmp_path / "run", **TINY_NERF)
    moved = shutil.move(scene_dir, tmp_path / "scene-moved")
    with pytest.raises(InrkitError, match="--source"):
        inrkit.nerf.fit(None, resume=True, out=tmp_path / "run", steps=6)
    resumed = inrkit.nerf.fit(moved, resume=True, out=tmp_path / "run", steps=6)
    assert resumed.metrics["step"] == 6


def test_layers_and_acyclic_contracts_hold():
    """DESIGN.md's layers and no import cycle inside any package (the contracts in pyproject.toml)."""
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.argv = ['lint-imports']; lint_imports_command()"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


def test_quantisation_aware_fine_tuning_names_source_when_the_signal_moved(smooth_png, tmp_path: Path, capsys):
    source = smooth_png("photo.png")
    run_dir = tmp_path / "run"
    inrkit.fit(source, model="siren", width=16, depth=2, steps=4, out=run_dir, device="cpu", quiet=True)
    moved = source.rename(tmp_path / "elsewhere.png")
    command = ["compress", str(run_dir), str(tmp_path / "a.inrz"), "--finetune-steps", "2"]
    assert main(command) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--source" in error and "photo.png" in error
    assert main([*command, "--source", str(moved)]) == 0
    assert "fine-tuning steps" in capsys.readouterr().out
