"""SDF from the command line: ``inrkit fit shape --export``, ``inrkit mesh RUN``, and every bad shape input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from inrkit.cli import main

FAST = ["--model", "siren", "--width", "16", "--depth", "2", "--omega0", "10", "--steps", "3", "--batch-size", "1024",
        "--sdf-samples", "4096", "--eval-resolution", "24", "--resolution", "24", "--device", "cpu", "--quiet"]


def _write(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _sphere(folder: Path, name: str = "sphere.obj") -> Path:
    path = folder / name
    trimesh.creation.icosphere(subdivisions=2).export(path)
    return path


def _nan_obj(folder: Path) -> Path:
    text = trimesh.creation.icosphere(subdivisions=1).export(file_type="obj")
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("v "))
    lines[first] = "v nan 0 0"
    return _write(folder, "nan.obj", "\n".join(lines) + "\n")


def _points(folder: Path, n: int, name: str = "few.xyz") -> Path:
    path = folder / name
    np.savetxt(path, np.random.default_rng(0).standard_normal((n, 3)))
    return path


BAD_INPUTS = {
    "empty-file": (lambda d: _write(d, "empty.obj", b""), [], "the file is empty"),
    "no-triangles": (lambda d: _write(d, "points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), [], "no triangles"),
    "nan-vertices": (_nan_obj, [], "NaN"),
    "too-few-points": (lambda d: _points(d, 10), [], "too few"),
    "xyz-four-columns": (lambda d: _write(d, "bad.xyz", "1 2 3 4\n" * 50), [], "3 (x y z) or 6"),
    "xyz-text": (lambda d: _write(d, "bad.xyz", "hello world\n"), [], "not an XYZ point file"),
    "ply-garbage": (lambda d: _write(d, "bad.ply", b"ply\nthis is not a ply header\n"), [], "cannot read"),
    "glb-garbage": (lambda d: _write(d, "bad.glb", b"glTF\x02\x00\x00\x00garbage"), [], "cannot read"),
    "unknown-format": (lambda d: _write(d, "shape.fbx", b"\x00\x01"), [], "unsupported file type"),
    "points-with-mape": (lambda d: _points(d, 200, "cloud.xyz"), ["--sdf-loss", "mape"], "needs a mesh"),
    "bad-loss": (_sphere, ["--sdf-loss", "l2"], "--sdf-loss"),
    "bad-export-suffix": (_sphere, ["--export", "mesh.fbx"], "--export"),
    "bad-resolution": (_sphere, ["--resolution", "4"], "--resolution"),
    "sdf-option-on-image": (lambda d: _png(d), ["--sdf-loss", "l1"], "does not apply"),
}


def _png(folder: Path) -> Path:
    from inrkit.io.images import write_image

    return write_image(folder / "image.png", np.zeros((8, 8, 3), np.uint8))


def _one_line_error(capsys, code: int, phrase: str) -> None:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    assert captured.err.startswith("inrkit: error: ") and captured.err.count("\n") == 1, captured.err
    assert phrase in captured.err, captured.err


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_shape_input(case: str, tmp_path: Path, capsys, monkeypatch) -> None:
    make, flags, phrase = BAD_INPUTS[case]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = make(inputs)
    monkeypatch.chdir(tmp_path)
    code = main(["fit", str(path), "--out", str(tmp_path / "out"), *FAST, *flags])
    _one_line_error(capsys, code, phrase)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no run directory, no mesh


def test_fit_and_mesh_commands(tmp_path: Path, capsys) -> None:
    source = _sphere(tmp_path)
    out, exported = tmp_path / "run", tmp_path / "fit.stl"
    assert main(["fit", str(source), "--out", str(out), "--export", str(exported), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "IoU" in printed and "Chamfer-L1" in printed
    assert exported.is_file() and (out / "mesh.ply").is_file()
    assert main(["mesh", str(out), "--resolution", "20", "--out", str(tmp_path / "m.glb"), "--device", "cpu"]) == 0
    assert trimesh.load(tmp_path / "m.glb", force="mesh").faces.shape[0] > 0
    assert main(["info", str(out)]) == 0


def test_open_mesh_warns_on_one_line(tmp_path: Path, capsys) -> None:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    mesh.update_faces(mesh.triangles_center[:, 2] < 0.8)
    source = tmp_path / "open.off"
    mesh.export(source)
    assert main(["fit", str(source), "--out", str(tmp_path / "run"), *FAST, "--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "inrkit: warning: open.off is not a closed manifold" in err
    assert "Traceback" not in err and "UserWarning" not in err


def test_mesh_command_errors(tmp_path: Path, capsys, small_run) -> None:
    _one_line_error(capsys, main(["mesh", str(small_run.dir), "--out", str(tmp_path / "m.ply")]), "not an SDF run")
    _one_line_error(capsys, main(["mesh", str(small_run.dir), "--out", str(tmp_path / "m.fbx")]), "--out must end in")
    _one_line_error(capsys, main(["mesh", str(tmp_path), "--out", str(tmp_path / "m.ply")]), "not an inrkit run directory")
    assert list(tmp_path.iterdir()) == []


def _strict_json(text: str) -> dict:
    import json

    def refuse(constant: str) -> None:
        raise AssertionError(f"metrics.jsonl holds {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_truncated_obj_writes_no_nan_into_the_metrics(tmp_path: Path, capsys) -> None:
    """A box OBJ cut after its first face: an open, flat mesh (one warning) whose IoU cannot be measured."""
    source = _write(tmp_path, "cut.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nv 0 0 1\nf 1 2 3\nf 2 4 3\n")
    assert main(["fit", str(source), "--out", str(tmp_path / "run"), *FAST, "--steps", "1"]) == 0
    assert "inrkit: warning:" in capsys.readouterr().err
    records = [_strict_json(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records and all("iou" not in r for r in records)
    assert main(["info", str(tmp_path / "run")]) == 0


def test_latin1_comment_needs_no_charset_detection(tmp_path: Path, capsys, monkeypatch) -> None:
    """trimesh guesses the encoding of non-UTF-8 text with charset_normalizer, absent on a fresh install."""
    import sys

    monkeypatch.setitem(sys.modules, "charset_normalizer", None)
    text = trimesh.creation.icosphere(subdivisions=1).export(file_type="obj")
    source = _write(tmp_path, "latin.obj", b"# caf\xe9 mod\xe8le\n" + text.encode())
    assert main(["fit", str(source), "--out", str(tmp_path / "run"), *FAST, "--steps", "1"]) == 0
    assert "42 vertices" in str(_strict_json((tmp_path / "run" / "config.json").read_text())["signal"]["n_vertices"]) + \
        " vertices"
