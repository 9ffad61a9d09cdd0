"""The ``inrkit`` command end to end on generated PNGs."""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from inrkit.cli import main
from inrkit.fields import PRESETS, build_field
from inrkit.files import read_json
from inrkit.io.images import read_image
from inrkit.signals import ImageSignal

FIT = ["--model", "siren", "--width", "32", "--depth", "2", "--steps", "20", "--device", "cpu", "--quiet",
       "--chunk-size", "4096"]  # a fixed chunk: no memory probe calls the loss (tests count the calls)


@pytest.fixture
def cli_run(tmp_path, smooth_png, capsys, monkeypatch):
    """Fit a 32x24 PNG through the CLI; returns (png, run directory, stdout)."""
    monkeypatch.chdir(tmp_path)
    png = smooth_png("photo.png", height=24, width=32)
    run_dir = tmp_path / "run"
    assert main(["fit", str(png), "--out", str(run_dir), *FIT]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return png, run_dir, captured.out


def test_fit_writes_run_directory(cli_run):
    png, run_dir, out = cli_run
    for name in ("config.json", "weights.safetensors", "metrics.jsonl", "reconstruction.png", "error.png", "checkpoint.json"):
        assert (run_dir / name).is_file(), name
    assert out.startswith("fitted siren")
    assert "20 steps" in out
    assert str(run_dir) in out
    reconstruction = read_image(run_dir / "reconstruction.png")
    assert reconstruction.shape == (24, 32, 3)
    assert reconstruction.dtype == np.uint8
    assert read_image(run_dir / "error.png").shape == (24, 32, 1)
    config = read_json(run_dir / "config.json")
    assert config["signal"]["source"] == str(png.resolve())
    assert config["train"]["steps"] == 20


def test_info_prints_parameters(cli_run, capsys):
    _, run_dir, _ = cli_run
    assert main(["info", str(run_dir)]) == 0
    out = capsys.readouterr().out
    n_params = build_field("siren", 2, 3, width=32, depth=2).n_params
    assert f"({n_params:,} parameters)" in out
    assert "32x24 x3" in out
    assert "psnr" in out


def test_render_at_another_size(cli_run, capsys, tmp_path):
    _, run_dir, _ = cli_run
    target = tmp_path / "x.png"
    assert main(["render", str(run_dir), "--size", "64x48", "--out", str(target), "--device", "cpu"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert read_image(target).shape == (48, 64, 3)
    default = tmp_path / "same.png"
    assert main(["render", str(run_dir), "--out", str(default), "--device", "cpu"]) == 0
    assert np.array_equal(read_image(default), read_image(run_dir / "reconstruction.png"))


def test_models_lists_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"\n{name} " in out
    assert "198,915" in out
    assert "330,243" in out


def test_sixteen_bit_source_gives_sixteen_bit_reconstruction(tmp_path, smooth_png):
    png = smooth_png("deep.png", height=16, width=16, bits=16)
    assert main(["fit", str(png), "--out", str(tmp_path / "run"), *FIT]) == 0
    reconstruction = read_image(tmp_path / "run" / "reconstruction.png")
    assert reconstruction.dtype == np.uint16
    assert reconstruction.shape == (16, 16, 3)


def test_default_output_directory(tmp_path, smooth_png, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    png = smooth_png("cat.png", height=8, width=8)
    assert main(["fit", str(png), *FIT]) == 0
    assert main(["fit", str(png), *FIT]) == 0  # never clobbers an earlier run
    assert (tmp_path / "runs" / "cat-siren" / "weights.safetensors").is_file()
    assert (tmp_path / "runs" / "cat-siren-2" / "weights.safetensors").is_file()


def test_overwrite_flag(cli_run, capsys):
    png, run_dir, _ = cli_run
    args = ["fit", str(png), "--out", str(run_dir), "--width", "16", "--depth", "2", "--steps", "5", "--device", "cpu"]
    assert main([*args, "--quiet", "--overwrite"]) == 0
    assert read_json(run_dir / "checkpoint.json")["step"] == 5


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT handlers need the main thread")
def test_ctrl_c_then_resume(tmp_path, smooth_png, monkeypatch, capsys):
    png = smooth_png(height=12, width=12)
    run_dir = tmp_path / "run"
    calls = []
    original = ImageSignal.loss

    def interrupting_loss(self, field, batch):
        calls.append(1)
        if len(calls) == 6:
            signal.raise_signal(signal.SIGINT)
        return original(self, field, batch)

    monkeypatch.setattr(ImageSignal, "loss", interrupting_loss)
    assert main(["fit", str(png), "--out", str(run_dir), *FIT]) == 130
    err = capsys.readouterr().err
    assert err.startswith("inrkit: stopped: interrupted at step 6")
    assert read_json(run_dir / "checkpoint.json")["step"] == 6
    monkeypatch.undo()
    assert main(["fit", "--resume", "--out", str(run_dir), "--quiet"]) == 0
    assert "20 steps" in capsys.readouterr().out
    assert read_json(run_dir / "checkpoint.json")["step"] == 20


def test_resume_can_reset_an_option_to_its_default(tmp_path, smooth_png):
    run_dir = tmp_path / "run"
    assert main(["fit", str(smooth_png(height=8, width=8)), "--out", str(run_dir), *FIT, "--eval-every", "5"]) == 0
    assert main(["fit", "--resume", "--out", str(run_dir), "--steps", "25", "--eval-every", "500", "--quiet"]) == 0
    assert read_json(run_dir / "config.json")["train"]["eval_every"] == 500
    assert main(["fit", "--resume", "--out", str(run_dir), "--steps", "30", "--quiet"]) == 0
    assert read_json(run_dir / "config.json")["train"]["eval_every"] == 500  # not given: the saved value


def test_progress_lines_when_not_quiet(tmp_path, smooth_png, capsys):
    png = smooth_png(height=8, width=8)
    args = ["fit", str(png), "--out", str(tmp_path / "run"), "--width", "16", "--depth", "2", "--steps", "10",
            "--eval-every", "5", "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err  # stderr is not a terminal here: one plain line per evaluation
    summary, *lines = err.strip().splitlines()  # first the resolved settings, then the progress lines
    assert summary.startswith("siren on cpu (device protocol): full batch") and "--protocol paper" in summary
    assert [line.split()[1] for line in lines] == ["5/10", "10/10"]
    assert all("psnr" in line for line in lines)


def test_hashgrid_from_the_command_line(tmp_path, smooth_png, capsys):
    source = smooth_png("photo.png", 24, 32)
    out = tmp_path / "run"
    assert main(["fit", str(source), "--model", "hashgrid", "--steps", "30", "--log2-hashmap-size", "10",
                 "--backend", "fast", "--coarse-to-fine", "5", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    config = read_json(out / "config.json")
    assert config["field"]["encoding"]["otype"] == "HashGrid" and config["field"]["encoding"]["log2_hashmap_size"] == 10
    assert config["field"]["optimizer"]["otype"] == "Adam" and config["train"]["backend"] == "fast"
    assert main(["info", str(out)]) == 0
    assert "HashGrid" in capsys.readouterr().out
    assert main(["render", str(out), "--size", "64x48", "--out", str(tmp_path / "big.png")]) == 0
    assert read_image(tmp_path / "big.png").shape[:2] == (48, 64)
