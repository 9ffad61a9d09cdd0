"""Bad inputs: one line ``inrkit: error: ...`` on stderr, exit status 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import inrkit
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.io.images import write_image

FAST = ["--width", "16", "--depth", "2", "--steps", "3", "--device", "cpu", "--quiet"]


def _png(folder: Path, height: int = 16, width: int = 16, name: str = "ok.png") -> Path:
    rng = np.random.default_rng(0)
    return write_image(folder / name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _text(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


# name: (make the input file, extra flags, a phrase the message must contain)
CASES = {
    "missing-file": (lambda d: d / "missing.png", [], "no such file"),
    "text-as-png": (lambda d: _text(d, "notes.png", b"this is not an image\n"), [], "not a readable image"),
    "zero-bytes": (lambda d: _text(d, "empty.png", b""), [], "not a readable image"),
    "one-pixel": (lambda d: _png(d, 1, 1), [], "at least 2x2"),
    "unknown-model": (lambda d: _png(d), ["--model", "transformer"], "siren"),
    "steps-zero": (lambda d: _png(d), ["--steps", "0"], "--steps must be positive"),
    "steps-negative": (lambda d: _png(d), ["--steps", "-5"], "--steps must be positive"),
    "lr-zero": (lambda d: _png(d), ["--lr", "0"], "--lr must be positive"),
    "lr-negative": (lambda d: _png(d), ["--lr", "-1"], "--lr must be positive"),
    "lr-nan": (lambda d: _png(d), ["--lr", "nan"], "--lr must be positive"),
    "too-many-megapixels": (lambda d: _png(d, 64, 64), ["--max-megapixels", "0.001"], "--max-megapixels"),
    "unknown-suffix": (lambda d: _text(d, "data.qqq", b"1 2 3\n"), [], "unsupported file type"),
    "width-zero": (lambda d: _png(d), ["--width", "0"], "--width must be an integer in 1.."),
    "sl2a-depth-one": (lambda d: _png(d), ["--model", "sl2a", "--depth", "1"], "--depth"),
    "option-not-for-model": (lambda d: _png(d), ["--model", "relu", "--omega0", "10"], "does not apply"),
    "bad-damping": (lambda d: _png(d), ["--model", "spder", "--damping", "cube"], "--damping"),
    "bad-alpha": (lambda d: _png(d), ["--alpha", "drop"], "--alpha"),
    "bad-schedule": (lambda d: _png(d), ["--schedule", "linear"], "--schedule"),
    "batch-size-zero": (lambda d: _png(d), ["--batch-size", "0"], "--batch-size"),
    "seconds-negative": (lambda d: _png(d), ["--seconds", "-1"], "--seconds"),
    "eval-every-negative": (lambda d: _png(d), ["--eval-every", "-1"], "--eval-every"),
    "no-such-device": (lambda d: _png(d), ["--device", "tpu"], "unknown device"),
    "grid-features-3": (lambda d: _png(d), ["--model", "hashgrid", "--features-per-level", "3"], "n_features_per_level"),
    "grid-table-2^40": (lambda d: _png(d), ["--model", "hashgrid", "--log2-hashmap-size", "40"], "log2_hashmap_size"),
    "grid-negative-resolution": (lambda d: _png(d), ["--model", "hashgrid", "--base-resolution", "-2"], "base_resolution"),
    "grid-width-100": (lambda d: _png(d), ["--model", "hashgrid", "--width", "100"], "n_neurons"),
    "grid-option-for-siren": (lambda d: _png(d), ["--model", "siren", "--n-levels", "4"], "does not apply"),
    "bad-backend": (lambda d: _png(d), ["--backend", "cuda"], "--backend"),
    "tcnn-for-siren": (lambda d: _png(d), ["--backend", "tcnn"], "FullyFusedMLP"),
    "amp-siren": (lambda d: _png(d), ["--model", "siren", "--amp"], "cannot run 'siren'"),
    "amp-spder": (lambda d: _png(d), ["--model", "spder", "--amp"], "cannot run 'spder'"),
    "amp-finer": (lambda d: _png(d), ["--model", "finer", "--amp"], "cannot run 'finer'"),
    "amp-wire": (lambda d: _png(d), ["--model", "wire", "--amp"], "cannot run 'wire'"),
    "amp-resfields": (lambda d: _png(d), ["--model", "resfields", "--amp"], "cannot run 'resfields'"),
    "amp-hashgrid-siren": (lambda d: _png(d), ["--model", "hashgrid-siren", "--amp"], "cannot run 'hashgrid-siren'"),
    "coarse-to-fine-negative": (lambda d: _png(d), ["--model", "hashgrid", "--coarse-to-fine", "-1"], "--coarse-to-fine"),
}


def _assert_one_line_error(capsys, code: int, phrase: str) -> str:
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert captured.err.startswith("inrkit: error: ")
    assert captured.err.endswith("\n")
    assert captured.err.count("\n") == 1, captured.err
    assert phrase in captured.err
    return captured.err


@pytest.mark.parametrize("case", CASES)
def test_bad_fit_input(case, tmp_path, capsys, monkeypatch):
    make, flags, phrase = CASES[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["fit", str(path), "--out", str(out), *FAST, *flags])
    _assert_one_line_error(capsys, code, phrase)
    assert not out.exists()
    assert not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


def test_amp_is_accepted_without_sines(tmp_path, capsys):
    assert main(["fit", str(_png(tmp_path)), "--out", str(tmp_path / "out"), "--model", "relu", "--amp", *FAST]) == 0


def test_unknown_model_message_lists_every_preset(tmp_path, capsys):
    code = main(["fit", str(_png(tmp_path)), "--out", str(tmp_path / "out"), "--model", "nope", *FAST])
    err = _assert_one_line_error(capsys, code, "unknown model")
    for name in ("siren", "spder", "finer", "gauss", "wire", "relu-pe", "ffn", "relu", "sl2a"):
        assert name in err


def test_existing_non_empty_output_dir(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), *FAST])
    _assert_one_line_error(capsys, code, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"


def test_overwrite_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), "--overwrite", *FAST])
    _assert_one_line_error(capsys, code, "not an inrkit run directory")
    assert (out / "keep.txt").read_text() == "precious"


def test_output_path_is_a_file(tmp_path, capsys):
    out = _text(tmp_path, "out", b"x")
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), *FAST])
    _assert_one_line_error(capsys, code, "not a directory")
    assert out.read_bytes() == b"x"


def test_resume_without_run(tmp_path, capsys):
    code = main(["fit", "--resume", "--out", str(tmp_path / "none"), "--quiet"])
    _assert_one_line_error(capsys, code, "not an inrkit run directory")
    assert not (tmp_path / "none").exists()


def test_fit_without_path(capsys):
    _assert_one_line_error(capsys, main(["fit", "--quiet"]), "give the file to fit")


@pytest.mark.parametrize("command", [["info"], ["render", "--out", "x.png"]])
def test_run_commands_on_a_non_run(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([command[0], str(tmp_path), *command[1:]])
    _assert_one_line_error(capsys, code, "not an inrkit run directory")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("size", "phrase"), [("64by48", "--size must look like"), ("0x48", "--size must be positive")])
def test_render_bad_size(size, phrase, small_run, tmp_path, capsys):
    target = tmp_path / "x.png"
    code = main(["render", str(small_run.dir), "--size", size, "--out", str(target)])
    _assert_one_line_error(capsys, code, phrase)
    assert not target.exists()


def test_render_unknown_format(small_run, tmp_path, capsys):
    target = tmp_path / "x.xyz"
    code = main(["render", str(small_run.dir), "--out", str(target), "--device", "cpu"])
    _assert_one_line_error(capsys, code, "unknown image format")
    assert list(tmp_path.iterdir()) == []


def test_corrupt_weights(small_run, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(small_run.dir, broken)
    (broken / "weights.safetensors").write_bytes(b"garbage")
    _assert_one_line_error(capsys, main(["info", str(broken)]), "corrupt weights file")


# Overrides that would make the field constructor fail (division by zero, negative sizes) are
# refused before anything is written.
UNVALIDATED = {
    "hidden-omega0-zero": ["--hidden-omega0", "0"],
    "sl2a-rank-zero": ["--model", "sl2a", "--rank", "0"],
    "relu-pe-negative-octaves": ["--model", "relu-pe", "--n-frequencies", "-1"],
}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("case", UNVALIDATED)
def test_invalid_model_override(case, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), *FAST, *UNVALIDATED[case]])
    captured = capsys.readouterr()
    assert not out.exists()
    assert code == 2
    assert captured.err.startswith("inrkit: error: ")


# -- the one output policy (issue 15, item 1) --------------------------------------------------------------------
def _sphere_obj(folder: Path) -> Path:
    import trimesh

    path = folder / "sphere.obj"
    trimesh.creation.icosphere(subdivisions=1).export(path)
    return path


def test_unwritable_output_folder_is_one_line_for_every_verb(small_run, tmp_path, capsys, monkeypatch):
    """Simulated with os.access (tests may run as root); nothing is written and each message names the folder."""
    import inrkit.files
    import inrkit.runs

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = inrkit.files.os.access
    monkeypatch.setattr(inrkit.files.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    monkeypatch.setattr(inrkit.runs.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    inrz = tmp_path / "run.inrz"
    assert main(["compress", str(small_run.dir), str(inrz)]) == 0
    capsys.readouterr()
    commands = [
        ["fit", str(_png(tmp_path)), "--out", str(locked / "run"), *FAST],
        ["render", str(small_run.dir), "--out", str(locked / "x.png")],
        ["compress", str(small_run.dir), str(locked / "x.inrz")],
        ["decompress", str(inrz), "--out", str(locked / "dec")],
        ["mesh", str(small_run.dir), "--out", str(locked / "x.ply")],
        ["nerf", "spheres", "--out", str(locked / "nerf"), "--steps", "1", "--device", "cpu", "--quiet"],
        ["fit", str(_sphere_obj(tmp_path)), "--out", str(tmp_path / "elsewhere"), *FAST, "--export", str(locked / "x.ply")],
    ]
    for command in commands:
        _assert_one_line_error(capsys, main(command), f"the folder {locked} is not writable")
    assert list(locked.iterdir()) == []


def test_a_fit_that_fails_before_training_leaves_no_run(tmp_path, capsys, monkeypatch):
    from inrkit.train import Trainer

    def broken(self, *args, **kwargs):
        raise OverflowError("a kernel that cannot run this field")

    monkeypatch.setattr(Trainer, "_step", broken)
    out = tmp_path / "run"
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), *FAST])
    assert code == 1 and "internal error" in capsys.readouterr().err  # a bug stays a bug, but leaves nothing behind
    assert not out.exists()


def test_decompress_overwrite_replaces_the_whole_run(small_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run.dir, run)
    inrz = tmp_path / "run.inrz"
    assert main(["compress", str(run), str(inrz)]) == 0
    assert main(["decompress", str(inrz), "--out", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["decompress", str(inrz), "--out", str(run), "--overwrite"]) == 0
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "metrics.jsonl", "weights.safetensors"]
    assert main(["info", str(run)]) == 0


def test_compress_never_writes_over_its_run(small_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run.dir, run)
    before = (run / "config.json").read_bytes()
    for target in ("config.json", "weights.safetensors", "metrics.jsonl"):
        _assert_one_line_error(capsys, main(["compress", str(run), str(run / target), "--overwrite"]), "input")
    assert (run / "config.json").read_bytes() == before
    assert main(["info", str(run)]) == 0


@pytest.mark.parametrize("verb", ["render", "mesh", "compress"])
def test_existing_outputs_need_overwrite(verb, small_run, tmp_path, capsys):
    target = tmp_path / ("x.inrz" if verb == "compress" else "x.ply" if verb == "mesh" else "x.png")
    target.write_bytes(b"precious")
    command = {"render": ["render", str(small_run.dir), "--out", str(target), "--device", "cpu"],
               "mesh": ["mesh", str(small_run.dir), "--out", str(target)],
               "compress": ["compress", str(small_run.dir), str(target)]}[verb]
    _assert_one_line_error(capsys, main(command), "pass --overwrite")
    assert target.read_bytes() == b"precious"
    if verb != "mesh":  # a mesh of an image run is refused for another reason
        assert main([*command, "--overwrite"]) == 0
        assert target.read_bytes() != b"precious"


def test_a_field_the_kernel_cannot_run_leaves_no_run(tmp_path, capsys):
    """``--per-level-scale 1e9`` fails in the grid kernel at the first step (its validation belongs to the field
    config); whatever the message, no partial run directory is left."""
    out = tmp_path / "run"
    code = main(["fit", str(_png(tmp_path)), "--out", str(out), *FAST, "--model", "hashgrid", "--per-level-scale", "1e9"])
    assert code in (1, 2)
    capsys.readouterr()
    assert not out.exists()


def test_video_frames_folder_is_replaced_only_with_overwrite(tmp_path, capsys):
    from inrkit.io.images import write_image

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        write_image(frames / f"f{index}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    run = tmp_path / "run"
    assert main(["fit", str(frames), "--out", str(run), *FAST]) == 0
    out = tmp_path / "rendered"
    assert main(["render", str(run), "--out", str(out), "--device", "cpu"]) == 0
    first = sorted(p.name for p in out.iterdir())
    assert first and all(name.endswith(".png") for name in first)
    capsys.readouterr()
    _assert_one_line_error(capsys, main(["render", str(run), "--out", str(out), "--device", "cpu"]), "--overwrite")
    assert main(["render", str(run), "--out", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == first


def test_sigterm_outside_training_unwinds_and_leaves_nothing_partial(small_run, tmp_path, capsys, monkeypatch):
    """SIGTERM while an output is written (no training loop to checkpoint): one line, exit 143, no temporaries."""
    import signal
    import threading

    import inrkit.api.render

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    real_render = inrkit.api.render.render

    def render_then_terminated(*args, **kwargs):
        pixels = real_render(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)
        return pixels

    monkeypatch.setattr(inrkit.api.render, "render", render_then_terminated)
    handler_before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "x.png"
    assert main(["render", str(small_run.dir), "--out", str(out), "--device", "cpu"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("inrkit: terminated (SIGTERM)")
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_a_closed_stdout_pipe_ends_quietly(small_run, monkeypatch, capsys):
    """`inrkit info RUN | head -1`: the reader goes away; no "internal error", status 128 + SIGPIPE."""
    import signal
    import sys

    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(small_run.dir)]) == 128 + signal.SIGPIPE
    assert "internal error" not in capsys.readouterr().err


def test_the_python_renders_follow_the_output_policy(small_run, tmp_path):
    """`inrkit.render_image` refuses an existing output without overwrite=True, and never writes over the run."""
    out = tmp_path / "render.png"
    inrkit.render_image(small_run, out, height=8, width=8)
    with pytest.raises(InrkitError, match="pass --overwrite"):
        inrkit.render_image(small_run, out, height=8, width=8)
    assert inrkit.render_image(small_run, out, height=8, width=8, overwrite=True) == out
    with pytest.raises(InrkitError, match="is an input of this command"):
        inrkit.render_image(small_run, small_run.dir / "config.json", overwrite=True)
