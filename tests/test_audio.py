"""Audio signal: WAV round-trips in every sample format, chirp fitting, rendering at other rates, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

import inrkit
from inrkit.backends.grid_reference import grid_geometry
from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.files import read_json
from inrkit.io.audio import WAV_SUBTYPES, check_riff, write_wav
from inrkit.signals import AudioSignal, audio, open_signal, signal_from_config
from inrkit.signals.audio import (
    DEFAULT_AUDIO_BATCH,
    MAX_GRID_LOG2_TABLE,
    SIREN_TIME_SCALE,
    denormalise,
    grid_geometry_for,
    snr,
)

# Stored values are float32 in [0, 1] (24 significant bits, i.e. 2^-23 of the [-1, 1] range): 8 and 16-bit
# files round-trip exactly, 24-bit ones within one step (256 in int32 units), 32-bit ones within 2^9 steps.
EXACT_INT = {"PCM_U8": ("int16", 0), "PCM_16": ("int16", 0), "PCM_24": ("int32", 256), "PCM_32": ("int32", 512)}


def chirp(rate: int = 4000, seconds: float = 0.5, channels: int = 1) -> np.ndarray:
    """A linear chirp 100 -> 300 Hz (``(n, channels)``, peak 0.8), channels phase-shifted."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (100 * t + 200 * t**2 / seconds)
    return np.stack([0.8 * np.sin(phase + c) for c in range(channels)], axis=1)


@pytest.mark.parametrize("subtype", list(WAV_SUBTYPES))
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_round_trip(tmp_path, subtype, channels):
    rng = np.random.default_rng(0)
    source = write_wav(tmp_path / "in.wav", rng.uniform(-0.9, 0.9, (300, channels)), 22050, subtype)
    signal = AudioSignal.from_file(source)
    assert (signal.n_samples, signal.n_output_dims, signal.sample_rate) == (300, channels, 22050)
    assert float(signal.values.min()) >= 0.0 and float(signal.values.max()) <= 1.0
    assert float(signal.values.max()) == 1.0 or float(signal.values.min()) == 0.0  # scaled by the peak
    out = write_wav(tmp_path / "out.wav", denormalise(signal.values.numpy(), signal.peak), 22050, signal.subtype)
    info = soundfile.info(str(out))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (subtype, 22050, channels, 300)
    if subtype in EXACT_INT:
        dtype, tolerance = EXACT_INT[subtype]
        original, _ = soundfile.read(str(source), dtype=dtype, always_2d=True)
        again, _ = soundfile.read(str(out), dtype=dtype, always_2d=True)
        assert np.abs(original.astype(np.int64) - again).max() <= tolerance
    else:
        original, _ = soundfile.read(str(source), dtype="float64", always_2d=True)
        again, _ = soundfile.read(str(out), dtype="float64", always_2d=True)
        np.testing.assert_allclose(again, original, atol=1e-6)


def test_time_coordinates_are_sample_centres():
    signal = AudioSignal.from_array(np.linspace(-1, 1, 8), sample_rate=8)
    batch = signal.sample(None)
    expected = (2 * torch.arange(8) + 1) / 8 - 1
    torch.testing.assert_close(batch.coords[:, 0], expected)
    assert signal.sample(5, torch.Generator().manual_seed(0)).coords.shape == (5, 1)


def test_snr():
    target = np.sin(np.linspace(0, 10, 100))
    assert snr(target, target) == np.inf
    assert snr(target + 0.1 * target, target) == pytest.approx(20.0)


