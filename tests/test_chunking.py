"""Chunked gradient accumulation, device-aware defaults, budgets and the up-front estimate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

import inrkit
from inrkit.fields import PRESETS, build_field
from inrkit.signals import ImageSignal
from inrkit.signals.base import Batch
from inrkit.signals.sdf import SdfSignal
from inrkit.train import Trainer, TrainOptions
from inrkit.train.chunking import activation_bytes_per_sample, auto_chunk_size
from inrkit.train.trainer import LONG_RUN_SECONDS

IMAGE_MODELS = [name for name, preset in PRESETS.items() if not preset.time_varying]


def _gradients(field: torch.nn.Module, signal, batch: Batch, chunk_size: int | None, tmp_path) -> dict[str, torch.Tensor]:
    options = TrainOptions(steps=1, chunk_size=chunk_size, schedule="constant", quiet=True)
    trainer = Trainer(field, signal, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    trainer._start = time.perf_counter()
    trainer._step(batch, use_amp=False)
    return {name: param.grad.clone() for name, param in field.named_parameters() if param.grad is not None}


def _assert_same_gradients(full: dict[str, torch.Tensor], chunked: dict[str, torch.Tensor]) -> None:
    assert full.keys() == chunked.keys()
    for name, grad in full.items():
        scale = float(grad.abs().max()) + 1e-12
        # float32 sums in another order: relative to the largest entry of each gradient
        assert torch.allclose(chunked[name], grad, atol=1e-4 * scale, rtol=1e-3), name


@pytest.mark.parametrize("model", IMAGE_MODELS)
def test_chunked_step_equals_full_batch_step(model, tmp_path):
    torch.manual_seed(0)
    signal = ImageSignal.from_array(np.random.default_rng(0).random((24, 40, 3), dtype=np.float32))
    field = build_field(model, 2, 3, width=32, depth=2)
    batch = signal.sample(None)
    full = _gradients(field, signal, batch, None, tmp_path)
    chunked = _gradients(field, signal, batch, 100, tmp_path)  # 960 pixels in 10 chunks, the last one short
    _assert_same_gradients(full, chunked)


def test_chunked_step_equals_full_batch_step_for_resfields_video(tmp_path):
    from inrkit.signals.video import VideoSignal

    frames = np.random.default_rng(1).integers(0, 256, (6, 10, 12, 3), dtype=np.uint8)
    signal = VideoSignal.from_array(frames, fps=6.0)
    field = build_field("resfields", 3, 3, width=32, depth=4, n_frames=6)
    batch = signal.sample(480, torch.Generator().manual_seed(0))
    _assert_same_gradients(_gradients(field, signal, batch, None, tmp_path), _gradients(field, signal, batch, 64, tmp_path))


def test_chunked_step_equals_full_batch_step_for_the_siren_sdf_loss(tmp_path):
    import trimesh

    from inrkit.io.shapes import Shape
    from inrkit.signals.sdf import SdfOptions

    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    shape = Shape(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64))
    signal = SdfSignal(shape, SdfOptions(sdf_samples=2048, sdf_loss="siren"))
    field = build_field("siren", 3, 1, width=32, depth=2)
    batch = signal.sample(400, torch.Generator().manual_seed(0))  # half surface points, half uniform
    _assert_same_gradients(_gradients(field, signal, batch, None, tmp_path), _gradients(field, signal, batch, 96, tmp_path))


def test_batch_chunk_slices_every_per_sample_tensor():
    from inrkit.signals.sdf import SdfBatch

    batch = SdfBatch(torch.rand(10, 3), torch.rand(10, 1), torch.rand(10, 3), torch.arange(10) % 2 == 0)
    part = batch.chunk(2, 5)
    assert len(part) == 3 and isinstance(part, SdfBatch)
    assert torch.equal(part.normals, batch.normals[2:5]) and torch.equal(part.on_surface, batch.on_surface[2:5])


def test_activation_cost_grows_with_the_network_and_sets_the_chunk():
    signal = ImageSignal.from_array(np.random.default_rng(0).random((32, 32, 3), dtype=np.float32))
    small = activation_bytes_per_sample(build_field("siren", 2, 3, width=32, depth=2), signal)
    large = activation_bytes_per_sample(build_field("siren", 2, 3, width=256, depth=4), signal)
    assert 8 * small < large  # 16x the hidden units
    # SIREN 4x256 keeps a few floats per hidden unit for the backward pass (measured peak: ~10 kB/sample)
    assert 8 * 1024 <= large <= 32 * 1024
    chunk = auto_chunk_size(large, torch.device("cpu"))
    assert chunk % 1024 == 0 and chunk * large <= (1 << 30) + 1024 * large


class SlowField(torch.nn.Module):
    """A field whose every forward pass takes ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.inner = build_field("relu", 2, 3, width=8, depth=1)
        self.config = self.inner.config
        self.delay = delay

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return self.inner(coords)


