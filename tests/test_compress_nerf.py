"""Compressed radiance fields: a NeRF run round-trips through ``.inrz`` (occupied cells exact, renders within the
quantisation error), ``info``/``render`` read the file, refusals, scene reopening, forged grid entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import inrkit
from inrkit import metrics
from inrkit.api import load_run
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.export import compress, decompress, inrz, load
from inrkit.fields import NerfModel
from inrkit.nerf.scene import Scene
from inrkit.signals.radiance import render_camera

RENDER_PSNR_8_BITS = 30.0  # stated bound: an 8-bit file renders a test view within 30 dB of the original (~50 measured)


@pytest.fixture(scope="module")
def nerf_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A procedural 'spheres' run at 16x16 (60 training views, 8 test views), 30 steps on the CPU; its scene in RUN/scene."""
    folder = tmp_path_factory.mktemp("nerf-compress")
    torch.manual_seed(0)
    inrkit.nerf.fit("spheres", preset="instant-ngp-cpu", steps=30, out=folder / "run", device="cpu", quiet=True,
                    scene_resolution=16, target_samples=2048, grid_resolution=16)
    return folder / "run"


@pytest.fixture(scope="module")
def compressed(nerf_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """The run compressed at 8 bits: ``(report, path)``."""
    path = tmp_path_factory.mktemp("inrz") / "spheres.inrz"
    return compress(nerf_run, path, bits=8), path


def test_round_trip_renders_like_the_original(nerf_run: Path, compressed, tmp_path: Path):
    report, path = compressed
    original = load_run(nerf_run)
    decoded = load(path)
    model = decoded.field
    assert isinstance(model, NerfModel) and isinstance(inrkit.load(path), NerfModel)
    # the grid as rendering needs it, bit for bit; the training-only estimate is left as built
    assert torch.equal(model.grid.occupied, original.field.grid.occupied)
    assert not bool(original.field.grid.occupied.all())  # something was carved out: the bitmask is not trivial
    assert torch.equal(model.grid.occupied_box, original.field.grid.occupied_box)
    assert int(model.grid.updates) == int(original.field.grid.updates) > 0
    assert not bool(model.grid.values.any())
    storage = {e["name"]: e["storage"] for e in decoded.header["tensors"]}
    assert storage["grid.values"] == "omitted" and storage["grid.occupied"] == "bitmask"
    assert storage["grid.updates"] == "int64" and storage["field.position_encoding.params"] == "quantized"
    # renders agree up to the quantisation error
    camera = Scene.from_blender(nerf_run / "scene").test_cameras[0]
    before, after = render_camera(original.field, camera)["rgb"], render_camera(model, camera)["rgb"]
    assert metrics.psnr(torch.from_numpy(after), torch.from_numpy(before)) > RENDER_PSNR_8_BITS
    # the header carries what rendering needs, and no local path
    config = json.loads((nerf_run / "config.json").read_text())
    assert decoded.header["turntable"] == config["turntable"] and decoded.config["turntable"] == config["turntable"]
    assert "source" not in decoded.header["signal"] and decoded.header["signal"]["kind"] == "radiance"
    # PSNR measured on the scene's test views (reopened from RUN/scene), smaller than the run's weights
    assert report.views == 8 and report.psnr_before == pytest.approx(original.metrics["psnr"], abs=1e-4)
    assert report.psnr_before - report.psnr_after < 0.5
    assert decoded.metrics["psnr"] == pytest.approx(report.psnr_after, abs=0.01)
    assert report.n_bytes == path.stat().st_size < (nerf_run / "weights.safetensors").stat().st_size / 3
    assert report.bpp is None and "bits/parameter" in report.summary()
    # decompress writes a run that loads to the same model
    decompress(path, tmp_path / "dec")
    again = load_run(tmp_path / "dec").field
    assert isinstance(again, NerfModel)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values(), strict=True))


