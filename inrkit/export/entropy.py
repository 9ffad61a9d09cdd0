"""Entropy coding of integer quantisation codes.

Every coder turns a flat int32 array of codes in ``[−q_max, q_max]`` (``q_max = 2^(bits−1) − 1``)
into bytes plus a small JSON-able ``params`` dict, and back:

* ``range`` — a range coder (``constriction``'s queue-based ``RangeEncoder``, 32-bit words) with the
  best of five models for the tensor, chosen by the exact coded size:

  - ``adaptive``: a categorical model over the codes that occur (``min … min+alphabet−1``) whose
    probabilities are the counts of all codes coded so far plus ½ (Krichevsky–Trofimov); it is
    updated after blocks that double in length (256, 256, 512, … at most 16,384 codes), so the
    decoder rebuilds the same tables and no histogram is sent;
  - ``recent``: the same with blocks of at most 1,024 codes and the counts halved after every
    block, so the model follows a distribution that drifts along the tensor (a hash table's
    levels, coarse to fine: their scales differ by orders of magnitude);
  - ``laplace`` / ``gaussian``: a quantised Laplace (location = median, scale = mean |q − median|)
    or Gaussian (mean, standard deviation) over ``[−q_max, q_max]``; two float32 numbers are sent;
  - ``uniform``: every code in ``min … min+alphabet−1`` equally likely (``log2(alphabet)`` bits each:
    weights that stay close to a uniform initialisation, like SIREN's, are near this bound).
* ``zlib`` (level 9) and ``lzma`` (raw LZMA2 stream, preset 9e) of the codes as bytes
  (``q + q_max`` as uint8 for ``bits ≤ 8``, else little-endian uint16);
* ``raw`` — fixed-length ``bits``-bit codes, bit-packed (no entropy coding; the baseline).

``auto`` (the default of :func:`encode_best`) codes each tensor with ``range`` and ``lzma`` and keeps
the smaller: the range coder wins on MLP weights (independent values), LZMA on trained hash tables,
whose neighbouring entries and interleaved features it models through its literal contexts (8 %
smaller than ``range`` on a fitted 8-level table).

Decoders check every parameter and that the stream holds exactly ``count`` codes, and raise
:class:`~inrkit.errors.InrkitError` otherwise.

Bounded decoding: before decoding, a stream must be at least as long as the shortest stream its coder
and model can write for ``count`` codes (:func:`min_stream_bits`), so the decoder's work is bounded by
the bytes a file holds, never by what its header claims:

* ``range``: the information content of the most probable sequence under the model (its first block of
  256 codes is uniform under ``adaptive``/``recent``; constriction gives every symbol of a parametric
  model's range at least 2^-24, so even a perfectly skewed model costs some bits per code), less 64 bits
  and 1 %; and, a format rule, at least one bit per :data:`RANGE_CODES_PER_BIT` codes. An alphabet of one
  code (``min … min``) needs no bytes up to :data:`TRIVIAL_CODES` codes; a longer constant tensor is coded
  with ``uniform`` over two codes (one bit each), so a 120-byte file cannot claim 64 M constant weights.
  The encoder never writes a model whose stream is shorter (``uniform`` always qualifies), and every
  range-coded tensor of the files inrkit writes from fitted runs holds 0.3 bits per code or more, ten
  times the rule (measured on 710 tensors: 11 presets incl. hash grids, audio and NeRF, bits 2-16);
* ``zlib``: one bit per 129 bytes of codes; ``lzma``: one bit per 1,024 bytes (the formats' best ratios);
* ``raw``: exactly ``⌈count·bits/8⌉`` bytes.

After decoding, a range stream must be exactly the stream the encoder writes for the decoded codes (it is
re-encoded and compared), so a stream cut short or padded (four zero bytes instead of a tensor's codes,
an empty stream) is refused instead of decoding to constants.

Example:
    >>> q = np.array([0, 1, -1, 0, 0, 2], dtype=np.int32)
    >>> data, params = encode(q, bits=4, coder="range")
    >>> (decode(data, q.size, bits=4, coder="range", params=params) == q).all()
    True
"""

