"""Video signal: readers (frames folder, GIF, MP4), held-out columns, frame-grouped batches, fitting with and
without ResFields, rendering at other frame rates and sizes, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import inrkit
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.files import read_json
from inrkit.io.images import write_image
from inrkit.io.video import read_video, write_mp4
from inrkit.signals import VideoOptions, VideoSignal, kind_of, open_signal, signal_from_config, video
from inrkit.signals.video import DEVICE_VIDEO_BATCH


def moving_pattern(n_frames: int = 8, height: int = 16, width: int = 16) -> np.ndarray:
    """``(T, H, W, 3)`` float in [0, 1]: a Gaussian blob circling over drifting stripes."""
    t = np.arange(n_frames)[:, None, None]
    y = (np.arange(height)[None, :, None] + 0.5) / height
    x = (np.arange(width)[None, None, :] + 0.5) / width
    cx, cy = 0.5 + 0.3 * np.cos(2 * np.pi * t / n_frames), 0.5 + 0.3 * np.sin(2 * np.pi * t / n_frames)
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.01)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * x + 2 * y - t / 4))
    return np.stack([0.7 * blob + 0.3 * stripes, 0.5 * stripes, blob], axis=-1)


def as_uint8(frames: np.ndarray) -> np.ndarray:
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


def frames_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        write_image(folder / f"f{index}.png", frame)  # f10 after f9: natural order
    return folder


def test_frames_folder_gif_and_mp4_readers(tmp_path):
    frames = as_uint8(moving_pattern(12, 16, 20))
    folder = frames_folder(tmp_path / "frames", frames)
    assert kind_of(folder).name == "video"
    read, fps = read_video(folder, folder_fps=12.0)
    np.testing.assert_array_equal(read, frames)
    assert fps == 12.0
    from PIL import Image

    gif = tmp_path / "clip.gif"
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=50, loop=0)
    read_gif, gif_fps = read_video(gif)
    assert read_gif.shape == frames.shape and gif_fps == 20.0
    assert np.abs(read_gif.astype(int) - frames).mean() < 8  # GIF palette quantisation
    mp4 = write_mp4(tmp_path / "clip.mp4", frames, fps=10)
    read_mp4, mp4_fps = read_video(mp4)
    assert read_mp4.shape == frames.shape and mp4_fps == 10.0
    assert np.abs(read_mp4.astype(int) - frames).mean() < 12  # lossy H.264 with 4:2:0 chroma at 20x16
    small, _ = read_video(folder, downscale=2, max_frames=5)
    assert small.shape == (5, 8, 10, 3)
    np.testing.assert_array_equal(small[0, 0, 0], np.round(frames[0, :2, :2].reshape(4, 3).mean(0)).astype(np.uint8))


def test_video_is_held_once_and_batches_are_grouped_by_frame():
    frames = as_uint8(moving_pattern(6, 8, 20))
    signal = VideoSignal.from_array(frames, options=VideoOptions(holdout=0.1, frames_per_batch=3))
    assert signal.frames.data_ptr() == frames.__array_interface__["data"][0]  # no copy of the decoded video
    assert signal.heldout_columns.tolist() == [0, 10]  # every 10th column, as ResFields' test_every = 10
    batch = signal.sample(300, torch.Generator().manual_seed(0))
    assert batch.coords.shape == (300, 3) and batch.values.shape == (300, 3)
    t = batch.coords[:, 0]
    assert len(torch.unique_consecutive(t)) == 3 and bool((t[1:] >= t[:-1]).all())  # 3 frames, contiguous blocks
    columns = torch.round((batch.coords[:, 2] + 1) * 20 / 2 - 0.5).long()
    assert not set(columns.tolist()) & {0, 10}
    rows = torch.round((batch.coords[:, 1] + 1) * 8 / 2 - 0.5).long()
    frame_index = torch.round((t + 1) * 6 / 2 - 0.5).long()
    expected = torch.from_numpy(frames)[frame_index, rows, columns].float() / 255
    torch.testing.assert_close(batch.values, expected)


def test_resfields_beat_siren_on_held_out_pixels_at_equal_steps():
    frames = moving_pattern(8, 16, 16)
    results = {}
    for model, extra in (("siren", {}), ("resfields", {"rank": 8})):
        signal = VideoSignal.from_array(frames, options=VideoOptions(holdout=0.25))
        run = inrkit.fit(signal, model=model, steps=150, width=16, depth=4, lr=2e-3, batch_size=2048, eval_every=0,
                         device="cpu", quiet=True, **extra)
        results[model] = run.metrics
    assert results["resfields"]["psnr_heldout"] > results["siren"]["psnr_heldout"] + 2.0, results
    assert results["resfields"]["psnr_train"] > results["resfields"]["psnr_heldout"]


def test_fit_write_render_and_reopen(tmp_path):
    folder = frames_folder(tmp_path / "frames", as_uint8(moving_pattern(4, 8, 10)))
    run = inrkit.fit(folder, model="resfields", out=tmp_path / "run", steps=3, width=8, rank=2, device="cpu", quiet=True,
                     save_frames=True)
    assert {"psnr", "psnr_train", "psnr_heldout"} <= set(run.metrics)
    assert sorted(p.name for p in (tmp_path / "run" / "frames").iterdir()) == [f"frame_{i:05d}.png" for i in range(4)]
    assert read_video(tmp_path / "run" / "reconstruction.mp4")[0].shape == (4, 8, 10, 3)
    config = read_json(tmp_path / "run" / "config.json")
    assert config["field"]["network"]["n_frames"] == 4 and config["train"]["batch_size"] is None  # 8,192 > 320 pixels
    loaded = inrkit.load_run(tmp_path / "run")
    torch.testing.assert_close(loaded.field(torch.zeros(2, 3)), run.field.cpu()(torch.zeros(2, 3)))
    reopened = signal_from_config(config["signal"])
    assert isinstance(reopened, VideoSignal) and reopened.n_frames == 4
    # frame interpolation (50 fps from 25) and a larger size, as an MP4 and as PNG frames
    mp4 = inrkit.render_video(tmp_path / "run", tmp_path / "up.mp4", fps=50, height=16, width=20)
    assert read_video(mp4)[0].shape == (8, 16, 20, 3)
    pngs = inrkit.render_video(tmp_path / "run", tmp_path / "up_frames", fps=12.5)
    assert len(list(pngs.iterdir())) == 2
    assert main(["render", str(tmp_path / "run"), "--fps", "50", "--size", "20x16", "--out", str(tmp_path / "cli.mp4")]) == 0
    assert main(["render", str(tmp_path / "run"), "--rate", "8000"]) == 2


def test_defaults_follow_the_model_and_protocol():
    signal = VideoSignal.from_array(as_uint8(moving_pattern(4, 10, 10)))  # 360 training pixels
    assert signal.default_options("resfields", "device") == {"batch_size": DEVICE_VIDEO_BATCH, "width": 128}
    assert signal.default_options("resfields", "paper") == {"batch_size": 200_000, "lr": 5e-5, "schedule": "cosine"}
    assert signal.default_options("siren", "paper") == {"width": 1024, "lr": 1e-4, "schedule": "constant",
                                                        "batch_size": 1}  # 0.38 % of the pixels
    assert signal.default_options("hashgrid", "device") == {"batch_size": DEVICE_VIDEO_BATCH}
    run = inrkit.fit(signal, model="resfields", steps=1, rank=2, quiet=True, device="cpu", protocol="device")
    assert run.field.config["network"]["n_neurons"] == 128


def test_rendering_in_whole_frames_or_row_chunks_agrees():
    field = inrkit.fields.build_field("resfields", 3, 3, n_frames=7, width=16, rank=2).eval()
    whole = np.stack(list(video.render_frames(field, 7, 5, 9)))  # all 7 frames in one call
    rows = np.stack(list(video.render_frames(field, 7, 5, 9, max_points=9)))  # one row per call
    assert whole.shape == (7, 5, 9, 3)
    np.testing.assert_allclose(whole, rows, atol=1e-6)


def test_outputs_reuse_the_final_evaluation(tmp_path, monkeypatch):
    """One rendering pass per fit (the final evaluation's); the PNG folder only on request."""
    calls = []
    original = video.render_frames

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(video, "render_frames", counting)
    frames = as_uint8(moving_pattern(4, 8, 10))
    inrkit.fit(VideoSignal.from_array(frames), model="resfields", out=tmp_path / "run", steps=2, width=8, rank=2,
               eval_every=0, device="cpu", quiet=True)
    assert len(calls) == 1 and not (tmp_path / "run" / "frames").exists()
    assert read_video(tmp_path / "run" / "reconstruction.mp4")[0].shape == (4, 8, 10, 3)
    calls.clear()
    signal = VideoSignal.from_array(frames, options=VideoOptions(save_frames=True))
    run = inrkit.fit(signal, model="resfields", out=tmp_path / "run2", steps=2, width=8, rank=2, eval_every=0,
                     device="cpu", quiet=True)
    assert len(calls) == 1
    # the PNG frames (lossless) are exactly what the field renders
    expected = np.stack([video.to_file_units(f, "uint8") for f in original(run.field, 4, 8, 10)])
    np.testing.assert_array_equal(read_video(tmp_path / "run2" / "frames")[0], expected)


def test_outputs_are_rendered_anew_when_the_field_changed(tmp_path):
    signal = VideoSignal.from_array(as_uint8(moving_pattern(3, 8, 8)), options=VideoOptions(save_frames=True))
    field = inrkit.fit(signal, model="siren", out=tmp_path / "run", steps=1, width=8, device="cpu", quiet=True).field
    signal.evaluate(field)
    with torch.no_grad():
        field.network.output.bias.add_(0.2)  # the cached frames are now stale
    signal.write_outputs(field, tmp_path / "out")
    expected = np.stack([video.to_file_units(f, "uint8") for f in video.render_frames(field, 3, 8, 8)])
    saved = read_video(tmp_path / "out" / "frames")[0]
    np.testing.assert_array_equal(saved, expected)


def test_info_describes_a_video_run(tmp_path, capsys):
    signal = VideoSignal.from_array(as_uint8(moving_pattern(3, 8, 8)), fps=30)
    inrkit.fit(signal, model="siren", out=tmp_path / "run", steps=1, width=8, device="cpu", quiet=True)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "8x8 x 3 frames @ 30 fps" in capsys.readouterr().out


def _mp4_bytes(tmp_path: Path) -> bytes:
    return write_mp4(tmp_path / "good.mp4", as_uint8(moving_pattern(6, 16, 16)), fps=10).read_bytes()


def _folder(tmp_path: Path, sizes: list[tuple[int, int]]) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, (height, width) in enumerate(sizes):
        write_image(folder / f"{index:03d}.png", np.zeros((height, width, 3), np.uint8))
    return folder


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BAD_VIDEOS = {
    "corrupt-mp4": (lambda d: _file(d, "bad.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8), "cannot read"),
    "truncated-mp4": (lambda d: _file(d, "cut.mp4", _mp4_bytes(d)[:-600]), "cannot read"),
    "single-frame": (lambda d: _folder(d, [(8, 8)]), "1 frame"),
    "different-sizes": (lambda d: _folder(d, [(8, 8), (8, 8), (8, 10)]), "all frames must match"),
    "empty-folder": (lambda d: _folder(d, []), "no frames"),
}


@pytest.mark.parametrize("case", list(BAD_VIDEOS))
def test_bad_video_is_refused_with_one_line(tmp_path, capsys, case):
    make, message = BAD_VIDEOS[case]
    path = make(tmp_path)
    with pytest.raises(InrkitError, match=message):
        open_signal(path)
    assert main(["fit", str(path), "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrkit: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_bad_video_options(tmp_path):
    frames = as_uint8(moving_pattern(4, 8, 8))
    with pytest.raises(InrkitError, match="holdout"):
        VideoSignal.from_array(frames, options=VideoOptions(holdout=1.5))
    with pytest.raises(InrkitError, match="frames-per-batch"):
        VideoSignal.from_array(frames, options=VideoOptions(frames_per_batch=-1))
    png = write_image(tmp_path / "still.png", frames[0])
    with pytest.raises(InrkitError, match="option holdout does not apply"):
        open_signal(png, {"holdout": 0.5})