def test_fit_chirp_defaults_and_render(tmp_path):
    path = write_wav(tmp_path / "chirp.wav", chirp(), 4000, "PCM_16")
    run = inrkit.fit(path, model="siren", out=tmp_path / "run", steps=80, width=64, depth=3, eval_every=0,
                     device="cpu", quiet=True, lr=1e-3)
    # the audio default (SIREN's ω0 = 30 on t ∈ [-100, 100]) and the batch default are recorded in config.json
    config = read_json(tmp_path / "run" / "config.json")
    assert config["field"]["network"]["first_omega_0"] == 30.0
    assert config["field"]["encoding"] == {"otype": "Identity", "scale": SIREN_TIME_SCALE}
    assert (config["model"]["omega0"], config["model"]["coordinate_scale"]) == (None, SIREN_TIME_SCALE)
    assert config["train"]["batch_size"] is None  # the suggested 8,192 holds all 2,000 samples: a full batch
    assert run.metrics["psnr"] > 30.0, run.metrics
    assert run.metrics["snr"] > 20.0, run.metrics
    info = soundfile.info(str(tmp_path / "run" / "reconstruction.wav"))
    assert (info.samplerate, info.frames, info.subtype) == (4000, 2000, "PCM_16")
    # the metrics agree with numpy on the files: SNR is scale-free, PSNR is on [0, 1] = 2·peak of the file scale
    written, _ = soundfile.read(str(tmp_path / "run" / "reconstruction.wav"), dtype="float64")
    source, _ = soundfile.read(str(path), dtype="float64")
    mse = np.mean((written - source) ** 2)
    assert 10 * np.log10(np.sum(source**2) / np.sum((written - source) ** 2)) == pytest.approx(run.metrics["snr"], abs=0.02)
    assert 10 * np.log10((2 * np.abs(source).max()) ** 2 / mse) == pytest.approx(run.metrics["psnr"], abs=0.02)
    up = inrkit.render_audio(tmp_path / "run", tmp_path / "up.wav", rate=11025)
    assert soundfile.info(str(up)).frames == round(2000 * 11025 / 4000)
    reopened = signal_from_config(config["signal"])
    assert isinstance(reopened, AudioSignal) and reopened.n_samples == 2000


def test_defaults_follow_the_preset_and_protocol():
    signal = AudioSignal.from_array(chirp(), 4000)
    sine = {"damping": "arctan"}
    assert signal.default_options("spder", "paper") == {**sine, "lr": 1e-4, "schedule": "constant"}  # SIREN's protocol
    assert signal.default_options("spder", "device") == {**sine, "batch_size": DEFAULT_AUDIO_BATCH}
    assert signal.default_options("relu-pe", "paper") == {}
    assert signal.default_options("relu-pe", "device") == {"batch_size": DEFAULT_AUDIO_BATCH}
    assert signal.default_options("hashgrid", "paper") == grid_geometry_for(2000)  # the preset's batch
    assert signal.default_options("hashgrid", "device") == {**grid_geometry_for(2000), "batch_size": DEFAULT_AUDIO_BATCH}
    field = inrkit.fit(signal, model="finer", steps=1, width=8, depth=2, quiet=True, device="cpu", omega0=500.0).field
    assert field.config["network"]["first_omega_0"] == 500.0  # the user's value wins


