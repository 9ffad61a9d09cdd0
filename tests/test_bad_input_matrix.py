"""The bad-input matrix: every verb against careless and hostile input.

Each case runs ``inrkit`` (in process) in a fresh folder holding copies of tiny fitted runs of every kind
(image, audio, video, SDF, radiance field), their ``.inrz`` files and their sources, and asserts: exit
status 2, exactly one line ``inrkit: error: ...`` on stderr naming the cause, no "internal error", nothing on
stdout, and no file under the folder changed, added or removed (every file is hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile
import trimesh

import inrkit
from inrkit.cli import main
from inrkit.io.images import write_image

KINDS = ("image", "audio", "video", "sdf", "nerf")
TINY = {"width": 8, "depth": 2, "steps": 2, "device": "cpu", "quiet": True}
FIT = ["--width", "8", "--depth", "2", "--steps", "2", "--device", "cpu", "--quiet"]
NERF = ["--preset", "instant-ngp-cpu", "--steps", "2", "--scene-resolution", "8", "--target-samples", "256",
        "--grid-resolution", "8", "--device", "cpu", "--quiet"]
OUTPUT = {"image": "x.png", "audio": "x.wav", "video": "x.mp4", "sdf": "x.ply", "nerf": "x.mp4"}
SOURCE = {"image": "img.png", "audio": "song.wav", "video": "frames", "sdf": "sphere.obj", "nerf": "spheres.json"}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run of every kind (RUN-KIND), its .inrz (KIND.inrz) and its source, fitted once for the module."""
    folder = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    write_image(folder / "img.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    soundfile.write(folder / "song.wav", (0.5 * np.sin(np.arange(400) / 5)).astype(np.float32), 4000)
    (folder / "frames").mkdir()
    for index in range(3):
        write_image(folder / "frames" / f"f{index}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    trimesh.creation.icosphere(subdivisions=1).export(folder / "sphere.obj")
    shutil.copy(Path(inrkit.__file__).parents[1] / "scenes" / "spheres.json", folder / "spheres.json")
    for kind in ("image", "audio", "video"):
        inrkit.fit(folder / SOURCE[kind], out=folder / f"run-{kind}", **TINY)
    inrkit.fit(folder / "sphere.obj", out=folder / "run-sdf", sdf_samples=1024, batch_size=256, eval_resolution=16,
               resolution=16, **TINY)
    inrkit.nerf.fit(folder / "spheres.json", preset="instant-ngp-cpu", steps=2, out=folder / "run-nerf", device="cpu",
                    quiet=True, scene_resolution=8, target_samples=256, grid_resolution=8)
    inrkit.fit(folder / "img.png", out=folder / "run-wide", width=12, depth=2, steps=2, device="cpu", quiet=True)
    for kind in KINDS:
        inrkit.export.compress(folder / f"run-{kind}", folder / f"{kind}.inrz", bits=8)
    return folder


class Case:
    """A folder with copies of the library; ``setup`` damages it, ``argv`` is the command line."""

    def __init__(self, folder: Path, library: Path) -> None:
        self.dir = folder
        self.library = library

    def run(self, kind: str) -> Path:
        """A copy of the run of ``kind`` (RUN-KIND)."""
        target = self.dir / f"run-{kind}"
        if not target.exists():
            shutil.copytree(self.library / f"run-{kind}", target)
        return target

    def inrz(self, kind: str) -> Path:
        target = self.dir / f"{kind}.inrz"
        if not target.exists():
            shutil.copy(self.library / f"{kind}.inrz", target)
        return target

    def source(self, kind: str) -> Path:
        target = self.dir / SOURCE[kind]
        if not target.exists():
            copy = shutil.copytree if (self.library / SOURCE[kind]).is_dir() else shutil.copy
            copy(self.library / SOURCE[kind], target)
        return target

    def file(self, name: str, content: bytes | str = b"precious") -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path

    def edit_json(self, path: Path, change: Callable[[dict], object]) -> Path:
        data = json.loads(path.read_text())
        result = change(data)
        path.write_text(json.dumps(data if result is None else result))
        return path


Builder = Callable[[Case], list[str]]
CASES: dict[str, tuple[Builder, str]] = {}


def case(name: str, phrase: str) -> Callable[[Builder], Builder]:
    def register(builder: Builder) -> Builder:
        assert name not in CASES, name
        CASES[name] = (builder, phrase)
        return builder

    return register


def add(name: str, phrase: str, builder: Builder) -> None:
    case(name, phrase)(builder)


# -- 1. one output policy: refuse to overwrite without --overwrite, never write over an input --------------
for _kind in KINDS:
    add(f"render-{_kind}-existing-out", "--overwrite",
        lambda c, k=_kind: ["render", str(c.run(k)), "--out" if k != "nerf" else "--turntable", str(c.file(OUTPUT[k])),
                            "--device", "cpu", "--frames", "2"])
    add(f"render-{_kind}-inrz-existing-out", "--overwrite",
        lambda c, k=_kind: ["render", str(c.inrz(k)), "--out" if k != "nerf" else "--turntable", str(c.file(OUTPUT[k])),
                            "--device", "cpu", "--frames", "2"])
    add(f"compress-{_kind}-existing-out", "--overwrite",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(c.file("x.inrz"))])
    add(f"compress-{_kind}-over-its-config", "config.json",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(c.run(k) / "config.json"), "--overwrite"])
    add(f"compress-{_kind}-over-its-weights", "weights.safetensors",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(c.run(k) / "weights.safetensors"), "--overwrite"])
    add(f"compress-{_kind}-inrz-over-itself", "input",
        lambda c, k=_kind: ["compress", str(c.inrz(k)), str(c.inrz(k)), "--overwrite"])
    add(f"render-{_kind}-over-its-config", "config.json",
        lambda c, k=_kind: ["render", str(c.run(k)), "--out" if k != "nerf" else "--turntable",
                            str(c.run(k) / "config.json"), "--overwrite", "--device", "cpu"])
    add(f"decompress-{_kind}-existing-run", "--overwrite",
        lambda c, k=_kind: ["decompress", str(c.inrz(k)), "--out", str(c.run(k))])
    add(f"decompress-{_kind}-into-the-folder-of-its-input", "input",
        lambda c, k=_kind: ["decompress", str(shutil.copy(c.inrz(k), c.run(k) / "x.inrz")), "--out", str(c.run(k)),
                            "--overwrite"])
    add(f"decompress-{_kind}-over-itself", "input",
        lambda c, k=_kind: ["decompress", str(c.inrz(k)), "--out", str(c.inrz(k)), "--overwrite"])
    add(f"decompress-{_kind}-out-is-a-file", "not a directory",
        lambda c, k=_kind: ["decompress", str(c.inrz(k)), "--out", str(c.file("x.txt"))])
    add(f"compress-{_kind}-out-is-a-directory", "is a directory",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(c.run(k)), "--overwrite"])
    add(f"render-{_kind}-out-is-a-directory", "is a directory",
        lambda c, k=_kind: ["render", str(c.run(k)), "--out" if k != "nerf" else "--turntable",
                            str((c.dir / f"dir{OUTPUT[k]}").mkdir() or c.dir / f"dir{OUTPUT[k]}"), "--overwrite",
                            "--device", "cpu"])
    add(f"render-{_kind}-out-is-a-symlink", "symbolic link",
        lambda c, k=_kind: ["render", str(c.run(k)), "--out" if k != "nerf" else "--turntable",
                            str(_symlink(c, OUTPUT[k])), "--overwrite", "--device", "cpu", "--frames", "2"])
    add(f"compress-{_kind}-out-is-a-symlink", "symbolic link",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(_symlink(c, "x.inrz")), "--overwrite"])
    add(f"render-{_kind}-out-folder-is-a-file", "not a directory",
        lambda c, k=_kind: ["render", str(c.run(k)), "--out" if k != "nerf" else "--turntable",
                            str(c.file("afile") / OUTPUT[k]), "--device", "cpu"])
    add(f"compress-{_kind}-out-folder-is-a-file", "not a directory",
        lambda c, k=_kind: ["compress", str(c.run(k)), str(c.file("afile") / "x.inrz")])
    add(f"decompress-{_kind}-out-folder-is-a-file", "not a directory",
        lambda c, k=_kind: ["decompress", str(c.inrz(k)), "--out", str(c.file("afile") / "run")])


