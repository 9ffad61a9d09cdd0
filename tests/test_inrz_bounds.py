"""Bounded decoding of ``.inrz`` files (issue 15, items 3-5): only regular files, reading stops at the declared
length, range streams carry enough bits for their codes and are consumed exactly, nesting is capped, and every
file that decodes gives a field that evaluates and whose metadata ``info``/``render`` can use."""

from __future__ import annotations

import copy
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.errors import InrkitError
from inrkit.export import compress, entropy, inrz, load
from inrkit.fields import build_field


@pytest.fixture(scope="module")
def siren(tmp_path_factory) -> bytes:
    """A small SIREN, range-coded."""
    folder = tmp_path_factory.mktemp("inrz-bounds")
    torch.manual_seed(0)
    compress(build_field("siren", 2, 3, width=16, depth=2), folder / "siren.inrz", coder="range")
    return (folder / "siren.inrz").read_bytes()


def forge(data: bytes, edit_header=None, payload: bytes | None = None) -> bytes:
    """Re-pack after editing the header or payload, checksums recomputed (only deeper checks can object)."""
    header, original = inrz.unpack(data)
    header = copy.deepcopy(header)
    if edit_header is not None:
        edit_header(header)
    return inrz.pack(header, original if payload is None else payload)


def load_bytes(data: bytes, path: Path):
    path.write_bytes(data)
    return load(path)