from __future__ import annotations

import lzma
import math
import zlib
from typing import Any

import numpy as np

from inrkit.errors import InrkitError
from inrkit.export.quantize import max_code

CODERS = ("range", "zlib", "lzma", "raw")
AUTO_CODERS = ("range", "lzma")  # ``coder="auto"``: whichever codes the tensor smaller
RANGE_MODELS = ("adaptive", "recent", "laplace", "gaussian", "uniform")
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
_FIRST_BLOCK = 256
_MIN_SCALE = 1e-3  # keeps the parametric models' scale strictly positive
# (decay, longest block) of the two adaptive models; "recent" halves its counts every ≤ 1,024 codes
# (the best of decays 0.3–0.85 and blocks 512–4,096 on a synthetic 8-level hash table: 7 % under zlib)
_ADAPTATION = {"adaptive": (1.0, 16384), "recent": (0.5, 1024)}

# -- honest lower bounds on stream lengths (see "Bounded decoding" in the module docstring) ----------------
PROBABILITY_PRECISION = 24  # constriction's Python models give every symbol of their range >= 2^-24
RANGE_CODES_PER_BIT = 32    # format rule: a range stream over >= 2 codes holds >= 1 bit per 32 codes
TRIVIAL_CODES = 4096        # ... and a tensor of one repeated code is coded in no bytes up to this many codes
DEFLATE_BYTES_PER_BIT = 129  # deflate's longest match, 258 bytes, costs >= 2 bits (1-bit length and distance codes)
LZMA_BYTES_PER_BIT = 1024   # LZMA: a 273-byte rep0 match is >= 13 binary decisions of >= 0.022 bits (p <= 2017/2048)
_RANGE_SLACK_BITS = 64      # the range coder's final words: a stream may be this much under the information content