@pytest.mark.parametrize(("model", "encoding", "omega0"), [
    ("siren", {"otype": "Identity", "scale": 100.0}, 30.0),  # SIREN's train_audio.py: ω0 30 on t ∈ [-100, 100]
    ("spder", {"otype": "Identity", "scale": 100.0}, 30.0),  # SPDER's audio script: the same
    ("finer", {"otype": "Identity"}, 3000.0),  # (|z|+1)z is not scale-equivariant: FINER takes ω0·100 on [-1, 1]
    ("relu-pe", None, None),  # an encoding of [-1, 1]: nothing to scale
    ("hashgrid-siren", None, 30.0),  # a sine head on grid features, not on raw time
])
def test_the_api_maps_the_signals_coordinate_scale_to_the_presets(model, encoding, omega0):
    """The signal only states SIREN's time scale; which preset takes it how is the API's business."""
    assert AudioSignal.sine_coordinate_scale == SIREN_TIME_SCALE
    assert inrkit.signals.ImageSignal.sine_coordinate_scale == 1.0
    signal = AudioSignal.from_array(chirp(), 4000)
    config = inrkit.fit(signal, model=model, steps=1, width=8, depth=2, quiet=True, device="cpu").field.config
    if encoding is not None:
        assert config["encoding"] == encoding
    else:
        assert "scale" not in config["encoding"]
    assert config["network"].get("first_omega_0") == omega0
    explicit = inrkit.fit(signal, model="siren", steps=1, width=8, depth=2, quiet=True, device="cpu", coordinate_scale=1.0,
                          omega0=3000.0).field.config
    assert (explicit["encoding"]["scale"], explicit["network"]["first_omega_0"]) == (1.0, 3000.0)  # the former default
    with pytest.raises(InrkitError, match="coordinate-scale"):
        inrkit.fit(signal, model="hashgrid", steps=1, quiet=True, device="cpu", coordinate_scale=100.0)


def test_scaled_time_is_the_former_omega_3000_with_a_100x_smaller_first_bias():
    """sin(30·(W·100t + b)) = sin(3000·(W·t + b/100)): only the first-layer bias's parametrisation differs."""
    from inrkit.fields import build_field

    torch.manual_seed(0)
    scaled = build_field("siren", 1, 1, width=16, depth=2, coordinate_scale=100.0)
    former = build_field("siren", 1, 1, width=16, depth=2, omega0=3000.0)
    state = scaled.state_dict()
    first_bias = "network.hidden.0.linear.bias"  # the first sine layer's
    former.load_state_dict({**state, first_bias: state[first_bias] / 100.0})
    t = torch.linspace(-1, 1, 501)[:, None]
    with torch.no_grad():
        torch.testing.assert_close(scaled(t), former(t), rtol=1e-4, atol=1e-4)


def test_audio_runs_written_before_the_coordinate_scale_load_and_render_identically(tmp_path):
    """A config.json from before (ω0 3000, no scale key in the encoding or the model options) means scale 1."""
    path = write_wav(tmp_path / "chirp.wav", chirp(), 4000, "PCM_16")
    run = inrkit.fit(path, model="siren", out=tmp_path / "run", steps=20, width=16, depth=2, eval_every=0, device="cpu",
                     quiet=True, omega0=3000.0, coordinate_scale=1.0)
    config = read_json(tmp_path / "run" / "config.json")
    del config["field"]["encoding"]["scale"], config["model"]["coordinate_scale"]
    assert config["field"]["encoding"] == {"otype": "Identity"} and config["field"]["network"]["first_omega_0"] == 3000.0
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    loaded = inrkit.load(tmp_path / "run")
    t = torch.linspace(-1, 1, 777)[:, None]
    with torch.no_grad():
        assert torch.equal(loaded(t), run.field(t))
    rendered = inrkit.render_audio(tmp_path / "run", tmp_path / "again.wav")
    again, _ = soundfile.read(str(rendered), dtype="int16")
    written, _ = soundfile.read(str(tmp_path / "run" / "reconstruction.wav"), dtype="int16")
    np.testing.assert_array_equal(again, written)


def test_outputs_reuse_the_final_evaluation(tmp_path, monkeypatch):
    calls = []
    original = audio.render
    monkeypatch.setattr(audio, "render", lambda *args, **kwargs: calls.append(args[1]) or original(*args, **kwargs))
    signal = AudioSignal.from_array(chirp(), 4000)
    field = inrkit.fit(signal, model="siren", out=tmp_path / "run", steps=2, width=8, depth=2, eval_every=0,
                       device="cpu", quiet=True).field
    assert calls == [2000]  # the final evaluation's rendering is the one written
    written, _ = soundfile.read(str(tmp_path / "run" / "reconstruction.wav"), dtype="float32", always_2d=True)
    np.testing.assert_allclose(written, denormalise(original(field, 2000), signal.peak), atol=1e-6)
    signal.evaluate(field)
    with torch.no_grad():
        field.network.output.bias.add_(0.1)  # the cached rendering is now stale
    signal.write_outputs(field, tmp_path / "again")
    again, _ = soundfile.read(str(tmp_path / "again" / "reconstruction.wav"), dtype="float32", always_2d=True)
    np.testing.assert_allclose(again, denormalise(original(field, 2000), signal.peak), atol=1e-6)


