"""The ``.inrz`` container: magic, version, a deflated JSON header and a coded payload, each with a CRC32.

Layout (little-endian)::

    offset  size  content
    0       8     magic  b"\\x89INRZ\\r\\n\\x1a"  (high bit, name, CR-LF, ^Z: catches text-mode mangling)
    8       2     format version (uint16): 1 or 4 (below)
    10      4     H = header length in bytes (uint32)
    14      4     CRC32 of the header bytes
    18      H     header: JSON (UTF-8, compact), raw deflate with the version's preset dictionary (below)
    18+H    4     P = payload length in bytes (uint32)
    22+H    4     CRC32 of the payload bytes
    26+H    P     payload: per tensor, in header order, [float32 steps if per-channel] + coded codes
    26+H+P        end of file (trailing bytes are an error)

Versions (all have this layout):

* 1 — the weights codec (:mod:`inrkit.export.codec`); header dictionary :data:`HEADER_DICTIONARY`.
  Weights files are still written as version 1, so earlier readers keep reading them.
* 4 — the latent image codec (:mod:`inrkit.export.latent_codec`): the header adds ``"codec": "latent"``, a
  ``latent`` section and a compact tensor table, and the payload ends with the latent stream; header dictionary
  :data:`LATENT_HEADER_DICTIONARY`.
* 2 and 3 — the latent codec's development files (before its refinement's ReLU moved after the residual sum:
  :mod:`inrkit.fields.synthesis`). They are refused with one line; their images would decode wrong.

The header holds the field config, the signal's description (for rendering), optional metrics,
for radiance fields the run's ``turntable`` orbit (checked by :func:`check_turntable`), and the
tensor table: for every entry of the field's ``state_dict`` its name, shape, dtype, storage
(``quantized`` | ``float16`` | ``float32`` | ``rebuilt`` | ``bitmask`` | ``int64`` | ``omitted``; see
:mod:`inrkit.export.codec`), byte length, and for quantised tensors bits, scheme, step and the
entropy coder with its parameters.

The deflate stream uses a fixed preset dictionary (:data:`HEADER_DICTIONARY`, JSON fragments every
header repeats: keys, preset configs, the tensor-table vocabulary), so a small field's header costs
about 200 bytes instead of 600: at 0.3 bpp on a 256×256 image that is 0.025 bpp instead of 0.07.
Version 4's dictionary (:data:`LATENT_HEADER_DICTIONARY`) is version 1's followed by the latent codec's
vocabulary. A version's dictionary is part of that format version and never changes within it.

Reading validates every length, count, shape and checksum against fixed limits before allocating
anything large; nothing in a file is ever executed (JSON only, no pickle).
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError

MAGIC = b"\x89INRZ\r\n\x1a"
VERSION = 1  # the weights codec's files; the latent codec writes its own (module docstring)
SUFFIX = ".inrz"
MAX_HEADER_BYTES = 1 << 20         # deflated header
MAX_HEADER_INFLATED = 8 << 20      # inflated JSON
MAX_PAYLOAD_BYTES = (1 << 32) - 1  # uint32 length
_PREFIX = struct.Struct("<8sHII")   # magic, version, header length, header crc

# Format versions 1 and 2's deflate dictionary. NEVER edit it: files written with it must stay readable.
# Deflate looks back at most 32 KiB and prefers recent bytes, so the most common fragments come last.
HEADER_DICTIONARY = (
    b'{"otype":"HashGrid","n_levels":16,"n_features_per_level":2,"log2_hashmap_size":19,"base_resolution":16,'
    b'"per_level_scale":2.0,"interpolation":"Linear"}{"otype":"GaussianFourier","n_features":256,"sigma":10.0,"seed":0}'
    b'{"otype":"PositionalEncoding","n_frequencies":5,"include_input":true,"include_pi":true}'
    b'{"otype":"SL2A","n_neurons":256,"n_hidden_layers":4,"degree":256,"rank":128}'
    b'{"otype":"Wire","n_neurons":256,"n_hidden_layers":4,"first_omega_0":20.0,"hidden_omega_0":20.0,"scale":10.0}'
    b'{"otype":"Gauss","scale":30.0}{"otype":"Finer","first_bias_scale":null}{"otype":"Spder","damping":"sqrt"}'
    b'{"otype":"ReLU","n_neurons":256,"n_hidden_layers":4},"output":{"range":[0.0,1.0],"activation":"Sigmoid"}}'
    b'"storage":"float16","storage":"float32","storage":"rebuilt","crc32":"scheme":"channel","coder":"zlib","coder":"lzma",'
    b'"coder":"raw","dtype":"complex64","params":{"model":"laplace","mean":0.0,"scale":"params":{"model":"gaussian",'
    b'"mean":"params":{"model":"uniform","min":-"encoding.B","network.output.weight","network.output.bias",'
    b'"network.hidden.0.linear.weight","network.hidden.0.linear.bias","network.hidden.1.linear.weight",'
    b'"network.hidden.1.linear.bias","network.hidden.2.linear.weight","network.hidden.2.linear.bias",'
    b'{"inrkit_version":"0.1.0","field":{"n_input_dims":2,"n_output_dims":3,"encoding":{"otype":"Identity"},'
    b'"network":{"otype":"Siren","n_neurons":64,"n_hidden_layers":3,"first_omega_0":30.0,"hidden_omega_0":30.0,'
    b'"omega_on_bias":true},"output":{"range":[-1.0,1.0],"activation":"None"}},"signal":{"kind":"image","height":512,'
    b'"width":768,"channels":3,"normalisation":{"dtype":"uint8","low":0.0,"high":255.0,"alpha":false}},'
    b'"model":{"model":"siren","width":64,"depth":3},"metrics":{"psnr":30.0,"psnr_before":30.0},"tensors":['
    b'{"name":"network.hidden.3.linear.weight","shape":[64,64],"dtype":"float32","storage":"quantized","bits":8,'
    b'"scheme":"tensor","coder":"range","params":{"model":"adaptive","min":-127,"alphabet":255},"step":0.001,"length":'
)
# Format version 4's deflate dictionary (version 3's before it): version 1's, then the latent codec's vocabulary
# (its header keys, the field configs of its three complexity presets at 768×512, the signal of an 8-bit RGB
# image, compact tensor entries). NEVER edit it: files written with it must stay readable. Most common fragments last, as above.
LATENT_HEADER_DICTIONARY = HEADER_DICTIONARY + (
    b'["gaussian",0.0,1.0,0.01,0],["recent",-127,255,0.01,0],["uniform",-1,3,0.01,0],["laplace",0.0,1.0,0.01,0],'
    b'"height":768,"width":512,"channels":1,'
    b'"field":{"n_input_dims":2,"n_output_dims":3,"encoding":{"otype":"LatentGrids","height":512,"width":768,'
    b'"n_levels":7},"network":{"otype":"Synthesis","n_neurons":48,"n_hidden_layers":1,"n_refine":2},'
    b'"arm":{"otype":"ARM","n_context":21,"n_neurons":24,"n_hidden_layers":2}}'
    b'"field":{"n_input_dims":2,"n_output_dims":3,"encoding":{"otype":"LatentGrids","height":512,"width":768,'
    b'"n_levels":7},"network":{"otype":"Synthesis","n_neurons":8,"n_hidden_layers":1,"n_refine":2},'
    b'"arm":{"otype":"ARM","n_context":8,"n_neurons":8,"n_hidden_layers":1}}'
    b'{"inrkit_version":"0.1.0","codec":"latent",'
    b'"field":{"n_input_dims":2,"n_output_dims":3,"encoding":{"otype":"LatentGrids","height":512,"width":768,'
    b'"n_levels":7},"network":{"otype":"Synthesis","n_neurons":16,"n_hidden_layers":1,"n_refine":2},'
    b'"arm":{"otype":"ARM","n_context":12,"n_neurons":12,"n_hidden_layers":2}},'
    b'"signal":{"kind":"image","height":512,"width":768,"channels":3,'
    b'"normalisation":{"dtype":"uint8","low":0.0,"high":255.0,"alpha":false}},'
    b'"metrics":{"encode_seconds":300.0,"lambda":0.001,"steps":1000,"psnr":30.00},"tensors":['
    b'"latent":{"bits":8,"max_abs":1,"length":'
    b'["adaptive",-15,31,0.0'
)
HEADER_DICTIONARIES = {1: HEADER_DICTIONARY, 4: LATENT_HEADER_DICTIONARY}  # by format version
VERSIONS = tuple(HEADER_DICTIONARIES)
RETIRED_VERSIONS = (2, 3)  # the latent codec's development files (module docstring)
_PAYLOAD_PREFIX = struct.Struct("<II")  # payload length, payload crc


def _deflate(data: bytes, version: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=HEADER_DICTIONARIES[version])
    return compressor.compress(data) + compressor.flush()


def _inflate(data: bytes, version: int) -> bytes:
    decompressor = zlib.decompressobj(-15, zdict=HEADER_DICTIONARIES[version])
    try:
        out = decompressor.decompress(data, MAX_HEADER_INFLATED + 1)
    except zlib.error as err:
        raise InrkitError(f"header is corrupt ({err})") from None
    if len(out) > MAX_HEADER_INFLATED or decompressor.unconsumed_tail:
        raise InrkitError(f"header inflates to more than {MAX_HEADER_INFLATED} bytes")
    if not decompressor.eof or decompressor.unused_data:
        raise InrkitError("header is truncated or has trailing bytes")
    return out


def pack(header: dict[str, Any], payload: bytes, version: int = VERSION) -> bytes:
    """The bytes of an ``.inrz`` file (format ``version``) holding ``header`` and ``payload``."""
    header_bytes = _deflate(json.dumps(header, separators=(",", ":"), allow_nan=False).encode(), version)
    if len(header_bytes) > MAX_HEADER_BYTES:
        raise InrkitError(f"header is {len(header_bytes)} bytes, above the {MAX_HEADER_BYTES}-byte limit")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise InrkitError(f"payload is {len(payload)} bytes, above the {MAX_PAYLOAD_BYTES}-byte limit")
    return b"".join([
        _PREFIX.pack(MAGIC, version, len(header_bytes), zlib.crc32(header_bytes)),
        header_bytes,
        _PAYLOAD_PREFIX.pack(len(payload), zlib.crc32(payload)),
        payload,
    ])


def _check_prefix(data: bytes, name: str) -> int:
    """Magic, version and header length of the fixed prefix (``data`` holds at least the prefix); the length."""
    magic, version, header_length, _ = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise InrkitError(f"{name} is not an .inrz file (wrong magic bytes)")
    if version in RETIRED_VERSIONS:
        raise InrkitError(f"{name} has .inrz format version {version}, a latent file from a development version of "
                          "inrkit whose synthesis this inrkit no longer computes (encode the image again)")
    if version not in VERSIONS:
        raise InrkitError(f"{name} has .inrz format version {version}; this inrkit reads versions 1 and 4")
    if header_length > MAX_HEADER_BYTES:
        raise InrkitError(f"{name} claims a {header_length}-byte header, above the {MAX_HEADER_BYTES}-byte limit")
    return header_length


def _check_header(data: bytes, name: str) -> dict[str, Any]:
    """The header object of ``data`` (which holds at least the prefix and the header), CRC and JSON checked."""
    version, header_length, header_crc = _PREFIX.unpack_from(data)[1:]
    header_bytes = data[_PREFIX.size : _PREFIX.size + header_length]
    if zlib.crc32(header_bytes) != header_crc:
        raise InrkitError(f"{name} header checksum mismatch (the file is corrupt)")
    try:
        header = json.loads(_inflate(header_bytes, version))
    except (ValueError, RecursionError) as err:
        raise InrkitError(f"{name} header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise InrkitError(f"{name} header is not a JSON object")
    codec = header.get("codec", "weights")
    if codec not in ("weights", "latent") or (codec == "weights") != (version == 1):
        raise InrkitError(f"{name} header codec {str(codec)[:40]!r} does not match format version {version}")
    return header


def unpack(data: bytes, name: str = "file") -> tuple[dict[str, Any], bytes]:
    """Split and check an ``.inrz`` file: ``(header, payload)``; raises :class:`InrkitError` with one line.

    Checks, in order: size of the fixed prefix, magic, version, header length, header CRC, header
    inflation limit and JSON, payload length, payload CRC, and that nothing trails the payload.
    """
    if len(data) < _PREFIX.size:
        raise InrkitError(f"{name} is truncated: {len(data)} bytes, shorter than the {_PREFIX.size}-byte prefix")
    header_length = _check_prefix(data, name)
    payload_start = _PREFIX.size + header_length + _PAYLOAD_PREFIX.size
    if len(data) < payload_start:
        raise InrkitError(f"{name} is truncated inside its header")
    header = _check_header(data, name)
    payload_length, payload_crc = _PAYLOAD_PREFIX.unpack_from(data, _PREFIX.size + header_length)
    available = len(data) - payload_start
    if payload_length > available:
        raise InrkitError(f"{name} is truncated: payload claims {payload_length} bytes, {available} present")
    if payload_length < available:
        raise InrkitError(f"{name} has {available - payload_length} unexpected bytes after the payload")
    payload = data[payload_start:]
    if zlib.crc32(payload) != payload_crc:
        raise InrkitError(f"{name} payload checksum mismatch (the file is corrupt)")
    return header, payload


def _read_exactly(handle: Any, count: int) -> bytes:
    """Up to ``count`` bytes: fewer only at the end of the file."""
    chunks, left = [], count
    while left > 0:
        chunk = handle.read(min(left, 1 << 30))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """Read and check an ``.inrz`` file (see :func:`unpack`), reading no more than its declared length.

    Only a regular file is read (a directory, FIFO, device such as ``/dev/zero`` or socket, also behind
    a symlink, is refused with one line); its size must equal the length its prefix and header declare
    before the payload is read, so a valid file followed by gigabytes is refused without reading them.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise InrkitError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise InrkitError(f"cannot read {path}: it is a directory") from None
    except OSError as err:
        raise InrkitError(f"cannot read {path}: {err.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        what = "it is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InrkitError(f"cannot read {path}: {what}")
    size = info.st_size
    with os.fdopen(fd, "rb", buffering=0) as handle:
        try:
            head = _read_exactly(handle, _PREFIX.size)
            if len(head) < _PREFIX.size:
                return unpack(head, str(path))  # refused: truncated prefix
            _check_prefix(head, str(path))
            header_length = _PREFIX.unpack_from(head)[2]
            head += _read_exactly(handle, header_length + _PAYLOAD_PREFIX.size)
            if len(head) < _PREFIX.size + header_length + _PAYLOAD_PREFIX.size:
                return unpack(head, str(path))  # refused: truncated inside the header
            payload_length = _PAYLOAD_PREFIX.unpack_from(head, _PREFIX.size + header_length)[0]
            available = size - len(head)
            if payload_length != available:  # checked on the size: no buffer of the claimed length, no trailing bytes read
                _check_header(head, str(path))
                if payload_length > available:
                    raise InrkitError(f"{path} is truncated: payload claims {payload_length} bytes, {available} present")
                raise InrkitError(f"{path} has {available - payload_length} unexpected bytes after the payload")
            data = head + _read_exactly(handle, payload_length)
        except OSError as err:
            raise InrkitError(f"cannot read {path}: {err.strerror}") from None
    return unpack(data, str(path))


def is_inrz(path: str | Path) -> bool:
    """True when ``path`` is a file that starts with the ``.inrz`` magic bytes."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


# -- header schema ---------------------------------------------------------------------------------
def require(condition: bool, message: str) -> None:
    """Raise :class:`InrkitError` with ``message`` unless ``condition``."""
    if not condition:
        raise InrkitError(message)


def is_int(value: Any, low: int, high: int) -> bool:
    """``value`` is a JSON integer (not a bool) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_number(value: Any) -> bool:
    """``value`` is a finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_numbers(value: Any, where: str, depth: int = 0) -> None:
    """Refuse nesting deeper than 16, integers beyond ±2^31 and non-finite floats anywhere in ``value``."""
    require(depth <= 16, f"{where} is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            check_numbers(item, f"{where}.{json.dumps(key)[:40]}", depth + 1)  # keys come from the file: escaped
    elif isinstance(value, list):
        require(len(value) <= 1 << 16, f"{where} is too long")
        for item in value:
            check_numbers(item, where, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        require(abs(value) < 1 << 31, f"{where} holds an out-of-range integer")
    elif isinstance(value, float):
        require(math.isfinite(value), f"{where} holds a non-finite number")


_IMAGE_DTYPES = ("uint8", "uint16", "float32")
MAX_RENDER_SIDE = 1 << 17


MAX_SAMPLES = 1 << 31
# What ``info`` and ``render`` read of each kind's signal description (present keys; an image needs all of its own).
_SIGNAL_NUMBERS: dict[str, dict[str, tuple[type, float, float]]] = {
    "audio": {"n_samples": (int, 1, MAX_SAMPLES), "sample_rate": (int, 1, 1 << 24), "channels": (int, 1, 64)},
    "video": {"n_frames": (int, 1, 1 << 20), "height": (int, 1, MAX_RENDER_SIDE), "width": (int, 1, MAX_RENDER_SIDE),
              "channels": (int, 1, 4), "fps": (float, 1e-3, 1e4)},
    "sdf": {"n_vertices": (int, 0, MAX_SAMPLES), "n_faces": (int, 0, MAX_SAMPLES)},
}


def check_signal(signal: Any) -> None:
    """The header's signal description: ``None`` or a dict with a ``kind``; an image's entries are checked fully,
    the numbers ``info`` and ``render`` read of other kinds (``n_samples``, ``sample_rate``, ``fps``...) where present."""
    if signal is None:
        return
    require(isinstance(signal, dict) and isinstance(signal.get("kind"), str), "header signal must be an object with a kind")
    for key, (kind, low, high) in _SIGNAL_NUMBERS.get(signal["kind"], {}).items():
        if key in signal:
            value = signal[key]
            valid = is_int(value, int(low), int(high)) if kind is int else is_number(value) and low <= value <= high
            require(valid, f"header signal {key} must be {'an integer' if kind is int else 'a number'} in {low:g}..{high:g}")
    if signal["kind"] == "audio" and "normalisation" in signal:
        norm = signal["normalisation"]
        require(isinstance(norm, dict) and is_number(norm.get("peak", 1.0)) and norm.get("peak", 1.0) > 0,
                "header signal normalisation peak must be a positive number")
    if signal["kind"] == "sdf" and "transform" in signal:
        transform = signal["transform"]
        require(isinstance(transform, dict) and _is_vector(transform.get("centre"), 3) and is_number(transform.get("scale"))
                and transform["scale"] > 0, "header signal transform must hold a 3-number centre and a positive scale")
    if signal["kind"] != "image":
        return
    for key in ("height", "width"):
        require(is_int(signal.get(key), 1, MAX_RENDER_SIDE), f"header signal {key} must be an integer in 1..{MAX_RENDER_SIDE}")
    require(is_int(signal.get("channels"), 1, 4), "header signal channels must be 1..4")
    norm = signal.get("normalisation")
    require(isinstance(norm, dict) and norm.get("dtype") in _IMAGE_DTYPES, "header signal normalisation is invalid")
    require(is_number(norm.get("low")) and is_number(norm.get("high")) and norm["high"] > norm["low"],
            "header signal normalisation range is invalid")
    require(isinstance(norm.get("alpha", False), bool), "header signal normalisation alpha must be a boolean")


def _is_vector(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(is_number(v) for v in value)


def check_turntable(turntable: Any) -> None:
    """A radiance field's orbit (``center``, ``up``, ``radius``, ``elevation``, reference ``camera``): ``None``
    or fully checked, so that rendering a turntable from a file allocates nothing unbounded."""
    if turntable is None:
        return
    require(isinstance(turntable, dict), "header turntable must be an object")
    require(_is_vector(turntable.get("center"), 3) and _is_vector(turntable.get("up"), 3),
            "header turntable center and up must be 3 numbers each")
    require(is_number(turntable.get("radius")) and turntable["radius"] > 0, "header turntable radius must be positive")
    require(is_number(turntable.get("elevation")), "header turntable elevation must be a number")
    camera = turntable.get("camera")
    require(isinstance(camera, dict), "header turntable camera must be an object")
    matrix = camera.get("transform_matrix")
    require(isinstance(matrix, list) and len(matrix) in (3, 4) and all(_is_vector(row, 4) for row in matrix),
            "header turntable camera transform_matrix must be 4x4 numbers")
    for key in ("w", "h"):
        require(is_int(camera.get(key), 1, MAX_RENDER_SIDE), f"header turntable camera {key} must be an integer in "
                                                              f"1..{MAX_RENDER_SIDE}")
    require(all(is_number(camera.get(key)) for key in ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2"))
            and camera["fl_x"] > 0 and camera["fl_y"] > 0, "header turntable camera intrinsics are invalid")
