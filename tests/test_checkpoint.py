"""Run directories: save -> load gives identical outputs; resume continues; Ctrl-C and NaN keep a good checkpoint."""

from __future__ import annotations

import itertools
import json
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import inrkit
from inrkit.fields import Field, build_field
from inrkit.files import read_json
from inrkit.signals import ImageSignal
from inrkit.train import Trainer, TrainingDiverged, TrainingInterrupted, TrainOptions
from inrkit.train import trainer as trainer_module

# a fixed chunk size: no memory probe calls the loss-counting signals below
SMALL = {"model": "siren", "width": 32, "depth": 2, "device": "cpu", "quiet": True, "chunk_size": 1 << 20}


def _steps(run_dir):
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _checkpoint_step(run_dir):
    return read_json(run_dir / "checkpoint.json")["step"]


def test_load_gives_identical_outputs(small_run):
    loaded = inrkit.load(small_run.dir)
    assert isinstance(loaded, Field)
    assert loaded.config == small_run.field.config
    coords = torch.rand(500, 2) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(coords), small_run.field(coords))
    reopened = inrkit.load_run(small_run.dir)
    assert reopened.metrics["step"] == 40
    assert reopened.metrics["psnr"] == pytest.approx(small_run.metrics["psnr"])


def test_run_directory_layout(small_run):
    names = {p.name for p in small_run.dir.iterdir()}
    assert {"config.json", "weights.safetensors", "metrics.jsonl", "checkpoint.json", "reconstruction.png", "error.png"} <= names
    assert [n for n in names if n.startswith("checkpoint-")] == ["checkpoint-00000040"]
    assert not [n for n in names if n.endswith(".tmp")]  # atomic writes leave no temporaries
    assert _steps(small_run.dir) == [20, 40]


def test_weights_file_is_the_field_state(small_run):
    tensors = load_file(str(small_run.dir / "weights.safetensors"))
    state = small_run.field.state_dict()
    assert tensors.keys() == state.keys()
    assert all(torch.equal(tensors[k], state[k]) for k in state)


def test_resume_continues_to_new_budget(tmp_path, smooth_png):
    png = smooth_png(height=16, width=16)
    run_dir = tmp_path / "run"
    first = inrkit.fit(png, out=run_dir, steps=30, eval_every=10, **SMALL)
    assert first.metrics["step"] == 30
    assert _checkpoint_step(run_dir) == 30
    resumed = inrkit.fit(resume=True, out=run_dir, steps=60, quiet=True)  # the signal is reopened from config.json
    assert resumed.metrics["step"] == 60
    assert resumed.metrics["final"] is True
    steps = _steps(run_dir)
    assert steps == [10, 20, 30, 40, 50, 60]
    assert all(a < b for a, b in itertools.pairwise(steps))
    assert _checkpoint_step(run_dir) == 60
    assert read_json(run_dir / "config.json")["train"]["steps"] == 60
    assert resumed.metrics["psnr"] >= first.metrics["psnr"] - 0.5


def test_resume_can_reset_an_option_to_its_default(tmp_path, smooth_png):
    run_dir = tmp_path / "run"
    inrkit.fit(smooth_png(height=8, width=8), out=run_dir, steps=4, eval_every=2, **SMALL)
    default = TrainOptions().eval_every
    inrkit.fit(resume=True, out=run_dir, steps=6, eval_every=default, quiet=True)
    assert read_json(run_dir / "config.json")["train"]["eval_every"] == default
    assert _steps(run_dir) == [2, 4, 6]  # no evaluation at step 6 but the final one
    inrkit.fit(resume=True, out=run_dir, steps=8, quiet=True)  # an option not given keeps its saved value
    assert read_json(run_dir / "config.json")["train"]["eval_every"] == default


def test_resume_without_checkpoint_or_run_dir(tmp_path):
    with pytest.raises(inrkit.InrkitError, match="not an inrkit run directory"):
        inrkit.fit(resume=True, out=tmp_path / "nothing", steps=10)
    with pytest.raises(inrkit.InrkitError, match="run directory"):
        inrkit.fit(resume=True, steps=10)


class _StopAfter(ImageSignal):
    """Sets the trainer's stop flag (what the SIGINT handler does) during the ``after``-th loss."""

    trainer: Trainer | None = None
    after = 7
    calls = 0

    def loss(self, field, batch):
        self.calls += 1
        if self.calls == self.after:
            self.trainer._stop_requested = True
        return super().loss(field, batch)


