"""Field weights to a tensor table + payload and back (the body of an ``.inrz`` file).

Every entry of ``field.state_dict()`` becomes one table entry, in order:

* ``quantized`` — trainable tensors: codes from :mod:`inrkit.export.quantize`, coded by
  :mod:`inrkit.export.entropy`; per-channel steps (float32) precede the codes in the payload, a
  per-tensor step sits in the table as a JSON number (float32 value, exact);
* ``float16`` — tensors the caller marks as sensitive, stored as IEEE half floats (real view);
* ``float32`` — buffers that the config does not regenerate, stored losslessly;
* ``rebuilt`` — buffers that the config regenerates bit for bit (e.g. the Gaussian Fourier
  matrix ``B`` drawn from its seed): no bytes, only a CRC32 that the decoder checks on the rebuilt
  buffer, so a change in torch's random generator is caught instead of silently giving another field.

Radiance fields (:class:`~inrkit.fields.NerfModel`) added three kinds for their occupancy grid's
buffers; files of coordinate fields never contain them, so every earlier file reads as before:

* ``bitmask`` — bool buffers (the grid's ``occupied`` cells): the values in ``state_dict`` order
  packed eight to a byte, least significant bit first (``numpy.packbits(..., bitorder="little")``,
  ``⌈n/8⌉`` bytes, zero padding), then coded by the entry's ``coder``: ``raw`` (the packed bytes),
  ``zlib`` (level 9) or ``lzma`` (raw LZMA2 stream, preset 9e) — whichever is smallest. Lossless;
  the decoder inflates at most ``⌈n/8⌉`` bytes.
* ``int64`` — int64 buffers (the grid's update counter): little-endian int64, lossless.
* ``omitted`` — buffers the field declares needed only to keep training (its
  ``training_only_buffers``, e.g. NerfModel's ``grid.values``, the decaying density estimate behind
  the occupied cells): no bytes; the decoder keeps what the config builds (zeros for
  ``grid.values``), so a decoded model renders exactly as the original but resumes training with a
  fresh estimate.

Decoding builds the field (:func:`~inrkit.fields.field_from_config`: a coordinate
:class:`~inrkit.fields.Field` or a :class:`~inrkit.fields.NerfModel`) on torch's ``meta`` device
first, so the table is checked against the config's shapes and dtypes, and the total size against
``max_elements``, before any real allocation. Building checks every config value against its section's
schema (:func:`inrkit.errors.check_section`), streams shorter than their coder's honest minimum are refused
before they are decoded (:func:`inrkit.export.entropy.min_stream_bits`), and decoded weights must be finite.
"""

from __future__ import annotations

import fnmatch
import lzma
import warnings
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from inrkit.errors import InrkitError
from inrkit.export import entropy
from inrkit.export.inrz import check_numbers, is_int, is_number, require
from inrkit.export.quantize import MAX_BITS, MIN_BITS, SCHEMES, best_step, channel_count, dequantise, quantise, real_view
from inrkit.fields import field_from_config

MAX_ELEMENTS = 1 << 26  # 64 M values (256 MB as float32): above every preset and a 3-D hash grid with T = 2^19
MAX_TENSORS = 4096
MAX_LAYERS = 1024
STORAGES = ("quantized", "float16", "float32", "rebuilt", "bitmask", "int64", "omitted")
BITMASK_CODERS = ("raw", "zlib", "lzma")
_FLOAT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                 "complex64": torch.complex64}
_DTYPES = {**_FLOAT_DTYPES, "bool": torch.bool, "int64": torch.int64}
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]


