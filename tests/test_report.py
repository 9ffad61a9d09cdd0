"""``inrkit report``: one self-contained HTML page built from small real runs of every kind, checked for its
structure (every section, every image decodes, nothing outside the page) and opened in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import smooth_image, to_uint
from PIL import Image

import inrkit
from inrkit.api.bench import run_bench
from inrkit.api.protocols import load_protocol
from inrkit.api.report import LiveReport
from inrkit.api.report.charts import Series, line_chart, nice_ticks
from inrkit.api.report.media import simplify_mesh
from inrkit.cli import main
from inrkit.io.audio import write_wav
from inrkit.io.images import write_image
from inrkit.nerf.procedural import make_scene

SMALL = {"device": "cpu", "quiet": True, "seed": 0}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real runs of every kind, tiny: a one-cell bench whose image cell (fitted with ``report=True``, the live pages
    kept) and its ``.inrz`` are reported on too; audio, video, SDF and NeRF (+ turntable) runs."""
    folder = tmp_path_factory.mktemp("report")
    write_image(folder / "photo.png", to_uint(smooth_image(24, 32, 3, seed=2)))
    protocol = folder / "tiny.json"
    protocol.write_text(json.dumps({
        "name": "tiny", "version": 1, "title": "a backbone on one image", "task": "fit",
        "data": {"glob": "*.png"}, "models": {"siren": {}},
        "options": {"steps": 10, "eval_every": 4, "width": 16, "depth": 2, **SMALL}, "compress": [{"bits": 8}],
        "metrics": ["psnr", "ssim"],
        "published": {"metric": "psnr", "sources": {"made-up": "a number to compare with"},
                      "values": {"siren": {"value": 30.0, "source": "made-up"}}}}))
    live_pages: list[tuple[int, str]] = []
    original = LiveReport.__call__

    def look(self: LiveReport, record: dict) -> None:  # the real hook, then a look at the page it wrote
        original(self, record)
        live_pages.append((record["step"], self.path.read_text(encoding="utf-8")))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LiveReport, "__call__", look)
        run_bench(load_protocol(protocol), folder, folder / "bench", fit_options={"report": True})
    image = folder / "bench" / "cells" / "siren" / "photo"
    t = np.arange(2000) / 8000.0
    wav = write_wav(folder / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t))[:, None].astype(np.float32), 8000)
    audio = inrkit.fit(wav, model="siren", out=folder / "audio", steps=10, width=16, depth=2, eval_every=5, **SMALL)
    frames = folder / "frames"
    for index in range(4):
        write_image(frames / f"frame_{index}.png", to_uint(smooth_image(16, 16, 3, seed=index)))
    video = inrkit.fit(frames, model="siren", out=folder / "video", steps=10, width=16, depth=2, eval_every=5, **SMALL)
    mesh_path = folder / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2, radius=1.0).export(mesh_path)
    sdf = inrkit.fit(mesh_path, model="siren", out=folder / "sdf", steps=10, width=16, depth=2, sdf_samples=2000,
                     resolution=24, eval_resolution=24, eval_every=0, **SMALL)
    scene = make_scene("spheres", folder / "scene", resolution=16, n_train=6, n_test=2)
    nerf = inrkit.nerf.fit(scene, preset="instant-ngp-cpu", steps=4, out=folder / "nerf", target_samples=1 << 11,
                           grid_resolution=16, device="cpu", quiet=True)
    nerf.render_turntable(nerf.dir / "turntable.gif", n_frames=3, fps=4, size=(16, 16))
    return {"image": image, "inrz": image / "compressed-0.inrz", "audio": audio.dir, "video": video.dir, "sdf": sdf.dir,
            "nerf": nerf.dir, "bench": folder / "bench", "folder": folder, "live_pages": live_pages}


@pytest.fixture(scope="module")
def report(report_inputs: dict[str, Path]) -> Path:
    names = ("image", "audio", "video", "sdf", "nerf", "inrz", "bench")
    out = report_inputs["folder"] / "report.html"
    assert main(["report", *(str(report_inputs[n]) for n in names), "--out", str(out)]) == 0
    return out