def test_trainer_stop_flag_checkpoints_and_resumes(tmp_path, make_image):
    image = make_image(12, 12)
    options = TrainOptions(steps=25, device="cpu", quiet=True, eval_every=0)
    torch.manual_seed(0)
    field = build_field("siren", 2, 3, width=16, depth=2)
    stopping = _StopAfter.from_array(image)
    trainer = Trainer(field, stopping, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    stopping.trainer = trainer
    with pytest.raises(TrainingInterrupted, match="step 7"):
        trainer.fit()
    assert trainer.step == 7
    assert (tmp_path / "checkpoint.json").is_file()
    assert _checkpoint_step(tmp_path) == 7
    assert (tmp_path / "checkpoint-00000007" / "training.safetensors").is_file()
    saved = load_file(str(tmp_path / "weights.safetensors"))
    assert all(torch.equal(saved[k], v) for k, v in field.state_dict().items())

    fresh = Field(field.config)
    again = Trainer(fresh, ImageSignal.from_array(image), options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    again.resume()
    assert again.step == 7
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), field.parameters(), strict=True))
    record = again.fit()
    assert record["step"] == 25
    assert _checkpoint_step(tmp_path) == 25


class _SignalAfter(ImageSignal):
    """Delivers a real ``signum`` to this process during the ``after``-th loss (SIGINT as a Ctrl-C would,
    SIGTERM as SLURM or Kubernetes would), once the trainer has replaced ``untouched``, the default handler."""

    signum: signal.Signals
    untouched: object
    after = 12
    calls = 0

    def loss(self, field, batch):
        self.calls += 1
        if self.calls == self.after:
            assert signal.getsignal(self.signum) is not self.untouched, f"trainer installed no {self.signum.name} handler"
            signal.raise_signal(self.signum)
        return super().loss(field, batch)


class _CtrlCAfter(_SignalAfter):
    signum, untouched = signal.SIGINT, signal.default_int_handler