def test_seconds_budget_is_kept_within_one_step_even_when_steps_are_chunked(tmp_path):
    signal = ImageSignal.from_array(np.random.default_rng(0).random((16, 16, 3), dtype=np.float32))
    # one full-batch step = 8 chunks of 0.1 s: a budget of 0.25 s ends inside the first step
    options = TrainOptions(seconds=0.25, chunk_size=32, schedule="constant", quiet=True, eval_every=0)
    trainer = Trainer(SlowField(0.1), signal, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    trainer.fit()
    assert trainer.step == 1
    assert trainer.elapsed < 0.25 + 0.1 + 0.15  # the budget, one chunk, and slack for the loop


def test_long_default_budget_prints_one_note(tmp_path, capsys):
    signal = ImageSignal.from_array(np.random.default_rng(0).random((16, 16, 3), dtype=np.float32))
    options = TrainOptions(schedule="constant", eval_every=0, steps=None)  # the default step budget
    trainer = Trainer(SlowField(0.0), signal, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    trainer.step, trainer.elapsed = 5, 5 * LONG_RUN_SECONDS  # as if five steps had taken that long
    trainer._check_estimate()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--seconds" in lines[0], lines
    user_chose = Trainer(SlowField(0.0), signal, TrainOptions(schedule="constant", steps=10**6), tmp_path, lr=1e-3,
                         device=torch.device("cpu"))
    user_chose.step, user_chose.elapsed = 5, 5 * LONG_RUN_SECONDS
    user_chose._check_estimate()
    assert capsys.readouterr().err == ""


def test_device_protocol_defaults_are_recorded_and_paper_restores_the_full_batch(tmp_path):
    from inrkit.io.images import write_image

    path = write_image(tmp_path / "image.png", (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8))
    device_run = inrkit.fit(path, model="siren", width=16, depth=1, out=tmp_path / "device", device="cpu", quiet=True,
                            steps=3, batch_size=None)
    train = json.loads((tmp_path / "device" / "config.json").read_text())["train"]
    assert train["protocol"] == "device" and train["schedule"] == PRESETS["siren"].device_schedule
    device_batch = PRESETS["siren"].device_batch_size
    assert train["batch_size"] == (device_batch if device_batch < 64 * 80 else None)  # at most the full batch
    assert train["chunk_size"] >= 1024
    assert device_run.metrics["step"] == 3
    inrkit.fit(path, model="siren", width=16, depth=1, out=tmp_path / "paper", device="cpu", quiet=True, steps=3,
               protocol="paper")
    paper = json.loads((tmp_path / "paper" / "config.json").read_text())["train"]
    assert (paper["protocol"], paper["schedule"], paper["batch_size"]) == ("paper", "exp", None)


def test_device_protocol_without_a_budget_is_a_time_budget(tmp_path):
    from inrkit.api.lifecycle import _apply_defaults
    from inrkit.fields import ModelOptions
    from inrkit.train.options import DEVICE_SECONDS

    signal = ImageSignal.from_array(np.zeros((300, 300, 3), dtype=np.float32))
    options = TrainOptions()
    _apply_defaults(signal, ModelOptions(model="spder"), options, "device")
    assert (options.seconds, options.steps, options.batch_size) == (DEVICE_SECONDS, None, PRESETS["spder"].device_batch_size)
    paper = TrainOptions()
    _apply_defaults(signal, ModelOptions(model="spder"), paper, "paper")
    assert (paper.seconds, paper.step_budget, paper.batch_size) == (None, 2000, None)


def test_dry_run_prints_one_line_and_writes_nothing(tmp_path):
    from inrkit.io.images import write_image

    path = write_image(tmp_path / "image.png", (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8))
    result = subprocess.run([sys.executable, "-m", "inrkit", "fit", str(path), "--model", "siren", "--width", "16",
                             "--depth", "1", "--dry-run", "--out", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dry run:") and "s/step" in lines[0] and "MB peak" in lines[0]
    assert not (tmp_path / "run").exists()


MEMORY_SCRIPT = """
import resource, sys, numpy as np, inrkit
from inrkit.signals import ImageSignal
import inrkit.train.chunking as chunking
chunking.CPU_ACTIVATION_CAP = 64 << 20  # a small budget: chunks of a few thousand pixels
signal = ImageSignal.from_array(np.random.default_rng(0).random((2048, 2048, 3), dtype=np.float32))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
inrkit.fit(signal, model="siren", width=64, depth=2, steps=1, protocol="paper", eval_every=0, quiet=True,
           out=sys.argv[1], device="cpu")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_full_batch_memory_is_bounded_on_a_2048_image(tmp_path):
    """One full-batch step over 4.2 M pixels: unchunked, a 2x64 SIREN keeps ~4 GB of activations."""
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    growth_mb = float(result.stdout.strip().splitlines()[-1])
    assert growth_mb < 1200, growth_mb  # outputs (a 2048² render, PNGs) and one 64 MB chunk, not 4 GB


def test_no_periodic_evaluation_that_would_end_past_the_time_budget(tmp_path):
    signal = ImageSignal.from_array(np.random.default_rng(0).random((16, 16, 3), dtype=np.float32))
    options = TrainOptions(seconds=10.0, schedule="constant", quiet=True, eval_every=1)
    trainer = Trainer(SlowField(0.0), signal, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    trainer.progress.tail_seconds = 4.0  # an evaluation costs 4 s
    trainer.elapsed = 5.0
    assert not trainer._evaluation_would_overrun()
    trainer.elapsed = 6.5
    assert trainer._evaluation_would_overrun()


@pytest.mark.parametrize("model", ["spder", "relu-pe"])
def test_memory_probe_leaves_no_activations_alive(model):
    """The probe's graphs are freed with it: a long-lived process (bench, fit-many) must not grow per fit."""
    import gc

    field = build_field(model, 2, 3)
    signal = ImageSignal.from_array(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32))

    def live_graph_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance on torch.distributed's deprecated reduce_op object warns
            warnings.simplefilter("ignore", FutureWarning)
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and o.grad_fn is not None)

    before = live_graph_tensors()
    activation_bytes_per_sample(field, signal)
    assert live_graph_tensors() == before


def test_dry_run_counts_the_weight_average(monkeypatch):
    """``--ema-decay`` keeps two more float32 copies of the parameters at peak (the average, the raw weights
    while evaluating): 8 bytes per parameter in the estimate."""
    import inrkit.api.lifecycle as lifecycle

    monkeypatch.setattr(lifecycle, "current_memory_bytes", lambda: 0)
    signal = ImageSignal.from_array(np.random.default_rng(0).random((16, 16, 3)).astype(np.float32))
    plain = inrkit.estimate(signal, "siren", width=16, depth=1, steps=10, timed_steps=1, quiet=True)
    averaged = inrkit.estimate(signal, "siren", width=16, depth=1, steps=10, timed_steps=1, quiet=True, ema_decay=0.95)
    extra_mb = 8 * plain.n_params / 2**20
    assert averaged.peak_memory_mb - plain.peak_memory_mb == pytest.approx(extra_mb, rel=1e-9)