def _symlink(c: Case, name: str) -> Path:
    target = c.file("elsewhere" + Path(name).suffix)
    link = c.dir / name
    link.symlink_to(target)
    return link


add("render-video-frames-folder-existing", "--overwrite",
    lambda c: ["render", str(c.run("video")), "--out", str(c.file("frames-out/frame_00000.png").parent), "--device", "cpu"])
add("render-video-frames-folder-holds-other-files", "not only PNG frames",
    lambda c: ["render", str(c.run("video")), "--out", str(c.file("mine/notes.txt").parent), "--overwrite", "--device",
               "cpu"])
add("render-video-frames-folder-is-the-run", "input",
    lambda c: ["render", str(c.run("video")), "--out", str(c.run("video")), "--overwrite", "--device", "cpu"])
add("render-video-frames-folder-holds-the-run", "input",
    lambda c: ["render", str(c.run("video")), "--out", str(c.dir), "--overwrite", "--device", "cpu"])
add("mesh-existing-out", "--overwrite", lambda c: ["mesh", str(c.run("sdf")), "--out", str(c.file("x.ply")),
                                                   "--resolution", "8", "--device", "cpu"])
add("mesh-out-is-a-directory", "is a directory",
    lambda c: ["mesh", str(c.run("sdf")), "--out", str((c.dir / "d.ply").mkdir() or c.dir / "d.ply"), "--overwrite",
               "--resolution", "8"])