def refuse(path: Path, match: str) -> str:
    with pytest.raises(InrkitError, match=match) as caught:
        load(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def refuse_cheaply(path: Path, match: str, seconds: float | None = None) -> None:
    """:func:`refuse`, with under 64 MB of Python allocations at peak (and under ``seconds`` when given)."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        refuse(path, match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak
    if seconds is not None:
        assert time.perf_counter() - started < seconds


# -- what is read ----------------------------------------------------------------------------------
def test_valid_file_followed_by_gigabytes_is_refused_without_reading_them(siren, tmp_path):
    path = tmp_path / "padded.inrz"
    with open(path, "wb") as handle:
        handle.write(siren)
        handle.truncate(len(siren) + (2 << 30))  # 2 GiB of zeros, sparse: costs no disk
    refuse_cheaply(path, "unexpected bytes after the payload", seconds=2.0)


def test_symlink_to_dev_zero_is_refused(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    path = tmp_path / "zero.inrz"
    path.symlink_to("/dev/zero")
    refuse(path, "not a regular file")


def test_fifo_is_refused_without_waiting(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    path = tmp_path / "pipe.inrz"
    os.mkfifo(path)
    refuse(path, "not a regular file")


def test_directory_is_refused(tmp_path):
    path = tmp_path / "folder.inrz"
    path.mkdir()
    refuse(path, "is a directory")


def test_symlink_to_a_regular_file_is_read(siren, tmp_path):
    (tmp_path / "real.inrz").write_bytes(siren)
    (tmp_path / "link.inrz").symlink_to(tmp_path / "real.inrz")
    assert load(tmp_path / "link.inrz").field is not None


# -- range streams: enough bits for their codes, consumed exactly ---------------------------------------
def _restream(header: dict, params: dict, bits: int, stream: bytes, width: int | None = None) -> bytes:
    """Every tensor of ``header`` quantised with ``params``/``bits`` and coded as ``stream``; returns the payload."""
    if width is not None:
        header["field"]["network"]["n_neurons"] = width
    payload = b""
    for entry in header["tensors"]:
        if width is not None:
            entry["shape"] = [width if s == 16 else s for s in entry["shape"]]
        entry.update({"storage": "quantized", "bits": bits, "scheme": "tensor", "coder": "range", "params": params,
                      "step": 0.01, "length": len(stream)})
        payload += stream
    return payload


@pytest.mark.parametrize("params, bits", [
    ({"model": "recent", "min": -32767, "alphabet": 65535}, 16),   # the bomb: a large alphabet, few bytes
    ({"model": "adaptive", "min": -127, "alphabet": 255}, 8),
    ({"model": "adaptive", "min": 0, "alphabet": 2}, 8),           # perfectly skewed: the 1-bit-per-32-codes rule
    ({"model": "laplace", "mean": 0.0, "scale": 0.001}, 2),        # a parametric model: ~2e-7 bits per code at best
    ({"model": "uniform", "min": -1, "alphabet": 3}, 2),
])
def test_decode_bomb_is_refused_before_decoding(siren, tmp_path, params, bits):
    """A header claiming a 4-million-value layer coded in 4 bytes per tensor: refused at once, in one line."""
    header, _ = inrz.unpack(siren)
    payload = _restream(header, params, bits, b"\0\0\0\0", width=2048)
    path = tmp_path / "bomb.inrz"
    path.write_bytes(inrz.pack(header, payload))
    started = time.perf_counter()
    refuse(path, "too short for")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("stream", [b"", b"\0\0\0\0"])
def test_truncated_range_stream_is_refused(siren, tmp_path, stream):
    """A tensor's stream replaced by nothing or by 4 zero bytes must not decode to constants (-127 ...)."""
    header, payload = inrz.unpack(siren)
    offset = 0
    for entry in header["tensors"]:
        if entry["name"] == "network.hidden.1.linear.bias":
            break
        offset += entry["length"]
    entry["params"] = {"model": "adaptive", "min": -127, "alphabet": 255}
    payload = payload[:offset] + stream + payload[offset + entry["length"]:]
    entry["length"] = len(stream)
    path = tmp_path / "cut.inrz"
    path.write_bytes(inrz.pack(header, payload))
    refuse(path, "too short for|not the coding")


def test_stream_that_decodes_but_is_not_the_encoders_is_refused():
    """A stream of the right length whose last word was changed: decodes to codes, but is not their coding."""
    q = np.random.default_rng(0).integers(-20, 21, 5000).astype(np.int32)
    data, params = entropy.encode(q, bits=8, coder="range")
    forged = data[:-4] + bytes([data[-4] ^ 0x80]) + data[-3:]
    with pytest.raises(InrkitError, match=r"not the coding|more data|corrupt|outside"):
        entropy.decode(forged, q.size, 8, "range", params)


@pytest.mark.parametrize("density", [0.0, 1e-4, 1e-3])
def test_encoder_writes_only_streams_the_decoder_accepts(density):
    """A nearly constant tensor (a barely trained hash table at 2 bits): the range coder falls back to a model
    whose stream keeps >= 1 bit per 32 codes, and the file decodes."""
    rng = np.random.default_rng(1)
    q = np.where(rng.random(200_000) < density, rng.integers(-1, 2, 200_000), 0).astype(np.int32)
    for coder in ("range", "auto"):
        data, params, used = entropy.encode_best(q, 2, coder)
        assert 8 * len(data) >= entropy.min_stream_bits(q.size, 2, used, params if used == "range" else {})
        assert (entropy.decode(data, q.size, 2, used, params) == q).all()


@pytest.mark.parametrize("coder, ratio", [("zlib", entropy.DEFLATE_BYTES_PER_BIT), ("lzma", entropy.LZMA_BYTES_PER_BIT)])
def test_dictionary_coders_are_bounded_by_their_best_ratio(coder, ratio):
    """zlib and lzma of a million zero codes stay above the documented bound; a stream below it is refused."""
    q = np.zeros(1 << 20, dtype=np.int32)
    data, params = entropy.encode(q, 8, coder)
    assert 8 * len(data) >= q.size / ratio
    with pytest.raises(InrkitError, match="too short for"):
        entropy.decode(data, 64 * q.size, 8, coder, params)


# -- fields that decode must evaluate; configs are checked against their schema ------------------------
def _composite(count: int, depth: int = 1) -> dict:
    inner = {"otype": "Identity", "n_dims_to_encode": 1, "dims_to_encode_begin": 0}
    for _ in range(depth - 1):
        inner = {"otype": "Composite", "n_dims_to_encode": 1, "dims_to_encode_begin": 0, "nested": [inner]}
    return {"otype": "Composite", "nested": [inner] * count}


@pytest.mark.parametrize("edit, match", [
    (lambda f: f["network"].update(n_hidden_layers=0), "n_hidden_layers"),
    (lambda f: f["network"].update(otype="Spder", damping="cubic"), "damping"),
    (lambda f: f["network"].update(first_omega_0="30"), "first_omega_0"),
    (lambda f: f["network"].update(omega_on_bias=2), "omega_on_bias"),
    (lambda f: f.update(output={"range": [1.0, 1.0], "activation": "None"}), "range"),
    (lambda f: f.update(output={"range": [0.0, 1.0], "activation": "Tanh"}), "activation"),
    (lambda f: f.update(n_output_dims=0), "n_output_dims"),
    (lambda f: f.update(encoding={"otype": "Identity", "scale": "big"}), "scale"),
    (lambda f: f.update(encoding={"otype": "Frequency", "n_frequencies": 200}), "n_frequencies"),
    (lambda f: f.update(encoding={"otype": "HashGrid", "n_levels": 16, "per_level_scale": 1e9}), "per_level_scale"),
    (lambda f: f.update(encoding=_composite(65536)), "above the limit"),
    (lambda f: f.update(encoding=_composite(1, depth=6)), "nested more than"),
])
def test_configs_that_would_fail_when_used_are_refused_when_built(edit, match):
    """Each of these built a Field (from a file or flags) that crashed at its first forward pass, or could not be
    rendered; now the build refuses them in one line naming the key."""
    from inrkit.errors import ConfigError
    from inrkit.fields import Field

    config = copy.deepcopy(build_field("siren", 2, 3, width=8, depth=2).config)
    edit(config)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as caught:
        Field(config)
    assert "\n" not in str(caught.value)
    assert time.perf_counter() - started < 1.0


def test_fit_refuses_a_per_level_scale_that_overflows(tmp_path, capsys):
    from PIL import Image

    from inrkit.cli import main

    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    code = main(["fit", str(tmp_path / "img.png"), "--model", "hashgrid", "--per-level-scale", "1e9", "--steps", "1",
                 "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "per-level-scale" in err, err


@pytest.mark.parametrize("signal, match", [
    ({"kind": "audio", "n_samples": "4000", "sample_rate": 8000, "channels": 1}, "n_samples"),
    ({"kind": "audio", "n_samples": 4000, "sample_rate": 0, "channels": 1}, "sample_rate"),
    ({"kind": "video", "n_frames": 4, "height": 8, "width": 8, "channels": 3, "fps": "fast"}, "fps"),
    ({"kind": "sdf", "transform": {"centre": [0, 0], "scale": 1.0}}, "transform"),
])
def test_signal_metadata_that_info_cannot_use_is_refused(siren, tmp_path, signal, match):
    path = tmp_path / "meta.inrz"
    path.write_bytes(forge(siren, lambda h: h.update(signal=signal)))
    refuse(path, match)


def test_payload_length_claiming_gigabytes_allocates_nothing(siren, tmp_path):
    """A prefix claiming a 4 GB payload in a small file: refused from the file's size, no 1 GB read buffer."""
    data = bytearray(siren)
    header_length = int.from_bytes(data[10:14], "little")
    data[18 + header_length : 22 + header_length] = (0xFFFFFFF0).to_bytes(4, "little")
    path = tmp_path / "claims.inrz"
    path.write_bytes(bytes(data))
    refuse_cheaply(path, "truncated")


@pytest.mark.parametrize("kind", ["float16-inf", "step-overflow"])
def test_weights_that_decode_to_infinities_are_refused(siren, tmp_path, kind):
    """Half floats holding inf/NaN, or a step whose product with the codes overflows float32: refused, not rendered
    as NaN pixels."""
    header, payload = inrz.unpack(siren)
    entry = header["tensors"][0]
    if kind == "float16-inf":
        count = int(np.prod(entry["shape"]))
        stream = np.full(count, np.inf, dtype="<f2").tobytes()
        payload = stream + payload[entry["length"]:]
        for key in ("bits", "scheme", "coder", "params", "step"):
            entry.pop(key, None)
        entry.update(storage="float16", length=len(stream))
    else:
        assert "step" in entry
        entry["step"] = 3e38
    path = tmp_path / "inf.inrz"
    path.write_bytes(inrz.pack(header, payload))
    refuse(path, "infinite or NaN")


def test_long_constant_tensor_in_no_bytes_is_refused(siren, tmp_path):
    """The trivial alphabet is free only for small tensors: 120 bytes claiming a 64-million-weight SIREN of
    constants took 3 s and 1.4 GB to decode."""
    header, _ = inrz.unpack(siren)
    payload = _restream(header, {"model": "adaptive", "min": 0, "alphabet": 1}, 8, b"", width=8000)
    path = tmp_path / "constant.inrz"
    path.write_bytes(inrz.pack(header, payload))
    started = time.perf_counter()
    refuse(path, "too short for")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("size", [100, 5000, 100_000])
def test_constant_tensors_round_trip(size):
    q = np.full(size, 3, dtype=np.int32)
    for coder in ("range", "auto"):
        data, params, used = entropy.encode_best(q, 8, coder)
        assert (entropy.decode(data, size, 8, used, params) == q).all()


def test_decoder_lets_interrupts_through(monkeypatch):
    """Only constriction's own errors become 'corrupt stream': an interrupt (here a time limit's exception, a
    BaseException) raised while decoding propagates instead of being reported as a bad file."""
    class Interrupt(BaseException):
        pass

    q = np.arange(-50, 50, dtype=np.int32)
    data, params = entropy.encode(q, 8, "range")

    def interrupted(*args, **kwargs):
        raise Interrupt()

    monkeypatch.setattr(entropy, "_range_decode", interrupted)
    with pytest.raises(Interrupt):
        entropy.decode(data, q.size, 8, "range", params)


def test_nerf_march_and_grid_sections_are_checked():
    from inrkit.errors import ConfigError
    from inrkit.fields.nerf_model import NerfModel

    config = {"scene": {"scale": 0.33, "offset": [0.5, 0.5, 0.5], "aabb_scale": 1}, "march": {"steps_per_unit": 1 << 20},
              "field": {}}
    with pytest.raises(ConfigError, match="steps_per_unit"):
        NerfModel(config)
    config["march"] = {}
    config["grid"] = {"resolution": 4096}
    with pytest.raises(ConfigError, match="resolution"):
        NerfModel(config)


def test_parameters_of_a_coder_that_takes_none_are_refused(tmp_path):
    """``inrkit info`` printed a zlib tensor's forged ``params.model`` (a dict) and crashed: only the range coder has
    parameters."""
    compress(build_field("siren", 2, 3, width=8, depth=2), tmp_path / "z.inrz", coder="zlib")
    path = tmp_path / "forged.inrz"
    path.write_bytes(forge((tmp_path / "z.inrz").read_bytes(),
                           lambda h: h["tensors"][0].update(params={"model": {"nested": 1}})))
    refuse(path, "takes no parameters")


# -- the latent codec's section (format version 4) -------------------------------------------------------
@pytest.fixture(scope="module")
def latent_file() -> bytes:
    """An untrained latent field of a 12×16 image, coded (version 4)."""
    from inrkit.api.latent_compress import latent_config
    from inrkit.export import latent_codec
    from inrkit.fields import LatentField

    torch.manual_seed(0)
    signal = {"kind": "image", "height": 12, "width": 16, "channels": 3,
              "normalisation": {"dtype": "uint8", "low": 0.0, "high": 255.0, "alpha": False}}
    return latent_codec.encode(LatentField(latent_config(12, 16, 3, "low")), 8, signal, {})


def test_latent_file_claiming_64_megapixels_with_a_short_stream_is_refused_before_allocating(latent_file, tmp_path):
    def grow(header):
        header["field"]["encoding"].update(height=8192, width=8192)
        header["signal"].update(height=8192, width=8192)

    path = tmp_path / "huge.inrz"
    header, payload = inrz.unpack(latent_file)
    grow(header)
    path.write_bytes(inrz.pack(header, payload, version=4))
    refuse_cheaply(path, "latent stream has .* bytes, fewer than", seconds=2.0)


def test_latent_and_weights_headers_must_match_their_format_version(latent_file, siren, tmp_path):
    header, payload = inrz.unpack(latent_file)
    (tmp_path / "v1.inrz").write_bytes(inrz.pack(header, payload, version=1))
    refuse(tmp_path / "v1.inrz", "codec 'latent' does not match format version 1")
    header, payload = inrz.unpack(siren)
    (tmp_path / "v4.inrz").write_bytes(inrz.pack(header, payload, version=4))
    refuse(tmp_path / "v4.inrz", "codec 'weights' does not match format version 4")
    assert load_bytes(siren, tmp_path / "v1-weights.inrz").field is not None  # version-1 files still decode
    assert load_bytes(latent_file, tmp_path / "v4-latent.inrz").image is not None
    (tmp_path / "v5.inrz").write_bytes(latent_file[:8] + b"\x05" + latent_file[9:])
    refuse(tmp_path / "v5.inrz", "format version 5; this inrkit reads versions 1 and 4")


@pytest.mark.parametrize("cut", [0, 5, 17, 18, 40, -30, -5, -1])
def test_truncated_latent_file_is_refused(latent_file, tmp_path, cut):
    (tmp_path / "cut.inrz").write_bytes(latent_file[:cut])
    refuse(tmp_path / "cut.inrz", "truncated|checksum")