@pytest.mark.parametrize("n_samples", [2000, 308_207, 44_100 * 60])
def test_grid_geometry_resolves_every_sample(n_samples):
    options = grid_geometry_for(n_samples)
    geometry = grid_geometry(1, options["n_levels"], 2, options["log2_hashmap_size"], options["base_resolution"],
                             options["per_level_scale"])
    assert abs(geometry.scales[-1] - n_samples) <= 1  # one cell per sample at the finest level
    assert geometry.hashed[-1] == (n_samples >= 2**MAX_GRID_LOG2_TABLE)  # dense unless the table is capped


def test_cli_fit_and_render_wav(tmp_path, capsys):
    path = write_wav(tmp_path / "song.wav", chirp(channels=2), 4000, "FLOAT")
    run_dir = tmp_path / "run"
    assert main(["fit", str(path), "--model", "siren", "--out", str(run_dir), "--steps", "5", "--width", "16",
                 "--device", "cpu", "--quiet"]) == 0
    assert "SNR" in capsys.readouterr().out
    assert main(["render", str(run_dir), "--rate", "8000", "--out", str(tmp_path / "x.wav")]) == 0
    assert soundfile.info(str(tmp_path / "x.wav")).channels == 2
    assert main(["render", str(run_dir), "--fps", "30"]) == 2
    assert "--fps applies to video" in capsys.readouterr().err
    assert main(["info", str(run_dir)]) == 0
    assert "2000 samples @ 4000 Hz" in capsys.readouterr().out


def _wav_bytes(subtype: str, n: int = 100) -> bytes:
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, chirp()[:n], 4000, subtype=subtype, format="WAV")
    return buffer.getvalue()


BAD_WAVS = {
    "truncated": (lambda: _wav_bytes("PCM_16")[:120], "truncated"),
    "zero-length": (lambda: _wav_bytes("PCM_16", n=0), "empty"),
    "single-sample": (lambda: _wav_bytes("PCM_16", n=1), "at least 2"),
    "u-law": (lambda: _wav_bytes("ULAW"), "unsupported audio encoding"),
    "not-riff": (lambda: b"ID3\x03" + bytes(100), "not a WAV file"),
    "garbage-fmt": (lambda: _wav_bytes("PCM_16")[:20] + b"\x34\x12" + _wav_bytes("PCM_16")[22:], "corrupt or unsupported"),
    "no-data": (lambda: _wav_bytes("PCM_16")[:36], "no data chunk"),
}


@pytest.mark.parametrize("case", list(BAD_WAVS))
def test_bad_wav_is_refused_with_one_line(tmp_path, capsys, case):
    make, message = BAD_WAVS[case]
    path = tmp_path / "bad.wav"
    path.write_bytes(make())
    with pytest.raises(InrkitError, match=message):
        open_signal(path)
    assert main(["fit", str(path), "--out", str(tmp_path / "run"), "--steps", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("inrkit: error:") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_nan_float_wav_is_refused(tmp_path):
    samples = chirp()
    samples[5] = np.nan
    path = write_wav(tmp_path / "nan.wav", samples, 4000, "FLOAT")
    with pytest.raises(InrkitError, match="NaN"):
        open_signal(path)


def test_check_riff_accepts_a_complete_file(tmp_path):
    path = write_wav(tmp_path / "ok.wav", chirp(), 4000, "PCM_24")
    check_riff(path)