def test_compress_a_fitted_nerf_and_recompress(nerf_run: Path, compressed, tmp_path: Path):
    _, path = compressed
    fitted = inrkit.nerf.load(nerf_run)  # the NeRF object itself (its config may keep the model under "nerf")
    report = compress(fitted, tmp_path / "a.inrz", bits=6, signal=nerf_run / "scene")
    assert report.bits == 6 and report.views == 8 and report.psnr_after is not None
    assert load(tmp_path / "a.inrz").header["turntable"] == fitted.config["turntable"]
    again = compress(path, tmp_path / "b.inrz", bits=8)  # an .inrz re-encodes; its scene is gone with its path
    assert again.psnr_after is None and "scene could not be reopened" in again.summary()
    assert torch.equal(load(tmp_path / "b.inrz").field.grid.occupied, load(path).field.grid.occupied)


def test_refusals(nerf_run: Path, tmp_path: Path, capsys):
    with pytest.raises(InrkitError, match="--target-bpp does not apply to a radiance field"):
        compress(nerf_run, tmp_path / "x.inrz", target_bpp=1.0)
    with pytest.raises(InrkitError, match="--finetune-steps is not supported for radiance fields"):
        compress(nerf_run, tmp_path / "x.inrz", finetune_steps=10)
    assert main(["compress", str(nerf_run), str(tmp_path / "x.inrz"), "--target-bpp", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrkit: error: --target-bpp") and err.count("\n") == 1
    assert not (tmp_path / "x.inrz").exists()


def test_scene_reopening_and_fp16_auto(nerf_run: Path, tmp_path: Path):
    moved = tmp_path / "moved"
    shutil.copytree(nerf_run, moved)
    config = json.loads((moved / "config.json").read_text())
    config["signal"]["source"] = str(tmp_path / "gone")  # the recorded folder is gone: RUN/scene is used
    (moved / "config.json").write_text(json.dumps(config))
    report = compress(moved, tmp_path / "auto.inrz", bits=4, fp16="auto")
    assert report.views == 8 and report.psnr_after is not None
    storage = {e["name"]: e["storage"] for e in load(tmp_path / "auto.inrz").header["tensors"]}
    assert storage["field.position_encoding.params"] == "quantized"  # above 10 % of the parameters: never fp16
    shutil.rmtree(moved / "scene")
    report = compress(moved, tmp_path / "plain.inrz", bits=8)
    assert report.psnr_before is None and "PSNR n/a" in report.summary()
    with pytest.raises(InrkitError, match=r"--fp16 auto needs the scene's test views: .*gone no longer exists"):
        compress(moved, tmp_path / "y.inrz", fp16="auto")


def test_cli_compress_info_render(nerf_run: Path, tmp_path: Path, capsys):
    out = tmp_path / "c.inrz"
    assert main(["compress", str(nerf_run), str(out), "--bits", "7"]) == 0
    printed = capsys.readouterr().out
    assert "7-bit" in printed and "bits/parameter" in printed and "on 8 test views" in printed
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "grid.occupied" in info and "bitmask" in info and "omitted (training only)" in info
    assert "occupied" in info and "HashGrid" in info and "turntable  yes" in info
    assert main(["render", str(out), "--out", str(tmp_path / "view.png"), "--size", "24x20", "--device", "cpu"]) == 0
    from inrkit.io.images import read_image

    assert read_image(tmp_path / "view.png").shape == (20, 24, 3)
    assert main(["render", str(out), "--frames", "2", "--size", "16x16", "--device", "cpu"]) == 0  # default: turntable
    assert (tmp_path / "c-turntable.mp4").stat().st_size > 0
    assert main(["info", str(nerf_run)]) == 0  # the run directory itself, through the same loader
    assert "occupied" in capsys.readouterr().out
    assert main(["decompress", str(out), "--out", str(tmp_path / "dec")]) == 0
    assert main(["info", str(tmp_path / "dec")]) == 0  # a decoded run has no scene path and no training section
    assert "decoded from c.inrz" in capsys.readouterr().out
    assert main(["render", str(tmp_path / "dec"), "--out", str(tmp_path / "dec.png"), "--size", "24x20", "--device", "cpu"]) == 0
    assert (read_image(tmp_path / "dec.png") == read_image(tmp_path / "view.png")).all()


def test_bare_model_has_no_turntable(nerf_run: Path, tmp_path: Path, capsys):
    model = load_run(nerf_run).field
    report = compress(model, tmp_path / "bare.inrz", bits=8)
    assert report.psnr_after is None
    assert "turntable" not in load(tmp_path / "bare.inrz").header
    assert main(["render", str(tmp_path / "bare.inrz"), "--out", str(tmp_path / "v.png"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "records no turntable orbit" in err and err.count("\n") == 1


# -- forged files ---------------------------------------------------------------------------------
def forge(data: bytes, edit) -> bytes:
    header, payload = inrz.unpack(data)
    payload = edit(header, payload)
    return inrz.pack(header, payload)


def entry(header: dict, name: str) -> dict:
    return next(e for e in header["tensors"] if e["name"] == name)


def offset_of(header: dict, name: str) -> int:
    offset = 0
    for item in header["tensors"]:
        if item["name"] == name:
            return offset
        offset += item["length"]
    raise KeyError(name)


def _omit_occupied(header, payload):
    item, start = entry(header, "grid.occupied"), offset_of(header, "grid.occupied")
    payload = payload[:start] + payload[start + item["length"]:]
    item.update(storage="omitted", length=0)
    item.pop("coder")
    return payload


def _garble_bitmask(header, payload):
    item, start = entry(header, "grid.occupied"), offset_of(header, "grid.occupied")
    garbage = b"not a zlib stream"
    payload = payload[:start] + garbage + payload[start + item["length"]:]
    item.update(coder="zlib", length=len(garbage))
    return payload


def _bitmask_bomb(header, payload):
    import zlib

    item, start = entry(header, "grid.occupied"), offset_of(header, "grid.occupied")
    bomb = zlib.compress(bytes(1 << 24), 9)  # 16 MB of zeros in a few kB: inflation stops at the expected size
    payload = payload[:start] + bomb + payload[start + item["length"]:]
    item.update(coder="zlib", length=len(bomb))
    return payload


def _bitmask_coder(header, payload):
    entry(header, "grid.occupied")["coder"] = "range"
    return payload


def _occupied_as_float(header, payload):
    entry(header, "grid.occupied")["storage"] = "float32"
    return payload


def _updates_too_short(header, payload):
    item, start = entry(header, "grid.updates"), offset_of(header, "grid.updates")
    item["length"] = 4
    return payload[:start] + payload[start:start + 4] + payload[start + 8:]


def _hash_params_omitted(header, payload):
    item, start = entry(header, "field.position_encoding.params"), offset_of(header, "field.position_encoding.params")
    payload = payload[:start] + payload[start + item["length"]:]
    for key in ("bits", "scheme", "coder", "params", "step"):
        item.pop(key, None)
    item.update(storage="omitted", length=0)
    return payload


def _huge_grid(header, payload):
    header["field"]["grid"]["resolution"] = 4096  # 2^36 cells: refused before anything is allocated
    return payload


def _bad_turntable(header, payload):
    header["turntable"]["camera"]["w"] = 1 << 30
    return payload


@pytest.mark.parametrize(("edit", "match"), [
    (_omit_occupied, "grid.occupied is omitted but the field needs it to render"),
    (_garble_bitmask, r"grid.occupied: zlib stream is corrupt"),
    (_bitmask_bomb, "grid.occupied: zlib stream decodes to 513 bytes, expected 512"),
    (_bitmask_coder, "unknown bitmask coder"),
    (_occupied_as_float, "grid.occupied of dtype bool is stored as float32"),
    (_updates_too_short, "grid.updates stores 4 bytes, expected 8"),
    (_hash_params_omitted, "is a parameter stored as omitted"),
    (_huge_grid, "above the limit|resolution. must be an integer"),
    (_bad_turntable, "turntable camera w"),
])
def test_forged_grid_entries_are_refused(compressed, tmp_path: Path, edit, match):
    _, path = compressed
    bad = tmp_path / "bad.inrz"
    bad.write_bytes(forge(path.read_bytes(), edit))
    with pytest.raises(InrkitError, match=match) as caught:
        load(bad)
    assert "\n" not in str(caught.value)