class _TermAfter(_SignalAfter):
    signum, untouched = signal.SIGTERM, signal.SIG_DFL


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT handlers need the main thread")
def test_ctrl_c_checkpoint_then_resume_matches_uninterrupted(tmp_path, make_image):
    image = make_image(16, 16)
    options = {**SMALL, "steps": 30, "batch_size": 100, "eval_every": 0, "seed": 3}
    handler_before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 12"):
        inrkit.fit(_CtrlCAfter.from_array(image), out=tmp_path / "cut", **options)
    assert signal.getsignal(signal.SIGINT) is handler_before  # the handler is restored
    assert _checkpoint_step(tmp_path / "cut") == 12
    resumed = inrkit.fit(ImageSignal.from_array(image), resume=True, out=tmp_path / "cut", steps=30, quiet=True)
    straight = inrkit.fit(ImageSignal.from_array(image), out=tmp_path / "straight", **options)
    assert resumed.metrics["step"] == straight.metrics["step"] == 30
    for a, b in zip(resumed.field.parameters(), straight.field.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


class _NaNAfter(ImageSignal):
    """A loss that turns NaN (gradients too) from the ``after``-th call on."""

    after = 13
    calls = 0

    def loss(self, field, batch):
        self.calls += 1
        value = super().loss(field, batch)
        return value * float("nan") if self.calls >= self.after else value


def _diverge_after_step_10(run_dir: Path, image, stopped_at: int) -> dict[str, torch.Tensor]:
    """Fit until the loss turns NaN at step 13 (evaluations every 5 steps); the training stops at
    ``stopped_at`` keeping the step-10 checkpoint, whose finite weights are returned."""
    with pytest.raises(TrainingDiverged, match=rf"step {stopped_at}.*checkpoint \(step 10\)"):
        inrkit.fit(_NaNAfter.from_array(image), out=run_dir, steps=40, eval_every=5, **SMALL)
    assert _checkpoint_step(run_dir) == 10
    assert _steps(run_dir) == [5, 10]
    weights = load_file(str(run_dir / "weights.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    return weights


def test_nan_loss_keeps_last_good_checkpoint(tmp_path, make_image):
    run_dir = tmp_path / "run"
    weights = _diverge_after_step_10(run_dir, make_image(12, 12), stopped_at=13)
    checkpoint = load_file(str(run_dir / "checkpoint-00000010" / "training.safetensors"))
    assert all(torch.equal(v, checkpoint[f"field.{k}"]) for k, v in weights.items())
    field = inrkit.load(run_dir)
    out = field(torch.rand(64, 2) * 2 - 1)
    assert torch.isfinite(out).all()


def test_nan_between_device_checks_is_not_checkpointed(tmp_path, make_image, monkeypatch):
    """Off the CPU the loss is checked every 16 steps; an evaluation at step 15 must still not save NaN."""
    monkeypatch.setattr(trainer_module, "CPU_CHECK_EVERY", trainer_module.DEVICE_CHECK_EVERY)
    _diverge_after_step_10(tmp_path / "run", make_image(12, 12), stopped_at=15)


class _NaNThenStop(_StopAfter):
    """The loss turns NaN at the ``after``-th call, which also asks the trainer to stop (a Ctrl-C)."""

    def loss(self, field, batch):
        value = super().loss(field, batch)
        return value * float("nan") if self.calls >= self.after else value


def test_ctrl_c_after_nan_keeps_last_good_checkpoint(tmp_path, make_image, monkeypatch):
    monkeypatch.setattr(trainer_module, "CPU_CHECK_EVERY", trainer_module.DEVICE_CHECK_EVERY)
    options = TrainOptions(steps=25, device="cpu", quiet=True, eval_every=5)
    torch.manual_seed(0)
    field = build_field("siren", 2, 3, width=16, depth=2)
    stopping = _NaNThenStop.from_array(make_image(12, 12))
    trainer = Trainer(field, stopping, options, tmp_path, lr=1e-3, device=torch.device("cpu"))
    stopping.trainer = trainer
    with pytest.raises(TrainingDiverged, match=r"step 7.*checkpoint \(step 5\)"):
        trainer.fit()
    assert _checkpoint_step(tmp_path) == 5
    assert all(torch.isfinite(v).all() for v in load_file(str(tmp_path / "weights.safetensors")).values())


def test_diverged_is_an_inrkit_error():
    assert issubclass(TrainingDiverged, inrkit.InrkitError)
    assert issubclass(TrainingInterrupted, inrkit.InrkitError)


def test_fit_overwrite_replaces_a_run(tmp_path, make_image):
    image = make_image(8, 8)
    run_dir = tmp_path / "run"
    inrkit.fit(ImageSignal.from_array(image), out=run_dir, steps=5, **SMALL)
    with pytest.raises(inrkit.InrkitError, match="not empty"):
        inrkit.fit(ImageSignal.from_array(image), out=run_dir, steps=5, **SMALL)
    run = inrkit.fit(ImageSignal.from_array(np.flipud(image)), out=run_dir, steps=7, overwrite=True, **SMALL)
    assert run.metrics["step"] == 7
    assert _steps(run_dir) == [7]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread")
def test_sigterm_checkpoint_then_resume_matches_uninterrupted_bit_for_bit(tmp_path, make_image):
    image = make_image(16, 16)
    options = {**SMALL, "steps": 30, "batch_size": 100, "eval_every": 0, "seed": 3, "threads": 1}
    handler_before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"terminated \(SIGTERM\) at step 12; checkpoint saved") as caught:
        inrkit.fit(_TermAfter.from_array(image), out=tmp_path / "cut", **options)
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the handler is restored
    assert _checkpoint_step(tmp_path / "cut") == 12
    resumed = inrkit.fit(ImageSignal.from_array(image), resume=True, out=tmp_path / "cut", steps=30, quiet=True)
    straight = inrkit.fit(ImageSignal.from_array(image), out=tmp_path / "straight", **options)
    assert resumed.metrics["step"] == straight.metrics["step"] == 30
    for a, b in zip(resumed.field.parameters(), straight.field.parameters(), strict=True):
        assert torch.equal(a, b)
    cut, whole = (load_file(str(d / "weights.safetensors")) for d in (tmp_path / "cut", tmp_path / "straight"))
    assert cut.keys() == whole.keys() and all(torch.equal(cut[k], whole[k]) for k in cut)


def test_sigterm_to_the_cli_saves_says_so_and_exits_143(tmp_path, smooth_png):
    """A real ``inrkit fit`` process gets SIGTERM mid-training: one line on stderr, exit 128 + 15, a checkpoint
    that ``--resume`` continues to the same weights as an uninterrupted fit."""
    import os
    import subprocess
    import sys
    import time

    png = smooth_png(height=16, width=16)
    flags = ["--width", "16", "--depth", "2", "--device", "cpu", "--quiet", "--threads", "1", "--batch-size", "64",
             "--eval-every", "0", "--chunk-size", str(1 << 20), "--schedule", "constant"]  # a resume's new budget keeps the lr
    env = {**os.environ, "PYTHONPATH": str(Path(inrkit.__file__).parents[1])}
    cut = tmp_path / "cut"
    process = subprocess.Popen([sys.executable, "-m", "inrkit", "fit", str(png), "--out", str(cut), "--steps", "1000000",
                                *flags], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (cut / "checkpoint.json").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few training steps
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inrkit: stopped: terminated (SIGTERM) at step "), err
    step = _checkpoint_step(cut)
    assert f"at step {step};" in lines[0] and step > 0
    assert "continue with --resume" in lines[0]
    total = step + 5
    from inrkit.cli import main

    assert main(["fit", "--resume", "--out", str(cut), "--steps", str(total), "--quiet"]) == 0
    assert main(["fit", str(png), "--out", str(tmp_path / "straight"), "--steps", str(total), *flags]) == 0
    a, b = (load_file(str(d / "weights.safetensors")) for d in (cut, tmp_path / "straight"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