def _blocks(count: int, longest: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of an adaptive model's blocks: 256, then as long as all before, ≤ ``longest``."""
    bounds, start = [], 0
    while start < count:
        length = min(max(_FIRST_BLOCK, start), longest, count - start)
        bounds.append((start, start + length))
        start += length
    return bounds


def _adaptive_tables(alphabet: int, decay: float = 1.0):
    """Generator protocol: send each block's symbols, receive the next block's Categorical model.

    Counts start at zero; after each block ``counts ← decay·counts + histogram(block)``.
    """
    import constriction

    counts = np.zeros(alphabet, dtype=np.float64)
    while True:
        block = yield constriction.stream.model.Categorical(counts + 0.5, perfect=False)
        counts = decay * counts + np.bincount(block, minlength=alphabet)


def _parametric(model: str, bits: int, params: dict[str, float]):
    import constriction

    family = constriction.stream.model.QuantizedLaplace if model == "laplace" else constriction.stream.model.QuantizedGaussian
    return family(-max_code(bits), max_code(bits), params["mean"], params["scale"])


def _range_params(q: np.ndarray, bits: int, model: str) -> dict[str, Any]:
    """The header parameters of ``model`` fitted to the codes ``q``."""
    if model in ("adaptive", "recent", "uniform"):
        low = int(q.min()) if q.size else 0
        alphabet = (int(q.max()) - low + 1) if q.size else 1
        if alphabet == 1 and q.size > TRIVIAL_CODES and model == "uniform":  # a long constant: one bit per code
            low, alphabet = min(low, max_code(bits) - 1), 2
        return {"model": model, "min": low, "alphabet": alphabet}
    values = q.astype(np.float64)
    if model == "laplace":
        mean = float(np.median(values)) if q.size else 0.0
        scale = float(np.abs(values - mean).mean()) if q.size else 1.0
    else:
        mean = float(values.mean()) if q.size else 0.0
        scale = float(values.std()) if q.size else 1.0
    # float32-rounded so that the header's short decimals are the exact parameters the coder used
    return {"model": model, "mean": float(str(np.float32(mean))), "scale": float(str(np.float32(max(scale, _MIN_SCALE))))}


def _range_code(q: np.ndarray, bits: int, params: dict[str, Any]) -> bytes:
    """The range-coded stream of the codes ``q`` under the (checked) model ``params``."""
    import constriction

    encoder = constriction.stream.queue.RangeEncoder()
    model = params["model"]
    if model in ("adaptive", "recent", "uniform"):
        low, alphabet = params["min"], params["alphabet"]
        symbols = (q - low).astype(np.int32)
        if alphabet == 1:
            pass  # a single possible code: nothing to send
        elif model == "uniform":
            encoder.encode(symbols, constriction.stream.model.Uniform(alphabet))
        else:
            decay, longest = _ADAPTATION[model]
            tables = _adaptive_tables(alphabet, decay)
            table = next(tables)
            for start, stop in _blocks(q.size, longest):
                encoder.encode(symbols[start:stop], table)
                table = tables.send(symbols[start:stop])
    else:
        encoder.encode(q.astype(np.int32), _parametric(model, bits, params))
    return encoder.get_compressed().astype("<u4").tobytes()


def _range_encode(q: np.ndarray, bits: int, model: str) -> tuple[bytes, dict[str, Any]]:
    params = _range_params(q, bits, model)
    return _range_code(q, bits, params), params


def encode(q: np.ndarray, bits: int, coder: str = "range") -> tuple[bytes, dict[str, Any]]:
    """Code the flat int32 array ``q`` (values in ``±q_max``); returns ``(data, params)``."""
    q = np.ascontiguousarray(q, dtype=np.int32).reshape(-1)
    if coder == "range":
        candidates = [_range_encode(q, bits, model) for model in RANGE_MODELS]
        # only streams the decoder accepts as honest (min_stream_bits); "uniform" always is
        candidates = [(data, params) for data, params in candidates
                      if 8 * len(data) >= min_stream_bits(q.size, bits, "range", params)]
        return min(candidates, key=lambda candidate: len(candidate[0]))
    unsigned = (q + max_code(bits)).astype(np.uint8 if bits <= 8 else "<u2")
    if coder == "zlib":
        return zlib.compress(unsigned.tobytes(), 9), {}
    if coder == "lzma":
        return lzma.compress(unsigned.tobytes(), format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), {}
    if coder == "raw":
        bit_planes = (unsigned.astype(np.uint32)[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint32)) & 1
        return np.packbits(bit_planes.astype(np.uint8).reshape(-1)).tobytes(), {}
    raise InrkitError(f"unknown entropy coder {coder!r}; choose one of {', '.join(CODERS)}")


def encode_best(q: np.ndarray, bits: int, coder: str = "auto") -> tuple[bytes, dict[str, Any], str]:
    """``(data, params, coder used)``: ``coder``, or for ``"auto"`` the smallest of :data:`AUTO_CODERS`."""
    candidates = AUTO_CODERS if coder == "auto" else (coder,)
    coded = [(*encode(q, bits, name), name) for name in candidates]
    return min(coded, key=lambda item: len(item[0]))


# -- decoding ---------------------------------------------------------------------------------------
def _number(params: dict[str, Any], key: str, integer: bool = False) -> float | int:
    value = params.get(key)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise InrkitError(f"coder parameter {key!r} is missing or invalid")
    return value


def check_range_params(bits: int, params: dict[str, Any]) -> dict[str, Any]:
    """The model of a range stream, every parameter checked: ``{"model", "min", "alphabet"}`` or
    ``{"model", "mean", "scale"}``."""
    model = params.get("model")
    if model in ("adaptive", "recent", "uniform"):
        low, alphabet = int(_number(params, "min", True)), int(_number(params, "alphabet", True))
        if not (-max_code(bits) <= low and alphabet >= 1 and low + alphabet - 1 <= max_code(bits)):
            raise InrkitError(f"{model} model's alphabet lies outside the code range")
        return {"model": model, "min": low, "alphabet": alphabet}
    if model in ("laplace", "gaussian"):
        checked = {"model": model, "mean": float(_number(params, "mean")), "scale": float(_number(params, "scale"))}
        if checked["scale"] < _MIN_SCALE or abs(checked["mean"]) > 2 * max_code(bits):
            raise InrkitError("parametric model's mean or scale is out of range")
        return checked
    raise InrkitError(f"unknown range-coder model {model!r}")


def _most_probable_bits(count: int, bits: int, params: dict[str, Any]) -> float:
    """Information content (bits) of the most probable sequence of ``count`` codes under a checked range model."""
    model = params["model"]
    if model in ("adaptive", "recent", "uniform"):
        alphabet = params["alphabet"]
        if alphabet == 1:
            return 0.0
        if model == "uniform":
            return count * math.log2(alphabet)
        # every code the same symbol: each block's table gives it the largest probability it can have
        ceiling = 1.0 - (alphabet - 1) * 2.0 ** -PROBABILITY_PRECISION
        decay, longest = _ADAPTATION[model]
        total, counted = 0.0, 0.0
        for start, stop in _blocks(count, longest):
            p = min((counted + 0.5) / (counted + 0.5 * alphabet), ceiling)
            total -= (stop - start) * math.log2(p)
            counted = decay * counted + (stop - start)
        return total
    mean, scale, q_max = params["mean"], params["scale"], max_code(bits)

    def cdf(x: float) -> float:
        if model == "laplace":
            return 0.5 * math.exp((x - mean) / scale) if x < mean else 1.0 - 0.5 * math.exp(-(x - mean) / scale)
        return 0.5 * (1.0 + math.erf((x - mean) / (scale * math.sqrt(2.0))))

    # the largest mass of a unit interval, plus a tail beyond the range (whether the quantiser folds the
    # tails into the edge codes or renormalises over the range), capped by the 2^-24 every other code keeps
    unit = -math.expm1(-0.5 / scale) if model == "laplace" else math.erf(0.5 / (scale * math.sqrt(2.0)))
    inside = cdf(q_max + 0.5) - cdf(-q_max - 0.5)
    tail = max(cdf(-q_max - 0.5), 1.0 - cdf(q_max + 0.5))
    ceiling = 1.0 - 2 * q_max * 2.0 ** -PROBABILITY_PRECISION
    largest = min((unit + tail) / inside, ceiling) if inside > 0 else ceiling
    return -count * math.log2(largest)


def min_stream_bits(count: int, bits: int, coder: str, params: dict[str, Any]) -> float:
    """The fewest bits a stream of ``count`` codes can have under ``coder`` and its checked ``params``
    (the bounds in the module docstring); a shorter stream cannot be one inrkit wrote."""
    width = 1 if bits <= 8 else 2
    if coder == "range":
        if params.get("model") in ("adaptive", "recent", "uniform") and params.get("alphabet") == 1:
            return 0.0 if count <= TRIVIAL_CODES else count / RANGE_CODES_PER_BIT
        return max(0.99 * _most_probable_bits(count, bits, params) - _RANGE_SLACK_BITS, count / RANGE_CODES_PER_BIT)
    if coder == "zlib":
        return count * width / DEFLATE_BYTES_PER_BIT
    if coder == "lzma":
        return count * width / LZMA_BYTES_PER_BIT
    if coder == "raw":
        return float(count * bits)
    raise InrkitError(f"unknown entropy coder {coder!r}")


def check_stream_length(length: int, count: int, bits: int, coder: str, params: Any) -> None:
    """Refuse a stream of ``length`` bytes shorter than :func:`min_stream_bits` for ``count`` codes (one line)."""
    if coder not in CODERS:
        raise InrkitError(f"unknown entropy coder {coder!r}")
    if not isinstance(params, dict):
        raise InrkitError("coder parameters must be an object")
    needed = min_stream_bits(count, bits, coder, check_range_params(bits, params) if coder == "range" else {})
    if 8 * length < needed:
        raise InrkitError(f"{coder} stream of {length} bytes is too short for {count:,} codes "
                          f"(the coder needs at least {math.ceil(needed / 8):,} bytes)")


def _range_decode(data: bytes, count: int, bits: int, params: dict[str, Any]) -> np.ndarray:
    import constriction

    if len(data) % 4:
        raise InrkitError("range-coded stream length is not a multiple of 4 bytes")
    checked = check_range_params(bits, params)
    model = checked["model"]
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    if model in ("adaptive", "recent", "uniform"):
        low, alphabet = checked["min"], checked["alphabet"]
        if alphabet == 1:
            out = np.zeros(count, dtype=np.int32)
        elif model == "uniform":
            out = np.asarray(decoder.decode(constriction.stream.model.Uniform(alphabet), count), dtype=np.int32)
        else:
            out = np.empty(count, dtype=np.int32)
            decay, longest = _ADAPTATION[model]
            tables = _adaptive_tables(alphabet, decay)
            table = next(tables)
            for start, stop in _blocks(count, longest):
                out[start:stop] = decoder.decode(table, stop - start)
                table = tables.send(out[start:stop])
        out += low
    else:
        out = np.asarray(decoder.decode(_parametric(model, bits, checked), count), dtype=np.int32)
    if not decoder.maybe_exhausted():
        raise InrkitError("range-coded stream holds more data than its codes")
    if _range_code(out, bits, checked) != data:  # consumed exactly: the stream the encoder writes for these codes
        raise InrkitError(f"range-coded stream of {len(data)} bytes is not the coding of its {count} codes "
                          "(cut short or padded)")
    return out


def _inflate(decompressor: Any, data: bytes, expected: int) -> bytes:
    out = decompressor.decompress(data, expected + 1)
    if len(out) != expected or not decompressor.eof or decompressor.unused_data:
        raise InrkitError(f"compressed stream decodes to {len(out)} bytes, expected {expected}")
    return out


def decode(data: bytes, count: int, bits: int, coder: str, params: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode`: ``count`` int32 codes, each checked to lie within ``±q_max``; a stream shorter
    than :func:`min_stream_bits` is refused before any decoding."""
    check_stream_length(len(data), count, bits, coder, params)
    if coder == "range":
        try:
            q = _range_decode(data, count, bits, params)
        except InrkitError:
            raise
        except BaseException as err:  # constriction raises ValueError, or a pyo3 PanicException on garbage
            # (a BaseException); anything else that is not an Exception (Ctrl-C, an alarm's exception) propagates
            if isinstance(err, MemoryError) or not (isinstance(err, Exception) or type(err).__name__ == "PanicException"):
                raise
            raise InrkitError(f"range-coded stream is corrupt ({type(err).__name__})") from None
    else:
        width = 1 if bits <= 8 else 2
        dtype = np.uint8 if bits <= 8 else "<u2"
        try:
            if coder == "zlib":
                raw = _inflate(zlib.decompressobj(), data, count * width)
            elif coder == "lzma":
                raw = _inflate(lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS), data, count * width)
            elif coder == "raw":
                if len(data) != (count * bits + 7) // 8:
                    raise InrkitError(f"bit-packed stream is {len(data)} bytes, expected {(count * bits + 7) // 8}")
                planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits).reshape(count, bits)
                weights = np.uint32(1) << np.arange(bits - 1, -1, -1, dtype=np.uint32)
                raw = (planes.astype(np.uint32) * weights).sum(axis=1).astype(dtype).tobytes()
            else:
                raise InrkitError(f"unknown entropy coder {coder!r}")
        except (zlib.error, lzma.LZMAError, EOFError) as err:
            raise InrkitError(f"{coder} stream is corrupt ({err})") from None
        q = np.frombuffer(raw, dtype=dtype).astype(np.int32) - max_code(bits)
    if q.size and (int(q.min()) < -max_code(bits) or int(q.max()) > max_code(bits)):
        raise InrkitError(f"decoded codes fall outside the {bits}-bit range")
    return q