add("mesh-out-is-a-symlink", "symbolic link",
    lambda c: ["mesh", str(c.run("sdf")), "--out", str(_symlink(c, "x.ply")), "--overwrite", "--resolution", "8"])
add("mesh-out-folder-is-a-file", "not a directory",
    lambda c: ["mesh", str(c.run("sdf")), "--out", str(c.file("afile") / "x.ply"), "--resolution", "8"])
add("nerf-render-mesh-existing", "--overwrite",
    lambda c: ["render", str(c.run("nerf")), "--mesh", str(c.file("x.ply")), "--mesh-resolution", "8"])
add("nerf-render-view-existing", "--overwrite",
    lambda c: ["render", str(c.run("nerf")), "--out", str(c.file("x.png")), "--device", "cpu"])
add("fit-existing-out", "--overwrite", lambda c: ["fit", str(c.source("image")), "--out", str(c.run("image")), *FIT])
add("fit-over-its-own-source", "input",
    lambda c: ["fit", str(shutil.copy(c.source("image"), c.run("image") / "in.png")), "--out", str(c.run("image")),
               "--overwrite", *FIT])
add("fit-out-is-its-source", "input",
    lambda c: ["fit", str(c.source("image")), "--out", str(c.source("image")), "--overwrite", *FIT])
add("fit-out-is-a-file", "not a directory",
    lambda c: ["fit", str(c.source("image")), "--out", str(c.file("x.txt")), "--overwrite", *FIT])
add("fit-out-folder-is-a-file", "not a directory",
    lambda c: ["fit", str(c.source("image")), "--out", str(c.file("afile") / "run"), *FIT])
add("fit-export-existing", "--overwrite",
    lambda c: ["fit", str(c.source("sdf")), "--out", str(c.dir / "new"), "--export", str(c.file("x.ply")), *FIT])
add("fit-export-folder-is-a-file", "not a directory",
    lambda c: ["fit", str(c.source("sdf")), "--out", str(c.dir / "new"), "--export", str(c.file("afile") / "x.ply"), *FIT])
add("nerf-existing-out", "--overwrite", lambda c: ["nerf", str(c.source("nerf")), "--out", str(c.run("nerf")), *NERF])
add("nerf-out-folder-is-a-file", "not a directory",
    lambda c: ["nerf", str(c.source("nerf")), "--out", str(c.file("afile") / "run"), *NERF])
add("nerf-mesh-existing", "--overwrite",
    lambda c: ["nerf", str(c.source("nerf")), "--out", str(c.dir / "new"), "--mesh", str(c.file("x.ply")), *NERF])
add("nerf-over-its-own-scene", "input",
    lambda c: ["nerf", str(c.run("nerf") / "scene"), "--out", str(c.run("nerf")), "--overwrite", *NERF])


# -- 2. --resume on damaged runs -----------------------------------------------------------------------
def _resume(kind: str) -> list[str]:
    return ["fit" if kind != "nerf" else "nerf", "--resume", "--steps", "4", "--quiet"]