class Collector(HTMLParser):
    """Every tag with its attributes, and the section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_has_every_section_and_decodable_media(report: Path):
    html = report.read_text(encoding="utf-8")
    parser = Collector()
    parser.feed(html)
    sections = {a.get("id"): a.get("class") for tag, a in parser.tags if tag == "section"}
    assert sections["curves"] == "curves" and sections["rate-distortion"] == "rd"
    kinds = sorted(c for c in sections.values() if c and c.startswith("run "))
    assert kinds == ["run kind-audio", "run kind-image", "run kind-nerf", "run kind-sdf", "run kind-video"]
    assert "bench" in sections.values() and "inrz" in sections.values()
    images = [a["src"] for tag, a in parser.tags if tag == "img"]
    assert len(images) >= 3 + 4 + 1 + 2  # image run (target, reconstruction, error), NeRF (2 views, 2 depths, turntable),
    # bench gallery (target, reconstruction)
    for uri in images:
        assert uri.startswith(("data:image/png;base64,", "data:image/gif;base64,"))
        decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        decoded.load()
        assert min(decoded.size) >= 1
    media = {tag: [a["src"] for t, a in parser.tags if t == tag] for tag in ("audio", "video")}
    assert len(media["audio"]) == 2 and all(s.startswith("data:audio/wav;base64,UklGR") for s in media["audio"])  # RIFF
    assert len(media["video"]) == 1 and media["video"][0].startswith("data:video/mp4;base64,")
    assert any(uri.startswith("data:image/gif;base64,R0lGOD") for uri in images)  # the NeRF turntable (GIF)
    meshes = re.findall(r'<script type="application/json" class="mesh-data">(.*?)</script>', html)
    assert len(meshes) == 2  # fitted surface and input
    payload = json.loads(meshes[1])
    assert payload["n_faces"] == 320 and len(base64.b64decode(payload["faces"])) == 320 * 3 * 4  # icosphere(2), uint32
    assert html.count("<svg") >= 5 + 5 + 1  # run curves, the bench's mean curves, rate-distortion
    assert "gap gap-far" in html  # 30 dB published against a 10-step fit
    # nothing outside the page: no http(s) URL, no src/href other than data: URIs and in-page anchors
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    for tag, attributes in parser.tags:
        for key in ("src", "href"):
            value = attributes.get(key)
            assert value is None or value.startswith(("data:", "#")), (tag, key, value[:40])


def test_report_refuses_what_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_live_report_is_refreshed_while_training(report_inputs: dict):
    assert [step for step, _ in report_inputs["live_pages"]] == [4, 8, 10]  # every evaluation, the final one too
    assert all('http-equiv="refresh"' in page for _, page in report_inputs["live_pages"])  # reloads while training
    final = (report_inputs["image"] / "report.html").read_text(encoding="utf-8")
    assert 'http-equiv="refresh"' not in final and 'alt="reconstruction"' in final


def test_chart_ticks_and_mesh_simplification():
    assert nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3.0, 47.0) == [10.0, 20.0, 30.0, 40.0]
    single = line_chart([Series("run", [(150.0, 25.6)])], "psnr vs step", "step", "PSNR")  # one evaluation only
    x_labels = re.findall(r'text-anchor="middle">([0-9.]+)</text>', single)
    assert x_labels == ["145", "150", "155"]  # distinct labels around the one point, not five "150"s
    sphere = trimesh.creation.icosphere(subdivisions=5)  # 20,480 faces
    vertices, faces = simplify_mesh(sphere.vertices, sphere.faces, max_faces=5000)
    assert 0 < len(faces) <= 5000 and faces.max() < len(vertices)
    assert np.allclose(np.linalg.norm(vertices, axis=1), 1.0, atol=0.1)  # still the unit sphere


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs the Debian package 'chromium')")
def test_report_renders_in_chromium_without_script_errors(report: Path, tmp_path: Path):
    screenshot = tmp_path / "shot.png"
    completed = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1300,2400", f"--screenshot={screenshot}", "--dump-dom", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    console = [line for line in completed.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    dom = completed.stdout
    assert 'data-report-ready="1"' in dom  # the page's script ran to its end
    drawn = [int(n) for n in re.findall(r'data-drawn-faces="(\d+)"', dom)]
    assert len(drawn) == 2 and all(n > 100 for n in drawn)  # both meshes drawn on their canvases
    shot = np.asarray(Image.open(screenshot).convert("RGB"))
    assert shot.shape == (2400, 1300, 3)
    colours = {tuple(c) for c in shot.reshape(-1, 3)[:: 97]}
    assert len(colours) > 50 and (shot < 200).any(axis=2).mean() > 0.02  # text, charts and images, not a blank page