@dataclass
class QuantisationPlan:
    """How to store a field's tensors: bit width, step scheme, coder, fp16 name patterns, fixed steps."""

    bits: int = 8
    scheme: str = "tensor"
    coder: str = "auto"
    fp16: tuple[str, ...] = ()
    steps: dict[str, torch.Tensor] | None = None  # reuse these steps (after fine-tuning) instead of searching

    def validate(self) -> None:
        """Raise :class:`InrkitError` for impossible settings."""
        if not (MIN_BITS <= self.bits <= MAX_BITS):
            raise InrkitError(f"--bits must be between {MIN_BITS} and {MAX_BITS}, got {self.bits}")
        if self.scheme not in SCHEMES:
            raise InrkitError(f"--scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if self.coder not in ("auto", *entropy.CODERS):
            raise InrkitError(f"--coder must be one of auto, {', '.join(entropy.CODERS)}, got {self.coder!r}")

    def storage(self, name: str, is_buffer: bool) -> str:
        """``quantized``/``float16`` for parameters (by the fp16 patterns), ``float32`` for buffers."""
        if is_buffer:
            return "float32"
        return "float16" if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.fp16) else "quantized"


def float32_json(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (``0.0014460808597505093`` -> ``0.0014460809``)."""
    return float(str(np.float32(value)))


def dtype_name(tensor: torch.Tensor) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(tensor.dtype).removeprefix("torch.")


def tensor_crc(tensor: torch.Tensor) -> int:
    """CRC32 of a tensor's bytes (real view, little-endian as stored in memory)."""
    return zlib.crc32(real_view(tensor.detach().cpu().contiguous()).numpy().tobytes())


def _rebuilt_buffers(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The buffers the config's field creates by itself (its parameters' random init leaves the caller's RNG alone)."""
    with torch.random.fork_rng(devices=[]):
        return dict(field_from_config(config).named_buffers())


def training_only_buffers(field: nn.Module) -> frozenset[str]:
    """Names of the buffers ``field`` needs only to keep training (its ``training_only_buffers``; none by default)."""
    return frozenset(getattr(field, "training_only_buffers", ()))


def plan_steps(field: nn.Module, plan: QuantisationPlan) -> dict[str, torch.Tensor]:
    """The step of every quantised parameter: ``plan.steps`` where given, else the MSE-optimal search."""
    out = {}
    for name, parameter in field.named_parameters():
        if plan.storage(name, is_buffer=False) == "quantized":
            given = (plan.steps or {}).get(name)
            out[name] = given if given is not None else best_step(parameter, plan.bits, plan.scheme)
    return out


def _buffer_storage(name: str, tensor: torch.Tensor, rebuilt: dict[str, torch.Tensor], omitted: frozenset[str]) -> str:
    """How a buffer is stored: ``omitted``, ``rebuilt`` when the config regenerates it, else by its dtype."""
    if name in omitted:
        return "omitted"
    if name in rebuilt and rebuilt[name].shape == tensor.shape and rebuilt[name].dtype == tensor.dtype \
            and torch.equal(rebuilt[name].cpu(), tensor):
        return "rebuilt"
    if tensor.dtype == torch.bool:
        return "bitmask"
    if tensor.dtype == torch.int64:
        return "int64"
    if dtype_name(tensor) in _FLOAT_DTYPES:
        return "float32"
    raise InrkitError(f"buffer {name} has dtype {dtype_name(tensor)}, which an .inrz file cannot store")


def _encode_bitmask(tensor: torch.Tensor) -> tuple[bytes, str]:
    """The packed bits of a bool tensor and their smallest coding: ``(bytes, coder)``."""
    packed = np.packbits(tensor.reshape(-1).numpy(), bitorder="little").tobytes()
    candidates = [(packed, "raw"), (zlib.compress(packed, 9), "zlib"),
                  (lzma.compress(packed, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), "lzma")]
    return min(candidates, key=lambda candidate: len(candidate[0]))  # first of equals: raw, then zlib


def encode_tensors(field: nn.Module, plan: QuantisationPlan) -> tuple[list[dict[str, Any]], bytes]:
    """``(table, payload)``: the tensor table (JSON-able) and the payload bytes of ``field``
    (a :class:`~inrkit.fields.Field` or a :class:`~inrkit.fields.NerfModel`)."""
    plan.validate()
    buffers = dict(field.named_buffers())
    rebuilt = _rebuilt_buffers(field.config) if buffers else {}
    omitted = training_only_buffers(field)
    steps = plan_steps(field, plan)
    table, chunks = [], []
    for name, tensor in field.state_dict().items():
        tensor = tensor.detach().cpu()
        entry: dict[str, Any] = {"name": name, "shape": list(tensor.shape), "dtype": dtype_name(tensor)}
        storage = _buffer_storage(name, tensor, rebuilt, omitted) if name in buffers else plan.storage(name, False)
        entry["storage"] = storage
        if storage == "omitted":
            data = b""
        elif storage == "rebuilt":
            entry["crc32"] = tensor_crc(tensor)
            data = b""
        elif storage == "bitmask":
            data, entry["coder"] = _encode_bitmask(tensor)
        elif storage == "int64":
            data = tensor.numpy().astype("<i8").tobytes()
        elif storage == "float32":
            data = real_view(tensor).float().numpy().astype("<f4").tobytes()
        elif storage == "float16":
            data = real_view(tensor).float().numpy().astype("<f2").tobytes()
        else:
            step = steps[name].float().cpu()
            q = quantise(tensor, step, plan.bits)
            coded, params, coder = entropy.encode_best(q.numpy(), plan.bits, plan.coder)
            entry.update({"bits": plan.bits, "scheme": plan.scheme, "coder": coder, "params": params})
            if step.numel() == 1 and channel_count(tensor.shape, plan.scheme) == 1:
                entry["step"] = float32_json(float(step[0]))
                data = coded
            else:
                data = step.numpy().astype("<f4").tobytes() + coded
        entry["length"] = len(data)
        table.append(entry)
        chunks.append(data)
    return table, b"".join(chunks)


# -- decoding ---------------------------------------------------------------------------------------
def _check_layer_counts(config: Any) -> None:
    """Refuse layer/level counts that would make even a meta-device build slow."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key in ("n_hidden_layers", "n_levels"):
                require(is_int(value, 0, MAX_LAYERS), f"header field config {key} must be an integer in 0..{MAX_LAYERS}")
            _check_layer_counts(value)
    elif isinstance(config, list):
        for value in config:
            _check_layer_counts(value)


def _build(config: dict[str, Any], device: str) -> nn.Module:
    try:
        with torch.device(device), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's "zero-element tensors" note on a forged zero width
            return field_from_config(config)
    except Exception as err:  # the constructor is fed an untrusted config: any failure is a bad file
        reason = str(err) if isinstance(err, InrkitError) else f"{type(err).__name__}: {err}"
        reason = reason.replace("\n", " ")[:300]  # the message may quote file-provided strings
        raise InrkitError(f"header field config is invalid ({reason})") from None


def _real_numel(shape: list[int], dtype: str) -> int:
    return int(np.prod(shape, dtype=np.int64)) * (2 if dtype == "complex64" else 1)


def _check_entry(entry: Any, expected_name: str, expected_shape: list[int], expected_dtype: str, is_buffer: bool,
                 training_only: bool = False) -> int:
    """Validate one table entry against the config's tensor; returns its byte length in the payload."""
    require(isinstance(entry, dict), "tensor table entries must be objects")
    name = entry.get("name")
    require(name == expected_name, f"tensor table entry {name!r} does not match the config's tensor {expected_name!r}")
    require(entry.get("shape") == expected_shape,
            f"tensor {name} has shape {entry.get('shape')}, the config gives {expected_shape}")
    require(entry.get("dtype") == expected_dtype, f"tensor {name} has dtype {entry.get('dtype')!r}, expected {expected_dtype!r}")
    storage = entry.get("storage")
    require(storage in STORAGES, f"tensor {name} has unknown storage {storage!r}")
    require(storage in ("quantized", "float16") or is_buffer, f"tensor {name} is a parameter stored as {storage}")
    require(storage != "omitted" or training_only, f"tensor {name} is omitted but the field needs it to render")
    require(storage not in ("quantized", "float16", "float32") or expected_dtype in _FLOAT_DTYPES,
            f"tensor {name} of dtype {expected_dtype} is stored as {storage}")
    require(storage != "bitmask" or expected_dtype == "bool", f"tensor {name} of dtype {expected_dtype} is stored as bitmask")
    require(storage != "int64" or expected_dtype == "int64", f"tensor {name} of dtype {expected_dtype} is stored as int64")
    length = entry.get("length")
    require(is_int(length, 0, 1 << 32), f"tensor {name} has an invalid length")
    count = _real_numel(expected_shape, expected_dtype)
    if storage == "rebuilt":
        require(length == 0 and is_int(entry.get("crc32"), 0, (1 << 32) - 1), f"tensor {name}: invalid rebuilt entry")
    elif storage == "omitted":
        require(length == 0, f"tensor {name}: an omitted tensor has no bytes, the table gives {length}")
    elif storage == "bitmask":
        require(entry.get("coder") in BITMASK_CODERS, f"tensor {name} has an unknown bitmask coder")
        packed = (count + 7) // 8
        require(entry["coder"] != "raw" or length == packed, f"tensor {name} stores {length} bytes, expected {packed}")
    elif storage in ("float16", "float32", "int64"):
        width = {"float16": 2, "float32": 4, "int64": 8}[storage]
        require(length == width * count, f"tensor {name} stores {length} bytes, expected {width * count}")
    else:
        require(is_int(entry.get("bits"), MIN_BITS, MAX_BITS), f"tensor {name} has invalid bits")
        require(entry.get("scheme") in SCHEMES, f"tensor {name} has an unknown scheme")
        require(entry.get("coder") in entropy.CODERS, f"tensor {name} has an unknown coder")
        require(isinstance(entry.get("params"), dict), f"tensor {name} has invalid coder parameters")
        require(entry["coder"] == "range" or not entry["params"], f"tensor {name}: the {entry['coder']} coder takes no "
                                                                  "parameters")
        rows = channel_count(expected_shape, entry["scheme"])
        if rows == 1 and "step" in entry:
            require(is_number(entry["step"]) and entry["step"] > 0, f"tensor {name} has an invalid step")
        else:
            require(length >= 4 * rows, f"tensor {name} is too short for its {rows} steps")
        stream = length - (0 if rows == 1 and "step" in entry else 4 * rows)
        try:  # before anything is built or decoded: a stream too short for its codes cannot be one inrkit wrote
            entropy.check_stream_length(stream, count, entry["bits"], entry["coder"], entry["params"])
        except InrkitError as err:
            raise InrkitError(f"tensor {name}: {err}") from None
    return length


def _decode_steps(data: bytes, name: str) -> torch.Tensor:
    steps = np.frombuffer(data, dtype="<f4").astype(np.float32)
    require(bool(np.isfinite(steps).all() and (steps > 0).all()), f"tensor {name} has invalid quantisation steps")
    return torch.from_numpy(steps)


def _decode_bitmask(data: bytes, count: int, coder: str, name: str) -> torch.Tensor:
    """Inverse of :func:`_encode_bitmask`: ``count`` bools; the stream must inflate to exactly ``⌈count/8⌉`` bytes."""
    expected = (count + 7) // 8
    if coder == "raw":
        packed = data
    else:
        decompressor = zlib.decompressobj() if coder == "zlib" else lzma.LZMADecompressor(lzma.FORMAT_RAW,
                                                                                         filters=_LZMA_FILTERS)
        try:
            packed = decompressor.decompress(data, expected + 1)
        except (zlib.error, lzma.LZMAError, EOFError) as err:
            raise InrkitError(f"tensor {name}: {coder} stream is corrupt ({err})") from None
        require(len(packed) == expected and decompressor.eof and not decompressor.unused_data,
                f"tensor {name}: {coder} stream decodes to {len(packed)} bytes, expected {expected}")
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=count, bitorder="little")
    return torch.from_numpy(bits.astype(bool))


def _decode_tensor(entry: dict[str, Any], data: bytes, target: torch.Tensor) -> torch.Tensor:
    name, shape, dtype = entry["name"], entry["shape"], entry["dtype"]
    real_shape = [*shape, 2] if dtype == "complex64" else shape
    count = _real_numel(shape, dtype)
    storage = entry["storage"]
    if storage == "omitted":
        return target
    if storage == "rebuilt":
        require(tensor_crc(target) == entry["crc32"],
                f"buffer {name} rebuilt from the config differs from the encoded one (torch's generator changed?)")
        return target
    if storage == "bitmask":
        return _decode_bitmask(data, count, entry["coder"], name).reshape(shape)
    if storage == "int64":
        return torch.from_numpy(np.frombuffer(data, dtype="<i8").astype(np.int64)).reshape(shape)
    if storage in ("float16", "float32"):
        values = torch.from_numpy(np.frombuffer(data, dtype="<f2" if storage == "float16" else "<f4").astype(np.float32))
    else:
        rows = channel_count(shape, entry["scheme"])
        if rows == 1 and "step" in entry:
            step = torch.tensor([entry["step"]], dtype=torch.float32)
        else:
            step, data = _decode_steps(data[: 4 * rows], name), data[4 * rows :]
        codes = entropy.decode(data, count, entry["bits"], entry["coder"], entry["params"])
        values = dequantise(torch.from_numpy(codes), step)
    require(bool(torch.isfinite(values).all()), f"tensor {name} decodes to infinite or NaN values")
    values = values.reshape(real_shape)
    if dtype == "complex64":
        values = torch.view_as_complex(values.contiguous())
    return values.to(_DTYPES[dtype])


def check_table(table: Any, expected: dict[str, torch.Tensor], buffer_names: set[str], omittable: frozenset[str],
                payload_length: int) -> list[int]:
    """Check a tensor table against the tensors a config builds (``expected``: a meta-device ``state_dict``) and
    the payload's length, before anything is allocated; returns each entry's offset in the payload."""
    require(isinstance(table, list) and len(table) <= MAX_TENSORS, "header tensor table is missing or too long")
    require(len(table) == len(expected), f"header lists {len(table)} tensors, the field config has {len(expected)}")
    offsets, offset = [], 0
    for entry, (name, tensor) in zip(table, expected.items(), strict=True):
        dtype = dtype_name(tensor)
        require(dtype in _DTYPES, f"tensor {name} has unsupported dtype {dtype}")
        length = _check_entry(entry, name, list(tensor.shape), dtype, name in buffer_names, name in omittable)
        offsets.append(offset)
        offset += length
    require(offset == payload_length, f"tensor table accounts for {offset} payload bytes, the payload has "
                                      f"{payload_length}")
    return offsets


def decode_tensors(table: list[dict[str, Any]], offsets: list[int], payload: bytes,
                   state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of a checked table (:func:`check_table`), by name; ``state``: the built module's own tensors."""
    return {entry["name"]: _decode_tensor(entry, payload[start : start + entry["length"]], state[entry["name"]])
            for entry, start in zip(table, offsets, strict=True)}


def decode_field(header: dict[str, Any], payload: bytes, max_elements: int = MAX_ELEMENTS) -> nn.Module:
    """Rebuild the field of an ``.inrz`` header and payload (a :class:`~inrkit.fields.Field` or a
    :class:`~inrkit.fields.NerfModel`, in eval mode); every check happens before allocation."""
    config = header.get("field")
    require(isinstance(config, dict), "header has no field config")
    check_numbers(config, "header field config")
    _check_layer_counts(config)
    skeleton = _build(config, "meta")
    total = sum(t.numel() for t in (*skeleton.parameters(), *skeleton.buffers()))
    require(total <= max_elements, f"header field has {total:,} values, above the limit of {max_elements:,}")
    buffer_names = {name for name, _ in skeleton.named_buffers()}
    offsets = check_table(header.get("tensors"), skeleton.state_dict(), buffer_names, training_only_buffers(skeleton),
                          len(payload))
    field = _build(config, "cpu")
    decoded = decode_tensors(header["tensors"], offsets, payload, field.state_dict())
    field.load_state_dict(decoded, strict=True)
    return field.eval()