def _damage(kind: str, relative: str, content: bytes | str | Callable[[Path], object]) -> Builder:
    def build(c: Case) -> list[str]:
        run = c.run(kind)
        path = run / relative.replace("CKPT", json.loads((run / "checkpoint.json").read_text())["folder"])
        if callable(content):
            content(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return [*_resume(kind), "--out", str(run)]

    return build


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _json_change(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return apply


RESUME_DAMAGE = {
    "pointer-garbage": ("checkpoint.json", b"\x00garbage", "checkpoint.json"),
    "pointer-empty": ("checkpoint.json", b"", "checkpoint.json"),
    "pointer-list": ("checkpoint.json", "[1, 2]", "checkpoint.json"),
    "pointer-no-folder": ("checkpoint.json", '{"step": 2}', "checkpoint.json"),
    "pointer-folder-outside": ("checkpoint.json", '{"folder": "../..", "step": 2}', "checkpoint.json"),
    "pointer-missing-folder": ("checkpoint.json", '{"folder": "checkpoint-00000099", "step": 99}', "checkpoint"),
    "state-truncated": ("CKPT/training.safetensors", _truncate, "training.safetensors"),
    "state-garbage": ("CKPT/training.safetensors", b"garbage" * 10, "training.safetensors"),
    "state-json-garbage": ("CKPT/state.json", b"{not json", "state.json"),
    "state-json-missing-step": ("CKPT/state.json", _json_change(lambda d: d.pop("step")), "state.json"),
    "state-json-negative-step": ("CKPT/state.json", _json_change(lambda d: d.update(step=-3)), "state.json"),
    "state-json-list": ("CKPT/state.json", "[]", "state.json"),
    "config-no-train": ("config.json", _json_change(lambda d: d.pop("train")), "train"),
    "config-no-signal": ("config.json", _json_change(lambda d: d.pop("signal")), "signal"),
    "config-unknown-train-key": ("config.json", _json_change(lambda d: d["train"].update(warp=9)), "warp"),
    "config-train-list": ("config.json", _json_change(lambda d: d.update(train=[1])), "train"),
    "config-lr-a-string": ("config.json", _json_change(lambda d: d["train"].update(lr="fast")), "train"),
    "config-field-a-list": ("config.json", _json_change(lambda d: d.update(field=[])), "field"),
    "metrics-bad-line": ("metrics.jsonl", b'{"step": 1}\n{bad\n{"step": 2}\n', "metrics.jsonl"),
    "metrics-not-utf8": ("metrics.jsonl", b'{"step": 1, "x": "\xff"}\n', "metrics.jsonl"),
}
for _kind in ("image", "nerf"):
    for _name, (_relative, _content, _phrase) in RESUME_DAMAGE.items():
        add(f"resume-{_kind}-{_name}", _phrase, _damage(_kind, _relative, _content))


def _foreign_checkpoint(c: Case) -> list[str]:
    run, wide = c.run("image"), c.run("wide")
    for path in run.glob("checkpoint*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in wide.glob("checkpoint*"):
        (shutil.copytree if path.is_dir() else shutil.copy)(path, run / path.name)
    shutil.rmtree(wide)
    return ["fit", "--resume", "--out", str(run), "--steps", "4", "--quiet"]


add("resume-image-checkpoint-of-another-run", "another run", _foreign_checkpoint)
add("resume-image-weights-of-another-run", "weights",
    lambda c: [shutil.copy(c.run("wide") / "weights.safetensors", c.run("image") / "weights.safetensors") and "info",
               str(c.run("image"))])
add("resume-image-no-checkpoint", "no checkpoint",
    lambda c: [(c.run("image") / "checkpoint.json").unlink() or "fit", "--resume", "--out", str(c.run("image")), "--quiet"])
add("resume-image-source-gone", "--source",
    lambda c: [*_resume("image"), "--out", str(c.edit_json(c.run("image") / "config.json",
                                                           lambda d: d["signal"].update(source=str(c.dir / "gone.png"))).parent)])
add("resume-image-source-garbage", "not a readable image",
    lambda c: [*_resume("image"), "--out", str(c.run("image")), "--source", str(c.file("bad.png", b"not an image"))])
add("resume-nerf-as-image", "radiance", lambda c: [*_resume("image"), "--out", str(c.run("nerf"))])
add("resume-image-as-nerf", "radiance", lambda c: [*_resume("nerf"), "--out", str(c.run("image"))])


# -- 2. info / render / compress / mesh on damaged run directories -------------------------------------
VERB_ARGV: dict[str, Callable[[Case, Path, str], list[str]]] = {
    "info": lambda c, run, k: ["info", str(run)],
    "render": lambda c, run, k: ["render", str(run), "--out" if k != "nerf" else "--turntable", str(c.dir / OUTPUT[k]),
                                 "--device", "cpu", "--frames", "2"],
    "compress": lambda c, run, k: ["compress", str(run), str(c.dir / "x.inrz")],
    "mesh": lambda c, run, k: ["mesh", str(run), "--out", str(c.dir / "x.ply"), "--resolution", "8"],
}


def _set(path: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data.pop(path[-1])

    return change


RUN_DAMAGE: dict[str, tuple[tuple[str, ...], str, Callable[[Path], object] | bytes, str]] = {
    # name: (kinds, file, damage, phrase)
    "huge-n-neurons": (("image", "audio", "video", "sdf"), "config.json",
                       _json_change(_set(("field", "network", "n_neurons"), 10_000_000)), "'n_neurons' must be an integer"),
    "huge-n-hidden-layers": (("image",), "config.json",
                             _json_change(_set(("field", "network", "n_hidden_layers"), 10_000_000)), "hidden layers"),
    "no-signal": (KINDS, "config.json", _json_change(_drop(("signal",))), "signal"),
    "signal-a-list": (("image", "audio", "video", "sdf"), "config.json", _json_change(_set(("signal",), [1])), "signal"),
    "no-model": (KINDS, "config.json", _json_change(_drop(("model",))), "model"),
    "no-signal-height": (("image", "video"), "config.json", _json_change(_drop(("signal", "height"))), "height"),
    "no-signal-kind": (("image", "audio", "video", "sdf"), "config.json", _json_change(_drop(("signal", "kind"))), "kind"),
    "lr-a-string": (KINDS, "config.json", _json_change(_set(("train", "lr"), "fast")), "train"),
    "steps-a-string": (("image", "nerf"), "config.json", _json_change(_set(("train", "steps"), "many")), "train"),
    "metrics-not-utf8": (KINDS, "metrics.jsonl", b'{"step": 1, "psnr": "\xff"}\n', "metrics.jsonl"),
    "metrics-a-list": (KINDS, "metrics.jsonl", b"[1, 2]\n", "metrics.jsonl"),
    "config-garbage": (KINDS, "config.json", b"\x00\xff", "config.json"),
    "config-a-list": (KINDS, "config.json", b"[]", "config.json"),
    "config-no-field": (KINDS, "config.json", _json_change(_drop(("field",))), "field"),
    "weights-garbage": (KINDS, "weights.safetensors", b"garbage", "weights"),
    "weights-missing": (KINDS, "weights.safetensors", lambda p: p.unlink(), "weights"),
    "weights-truncated": (KINDS, "weights.safetensors", _truncate, "weights"),
    "config-a-folder": (KINDS, "config.json", lambda p: (p.unlink(), p.mkdir()), "config.json"),
    "image-range-forged": (("image",), "config.json",
                           _json_change(_set(("signal", "normalisation"), {"dtype": "uint8", "low": 1, "high": 1})),
                           "normalisation"),
    "image-height-negative": (("image",), "config.json", _json_change(_set(("signal", "height"), -4)), "height"),
    "audio-rate-zero": (("audio",), "config.json", _json_change(_set(("signal", "sample_rate"), 0)), "sample_rate"),
    "video-fps-nan": (("video",), "config.json", _json_change(_set(("signal", "fps"), "nan")), "fps"),
    "nerf-no-turntable-camera": (("nerf",), "config.json", _json_change(_drop(("turntable", "camera"))), "turntable"),
}
for _name, (_kinds, _relative, _content, _phrase) in RUN_DAMAGE.items():
    for _kind in _kinds:
        for _verb, _argv in VERB_ARGV.items():
            if _verb == "mesh" and _kind != "sdf":
                continue
            if _verb == "render" and _kind == "sdf":
                continue
            if _verb == "compress" and _name.startswith("metrics"):
                continue  # compress does not read metrics.jsonl

            def _build(c: Case, k: str = _kind, relative: str = _relative, content=_content, argv=_argv) -> list[str]:
                run = c.run(k)
                path = run / relative
                if callable(content):
                    content(path)
                else:
                    path.write_bytes(content)
                return argv(c, run, k)

            add(f"{_verb}-{_kind}-{_name}", _phrase, _build)


# -- 2./6. absurd sizes and values ----------------------------------------------------------------------
def _render(kind: str, *flags: str, out: str | None = None) -> Builder:
    return lambda c: ["render", str(c.run(kind)), *(["--out", str(c.dir / out)] if out else []), "--device", "cpu", *flags]


ABSURD = {
    "render-image-size-huge": (_render("image", "--size", "100000x100000", out="x.png"), "--size"),
    "render-video-size-huge": (_render("video", "--size", "100000x100000", out="x.mp4"), "--size"),
    "render-nerf-size-huge": (_render("nerf", "--size", "100000x100000", "--frames", "1", out="x.png"), "--size"),
    "render-image-size-float": (_render("image", "--size", "1.5x2", out="x.png"), "--size"),
    "render-video-fps-inf": (_render("video", "--fps", "inf", out="x.mp4"), "--fps"),
    "render-video-fps-nan": (_render("video", "--fps", "nan", out="x.mp4"), "--fps"),
    "render-video-fps-zero": (_render("video", "--fps", "0", out="x.mp4"), "--fps"),
    "render-video-fps-negative": (_render("video", "--fps", "-3", out="x.mp4"), "--fps"),
    "render-video-fps-huge": (_render("video", "--fps", "1e9", out="x.mp4"), "--fps"),
    "render-nerf-fps-inf": (_render("nerf", "--fps", "inf", "--frames", "1", out="x.mp4"), "--fps"),
    "render-nerf-fps-zero": (_render("nerf", "--fps", "0", "--frames", "1", "--turntable", "t.mp4"), "--fps"),
    "render-audio-rate-huge": (_render("audio", "--rate", "1000000000", out="x.wav"), "--rate"),
    "render-audio-rate-zero": (_render("audio", "--rate", "0", out="x.wav"), "--rate"),
    "render-audio-rate-negative": (_render("audio", "--rate", "-8000", out="x.wav"), "--rate"),
    "render-nerf-frames-zero": (_render("nerf", "--frames", "0", "--turntable", "t.mp4"), "--frames"),
    "render-nerf-frames-huge": (_render("nerf", "--frames", "100000000", "--turntable", "t.mp4"), "--frames"),
    "render-nerf-mesh-resolution-huge": (_render("nerf", "--mesh", "m.ply", "--mesh-resolution", "100000"), "--mesh-resolution"),
    "render-nerf-mesh-resolution-zero": (_render("nerf", "--mesh", "m.ply", "--mesh-resolution", "0"), "--mesh-resolution"),
    "render-image-rate": (_render("image", "--rate", "8000", out="x.png"), "--rate"),
    "render-audio-size": (_render("audio", "--size", "8x8", out="x.wav"), "--size"),
    "render-image-unknown-format": (_render("image", out="x.xyz"), "format"),
    "render-audio-not-wav": (_render("audio", out="x.png"), ".wav"),
    "render-image-turntable": (_render("image", "--turntable", "t.mp4"), "radiance"),
    "mesh-resolution-huge": (lambda c: ["mesh", str(c.run("sdf")), "--resolution", "100000", "--out", str(c.dir / "m.ply")],
                             "--resolution"),
    "mesh-on-image": (lambda c: ["mesh", str(c.run("image")), "--out", str(c.dir / "m.ply")], "not an SDF run"),
    "mesh-bad-suffix": (lambda c: ["mesh", str(c.run("sdf")), "--out", str(c.dir / "m.fbx")], "--out"),
    "fit-width-huge": (lambda c: ["fit", str(c.source("image")), "--out", str(c.dir / "new"), *FIT, "--width", "100000"],
                       "--width"),
    "fit-depth-huge": (lambda c: ["fit", str(c.source("image")), "--out", str(c.dir / "new"), *FIT, "--depth", "1000000"],
                       "--depth"),
    "fit-background-2": (lambda c: ["fit", str(c.source("image")), "--out", str(c.dir / "new"), *FIT, "--alpha",
                                    "composite", "--background", "2"], "--background"),
    "fit-background-nan": (lambda c: ["fit", str(c.source("image")), "--out", str(c.dir / "new"), *FIT, "--background",
                                      "nan"], "--background"),
    "nerf-scene-resolution-huge": (lambda c: ["nerf", str(c.source("nerf")), "--out", str(c.dir / "new"), *NERF,
                                              "--scene-resolution", "100000"], "--scene-resolution"),
    "nerf-procedural-2d-centre": (lambda c: ["nerf", str(c.edit_json(c.source("nerf"), _set(("objects", 0, "center"),
                                                                                             [0.1, 0.2]))),
                                             "--out", str(c.dir / "new"), *NERF], "center"),
    "nerf-procedural-garbage": (lambda c: ["nerf", str(c.file("scene.json", b"{garbage")), "--out", str(c.dir / "new"),
                                           *NERF], "scene.json"),
    "nerf-procedural-no-objects": (lambda c: ["nerf", str(c.file("scene.json", b'{"objects": []}')), "--out",
                                              str(c.dir / "new"), *NERF], "objects"),
    "nerf-missing-scene": (lambda c: ["nerf", str(c.dir / "nothing"), "--out", str(c.dir / "new"), *NERF], "no such"),
    "compress-image-source-is-audio": (lambda c: ["compress", str(c.run("image")), str(c.dir / "x.inrz"), "--source",
                                                  str(c.source("audio"))], "song.wav"),
    "compress-audio-source-is-image": (lambda c: ["compress", str(c.run("audio")), str(c.dir / "x.inrz"), "--source",
                                                  str(c.source("image"))], "img.png"),
    "compress-image-source-missing": (lambda c: ["compress", str(c.run("image")), str(c.dir / "x.inrz"), "--source",
                                                 str(c.dir / "gone.png")], "--source"),
    "compress-bits-1": (lambda c: ["compress", str(c.run("image")), str(c.dir / "x.inrz"), "--bits", "1"], "bits"),
    "compress-bits-64": (lambda c: ["compress", str(c.run("image")), str(c.dir / "x.inrz"), "--bits", "64"], "bits"),
    "compress-target-bpp-nan": (lambda c: ["compress", str(c.run("image")), str(c.dir / "x.inrz"), "--target-bpp", "nan"],
                                "--target-bpp"),
    "compress-not-a-run": (lambda c: ["compress", str(c.dir), str(c.dir / "x.inrz")], "not an inrkit run"),
    "decompress-garbage": (lambda c: ["decompress", str(c.file("bad.inrz", b"INRZ garbage")), "--out", str(c.dir / "d")],
                           "bad.inrz"),
    "decompress-empty": (lambda c: ["decompress", str(c.file("bad.inrz", b"")), "--out", str(c.dir / "d")], "bad.inrz"),
    "decompress-missing": (lambda c: ["decompress", str(c.dir / "gone.inrz"), "--out", str(c.dir / "d")], "gone.inrz"),
    "decompress-a-run": (lambda c: ["decompress", str(c.run("image")), "--out", str(c.dir / "d")], "run-image"),
    "info-missing": (lambda c: ["info", str(c.dir / "nothing")], "nothing"),
    "info-empty-file": (lambda c: ["info", str(c.file("empty.inrz", b""))], "empty.inrz"),
    "render-missing": (lambda c: ["render", str(c.dir / "nothing"), "--out", str(c.dir / "x.png")], "nothing"),
}
for _name, (_builder, _phrase) in ABSURD.items():
    add(_name, _phrase, _builder)


def _inrz_inflate(c: Case) -> Path:
    """A header whose deflate stream is damaged, its checksum recomputed: inflating it fails."""
    import zlib

    from inrkit.export import inrz

    path = c.inrz("image")
    data = bytearray(path.read_bytes())
    magic, version, length, _ = inrz._PREFIX.unpack_from(data)
    start = inrz._PREFIX.size
    data[start + 2: start + 10] = b"\xff" * 8
    data[:start] = inrz._PREFIX.pack(magic, version, length, zlib.crc32(bytes(data[start: start + length])))
    path.write_bytes(bytes(data))
    return path


add("info-inrz-header-does-not-inflate", "image.inrz: header is corrupt", lambda c: ["info", str(_inrz_inflate(c))])
add("decompress-inrz-header-does-not-inflate", "image.inrz: header is corrupt",
    lambda c: ["decompress", str(_inrz_inflate(c)), "--out", str(c.dir / "d")])
add("render-inrz-header-does-not-inflate", "image.inrz: header is corrupt",
    lambda c: ["render", str(_inrz_inflate(c)), "--out", str(c.dir / "x.png")])
add("compress-inrz-header-does-not-inflate", "image.inrz: header is corrupt",
    lambda c: ["compress", str(_inrz_inflate(c)), str(c.dir / "x.inrz")])


# -- fit inputs (existing classes, through the same harness) -------------------------------------------
FIT_INPUTS = {
    "fit-missing-file": (lambda c: c.dir / "missing.png", [], "no such file"),
    "fit-text-as-png": (lambda c: c.file("notes.png", b"not an image"), [], "not a readable image"),
    "fit-empty-wav": (lambda c: c.file("empty.wav", b""), [], "empty.wav"),
    "fit-garbage-wav": (lambda c: c.file("bad.wav", b"RIFF garbage"), [], "bad.wav"),
    "fit-empty-obj": (lambda c: c.file("empty.obj", b""), [], "empty"),
    "fit-obj-no-faces": (lambda c: c.file("points.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\n"), [], "no triangles"),
    "fit-unknown-suffix": (lambda c: c.file("data.qqq", b"123"), [], "unsupported file type"),
    "fit-empty-frames-folder": (lambda c: (c.dir / "frames-empty").mkdir() or c.dir / "frames-empty", [], "frames-empty"),
    "fit-unknown-model": (lambda c: c.source("image"), ["--model", "transformer"], "unknown model"),
    "fit-steps-zero": (lambda c: c.source("image"), ["--steps", "0"], "--steps"),
    "fit-lr-nan": (lambda c: c.source("image"), ["--lr", "nan"], "--lr"),
    "fit-lr-inf": (lambda c: c.source("image"), ["--lr", "inf"], "--lr"),
    "fit-seconds-inf": (lambda c: c.source("image"), ["--seconds", "inf"], "--seconds"),
    "fit-seconds-nan": (lambda c: c.source("image"), ["--seconds", "nan"], "--seconds"),
    "fit-batch-size-zero": (lambda c: c.source("image"), ["--batch-size", "0"], "--batch-size"),
    "fit-width-zero": (lambda c: c.source("image"), ["--width", "0"], "--width"),
    "fit-bad-device": (lambda c: c.source("image"), ["--device", "tpu"], "device"),
    "fit-bad-schedule": (lambda c: c.source("image"), ["--schedule", "linear"], "--schedule"),
    "fit-sdf-option-on-image": (lambda c: c.source("image"), ["--sdf-loss", "l1"], "does not apply"),
    "fit-image-option-on-audio": (lambda c: c.source("audio"), ["--alpha", "composite"], "does not apply"),
    "fit-without-path": (lambda c: None, [], "give the file"),
    "fit-resume-without-run": (lambda c: None, ["--resume"], "run directory"),
}
for _name, (_make, _flags, _phrase) in FIT_INPUTS.items():
    def _fit(c: Case, make=_make, flags=_flags) -> list[str]:
        path = make(c)
        return ["fit", *([str(path)] if path is not None else []), *(["--out", str(c.dir / "new")] if "--resume" not in flags
                                                                    else []), *FIT, *flags]

    add(_name, _phrase, _fit)

NERF_INPUTS = {
    "nerf-downscale-zero": (["--downscale", "0"], "--downscale"),
    "nerf-bad-loss": (["--loss", "l7"], "--loss"),
    "nerf-bad-background": (["--train-background", "pink"], "--train-background"),
    "nerf-bad-preset": (["--preset", "nope"], "preset"),
    "nerf-tcnn": (["--backend", "tcnn"], "--backend"),
    "nerf-target-samples-tiny": (["--target-samples", "1"], "--target-samples"),
    "nerf-without-scene": (None, "give the scene"),
}
for _name, (_flags, _phrase) in NERF_INPUTS.items():
    add(_name, _phrase, lambda c, flags=_flags: ["nerf", *([str(c.source("nerf"))] if flags is not None else []),
                                                 "--out", str(c.dir / "new"), *NERF, *(flags or [])])


# -- the harness ----------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> a hash of its content (files), its target (links) or 'dir'."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                state[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[key] = "dir"
            else:
                state[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


add("fit-per-level-scale-1e9", "--per-level-scale",
    lambda c: ["fit", str(c.source("image")), "--out", str(c.dir / "new"), *FIT, "--model", "hashgrid", "--per-level-scale",
               "1e9"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name: str, library: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    build, phrase = CASES[name]
    monkeypatch.chdir(tmp_path)
    argv = build(Case(tmp_path, library))
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert "internal error" not in captured.err, captured.err
    assert code == 2, (argv, captured.err)
    assert len(lines) == 1 and lines[0].startswith("inrkit: error: "), captured.err
    assert phrase in lines[0], (phrase, lines[0])
    assert captured.out == "", captured.out
    after = snapshot(tmp_path)
    assert after == before, {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
                             if before.get(k) != after.get(k)}


def test_the_matrix_is_large() -> None:
    assert len(CASES) >= 315
