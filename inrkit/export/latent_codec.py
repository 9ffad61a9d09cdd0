"""The latent codec: a :class:`~inrkit.fields.latent_field.LatentField` to ``.inrz`` bytes (format version 4) and back.

File contents (see :mod:`inrkit.export.inrz` for the container)::

    header: {"codec": "latent", "field": <latent field config>, "signal": <image description>, "metrics": {...},
             "tensors": [[model, p, q, Δ, bytes], ...],
             "latent": {"bits": b, "max_abs": L, "length": S}}
    payload: the tables' tensors (quantised per tensor, entropy-coded: inrkit.export.codec) | latent stream (S bytes)

**Tensor table.** One entry per synthesis and ARM parameter, in ``state_dict`` order, holding only what the
weights codec's table entry (:mod:`inrkit.export.codec`) has that the config does not fix: its range coder's
``params`` as the model's name and two numbers (:data:`MODEL_PARAMETERS`: ``min, alphabet`` or ``mean, scale``),
the step Δ and the byte length. The rest (name, shape, dtype, ``quantized`` storage, ``tensor`` scheme,
``range`` coder, the ``b`` bits shared by all) is filled in from the config and the ``latent`` section, and the
full table is then checked as the weights codec checks its own, before anything is allocated. With the format's
dictionary (:data:`inrkit.export.inrz.LATENT_HEADER_DICTIONARY`) and steps of :data:`STEP_DIGITS` digits, the header of a
768×512 image (medium preset) deflates to about 170–210 bytes (kodim03: 167 after 3 steps, 208 after 60 s at
0.06 bpp; the full table would take 426 and 482).

**Latents.** Every latent is ``round(clamp(G·y, −127, 127))`` (G the encoder gain,
:mod:`inrkit.encodings.latent_grids`); ``L`` is the largest magnitude (1 … 127). They are coded in
*decoding order*: row ``r`` of every grid that has one (grids 0 … K−1, columns left to right), for
r = 0, 1, …; each with a quantised Laplace over ``−L … L`` (constriction's ``QuantizedLaplace``, a queue range
coder of 32-bit words) whose location and scale the ARM computes from the latent's context in the rows
above (:mod:`inrkit.fields.arm`). A row of all grids is decoded in three vectorised runs (512 rows for a
768×512 image; :func:`decode_latents`), never latent by latent. The stream is padded with zero words to at least one word per
:data:`LATENTS_PER_WORD` latents, so a decoder's work is bounded by the bytes a file holds.

**Bit-exact ARM.** Encoder and decoder must compute identical distributions although they evaluate the ARM
on differently sized batches (the whole grid vs one row). :class:`FixedPointArm` uses only operations whose
result does not depend on the batch, the thread count or the BLAS kernel: matrix products of *integers*
held in float64 (exact below 2^53: codes of ≤ 10 bits × activations of ≤ 2^25 × ≤ 64 terms), and
elementwise IEEE operations (each correctly rounded)::

    a_0 = context latents (integers)
    v_i = (A_i·a_{i−1})·Δ_i·2^{−F_{i−1}} + β_i     # A_i: integer codes, Δ_i its step, β_i = bias (float32, exact)
    a_i = clamp(round(ReLU(v_i)·2^F), ±2^25)      # F = 10 fractional bits; F_0 = 0
    μ = round(v_L[0]·64)/64,   s = round(clamp(v_L[1], −6, 8)·16)   # location; log2 scale in 1/16 steps
    b = 2^{⌊s/16⌋}·T[s mod 16]                    # T: the 16 float literals 2^{j/16}, so no libm call

The coder runs these in a C kernel (:mod:`inrkit.backends.cpu_arm`: the same operations, so the same bits; tested
against the NumPy code, which runs where no compiler is). The bit-exactness of the decoded latents thus rests on
constriction's quantisation of the Laplace for given ``(μ, b)`` (deterministic on a machine; its float64 ``exp`` is
the platform's).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inrkit.backends import cpu_arm
from inrkit.encodings.latent_grids import MAX_LATENT, MAX_SIDE, grid_shapes
from inrkit.errors import InrkitError
from inrkit.export import inrz
from inrkit.export.codec import QuantisationPlan, check_table, decode_tensors, dtype_name, encode_tensors, plan_steps
from inrkit.export.inrz import check_numbers, is_int, require
from inrkit.export.quantize import MAX_BITS, MIN_BITS, dequantise, quantise
from inrkit.fields.arm import CODER_PROBABILITY_FLOOR, MAX_LOG2_SCALE, MIN_LOG2_SCALE
from inrkit.fields.latent_field import LatentField, is_latent_config
from inrkit.version import __version__

CODEC = "latent"
VERSION = 4
# The two numbers of each range-coder model's params (inrkit.export.entropy), in a compact table entry's order
MODEL_PARAMETERS = {"adaptive": ("min", "alphabet"), "recent": ("min", "alphabet"), "uniform": ("min", "alphabet"),
                    "laplace": ("mean", "scale"), "gaussian": ("mean", "scale")}
# The file's bytes besides the latents, counted in the rate while training (``--target-bpp``): measured on the
# 36 medium-preset Kodak files at 0.1, 0.3 and 0.6 bpp (600 s encodes), the header (deflated JSON, with the
# file's prefixes and checksums) took 237–279 bytes and the coded synthesis and ARM 0.74–1.20 bytes per
# parameter (mean 1.07).
HEADER_ESTIMATE_BYTES = 260
NETWORK_BYTES_PER_PARAMETER = 1.1
MAX_PIXELS = 1 << 26         # 64 megapixels: the decoder refuses larger images before allocating
LATENTS_PER_WORD = 4096      # the latent stream holds at least one 32-bit word per this many latents
NETWORK_BITS = tuple(range(5, 11))  # bit widths the encoder tries for the synthesis and ARM parameters
# Significant digits of the networks' steps: the 14 steps of a medium header deflate 30-32 bytes smaller than at
# float32's 9 (two kodim03 fields), and the decoded PSNR moves by less than 0.01 dB (256² kodim03 crop, bits 5-8).
STEP_DIGITS = 4
FRACTION_BITS = 10
ACTIVATION_LIMIT = float(1 << 25)
MEAN_STEPS = 64     # μ is a multiple of 1/64
SCALE_STEPS = 16    # log2 b is a multiple of 1/16
_POW2_SIXTEENTHS = np.array([  # 2^(j/16), j = 0 … 15, as decimal literals (read the same on every platform)
    1.0, 1.0442737824274138, 1.0905077326652577, 1.1387886347566916, 1.189207115002721, 1.2418578120734840,
    1.2968395546510096, 1.3542555469368927, 1.4142135623730951, 1.4768261459394993, 1.5422108254079407,
    1.6104903319492543, 1.6817928305074290, 1.7562521603732995, 1.8340080864093424, 1.9152065613971474])


# -- the ARM in exact arithmetic --------------------------------------------------------------------
class FixedPointArm:
    """The ARM of a field whose ARM weights sit on their quantisation grids (module docstring).

    ``steps``: the per-tensor step ``Δ`` of every ARM weight and bias (``arm.hidden.0.weight`` …). Calling it is
    the NumPy reference; :meth:`over`, what the coder uses, runs the C kernel (:mod:`inrkit.backends.cpu_arm`, bit
    for bit the same) where it can be built.
    """

    def __init__(self, arm: torch.nn.Module, steps: dict[str, torch.Tensor]) -> None:
        self.layers = []
        for index, layer in enumerate(arm.layers()):
            prefix = f"hidden.{index}" if index < len(arm.hidden) else "output"
            step = float(steps[f"arm.{prefix}.weight"].reshape(-1)[0])
            codes = np.rint(layer.weight.detach().double().numpy() / step)  # exact: the weights are Δ·q
            self.layers.append((codes.T.copy(), step, layer.bias.detach().double().numpy()))
        self.kernel = cpu_arm.ExactArm.pack(
            [(codes, step * (1.0 if index == 0 else 1.0 / (1 << FRACTION_BITS)), bias)
             for index, (codes, step, bias) in enumerate(self.layers)], FRACTION_BITS, ACTIVATION_LIMIT,
            MEAN_STEPS, SCALE_STEPS, (MIN_LOG2_SCALE, MAX_LOG2_SCALE), _POW2_SIXTEENTHS) if cpu_arm.available() else None

    def __call__(self, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, n_context)`` integer latents (float64) → ``(μ, b)``, each ``(N,)`` float64. In-place NumPy
        operations, the same IEEE operations in the same order as the formula (a decoder calls this once per row);
        after the ReLU only the upper clamp can act."""
        values, fraction = context, 1.0
        for index, (codes, step, bias) in enumerate(self.layers):
            v = values @ codes
            v *= step * fraction  # step·2^-F: exact (power of two)
            v += bias
            if index == len(self.layers) - 1:
                break
            np.maximum(v, 0.0, out=v)
            v *= float(1 << FRACTION_BITS)
            np.rint(v, out=v)
            values = np.minimum(v, ACTIVATION_LIMIT, out=v)
            fraction = 1.0 / (1 << FRACTION_BITS)
        mean = np.rint(v[:, 0] * MEAN_STEPS) / MEAN_STEPS
        log2_scale = np.minimum(np.maximum(v[:, 1], MIN_LOG2_SCALE), MAX_LOG2_SCALE)
        sixteenths = np.rint(log2_scale * SCALE_STEPS).astype(np.int64)
        scale = np.ldexp(_POW2_SIXTEENTHS[sixteenths % SCALE_STEPS], sixteenths // SCALE_STEPS)
        return mean, scale

    def over(self, buffer: np.ndarray, order: LatentOrder) -> Callable[[slice], tuple[np.ndarray, np.ndarray]]:
        """The ARM over the flat latents ``buffer`` (float64, read at each call) in ``order``: a function from a
        slice of the decoding order to the ``(μ, b)`` of those latents."""
        if self.kernel is None:
            return lambda rows: self(buffer[order.context(rows)])
        return self.kernel.over(buffer, order.positions, order.strides, order.deltas)

    @contextlib.contextmanager
    def ahead(self, buffer: np.ndarray, order: LatentOrder, background: bool
              ) -> Iterator[Callable[[slice], Callable[[], tuple[np.ndarray, np.ndarray]]]]:
        """:meth:`over` as ``start(rows)`` → the function that gives ``(μ, b)``: on the kernel's background thread
        (:meth:`inrkit.backends.cpu_arm.ExactArm.ahead`, with its rule on writing ``buffer``) where there is a
        kernel and ``background``, else predicted at once."""
        if self.kernel is not None and background:
            with self.kernel.ahead(buffer, order.positions, order.strides, order.deltas) as start:
                yield start
            return
        yield cpu_arm.at_once(self.over(buffer, order))


# -- decoding order ---------------------------------------------------------------------------------
@dataclass
class LatentOrder:
    """Where every latent and its context live in one flat zero-padded buffer of all grids, in decoding order.

    ``positions (N,)``: buffer index of the n-th coded latent; ``strides (N,)``: the padded row length of its grid;
    ``row_starts (H_0 + 1,)``: the n of the first latent of each decoding row; ``deltas (n_context, 2)``: the
    context offsets ``(dy, dx)``; ``size``: buffer length; ``slices``: per grid ``(start, padded height, padded
    width, top, side)`` to cut the grids back out.
    """

    positions: np.ndarray
    strides: np.ndarray
    row_starts: np.ndarray
    deltas: np.ndarray
    size: int
    slices: list[tuple[int, int, int, int, int]]

    @classmethod
    def build(cls, shapes: list[tuple[int, int]], offsets: tuple[tuple[int, int], ...]) -> LatentOrder:
        top = max(-dy for dy, _ in offsets)
        side = max(abs(dx) for _, dx in offsets)
        slices, start = [], 0
        for height, width in shapes:
            slices.append((start, height + top, width + 2 * side, top, side))
            start += (height + top) * (width + 2 * side)
        pieces, strides, counts = [], [], []
        for row in range(shapes[0][0]):  # row r of every grid that has one, grids in order, columns left to right
            count = 0
            for (base, _, padded_width, _, _), (height, width) in zip(slices, shapes, strict=True):
                if row < height:
                    first = base + (row + top) * padded_width + side
                    pieces.append(np.arange(first, first + width, dtype=np.int64))
                    strides.append(np.full(width, padded_width, dtype=np.int64))
                    count += width
            counts.append(count)
        row_starts = np.concatenate([[0], np.cumsum(counts)])
        return cls(np.concatenate(pieces), np.concatenate(strides), row_starts, np.array(offsets, dtype=np.int64), start, slices)

    def context(self, rows: slice) -> np.ndarray:
        """``(n, n_context)`` buffer indices of the context of the latents ``rows`` (of the decoding order)."""
        return self.positions[rows, None] + self.deltas[None, :, 0] * self.strides[rows, None] + self.deltas[None, :, 1]

    def grids(self, buffer: np.ndarray, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
        """The ``(h_k, w_k)`` grids held in ``buffer``."""
        out = []
        for (start, padded_height, padded_width, top, side), (height, width) in zip(self.slices, shapes, strict=True):
            plane = buffer[start : start + padded_height * padded_width].reshape(padded_height, padded_width)
            out.append(plane[top : top + height, side : side + width])
        return out

    def fill(self, grids: list[np.ndarray]) -> np.ndarray:
        """A buffer holding ``grids`` (zeros in the padding)."""
        buffer = np.zeros(self.size)
        for (start, padded_height, padded_width, top, side), grid in zip(self.slices, grids, strict=True):
            plane = buffer[start : start + padded_height * padded_width].reshape(padded_height, padded_width)
            plane[top : top + grid.shape[0], side : side + grid.shape[1]] = grid
        return buffer


def _family(max_abs: int) -> Any:
    import constriction

    return constriction.stream.model.QuantizedLaplace(-max_abs, max_abs)


def min_stream_words(n_latents: int) -> int:
    """The fewest 32-bit words a latent stream of ``n_latents`` holds (the padding rule)."""
    return -(-n_latents // LATENTS_PER_WORD)


def encode_latents(grids: list[np.ndarray], arm: FixedPointArm, offsets: tuple[tuple[int, int], ...]
                   ) -> tuple[bytes, int]:
    """``(stream, L)``: the integer ``grids`` coded in decoding order (module docstring)."""
    import constriction

    shapes = [grid.shape for grid in grids]
    order = LatentOrder.build(shapes, offsets)
    buffer = order.fill(grids)
    symbols = buffer[order.positions].astype(np.int32)
    max_abs = max(1, int(np.abs(symbols).max(initial=0)))
    mean, scale = arm.over(buffer, order)(slice(None))
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, _family(max_abs), mean, scale)
    words = encoder.get_compressed()
    padding = max(0, min_stream_words(len(symbols)) - len(words))
    return words.astype("<u4").tobytes() + bytes(4 * padding), max_abs


def decode_latents(stream: bytes, shapes: list[tuple[int, int]], arm: FixedPointArm,
                   offsets: tuple[tuple[int, int], ...], max_abs: int) -> list[np.ndarray]:
    """Inverse of :func:`encode_latents`: the integer grids (float64), decoding row by decoding row.

    A row's latents are decoded in three consecutive runs of the stream: its head (the first latents of grid 0's
    row, about half the row), a neck (the next ``side`` latents, ``side`` the context's reach to the right) and the
    rest. The head of row ``r + 1`` has its whole context once the neck of row ``r`` is decoded, so with more than
    one thread the ARM predicts it (on the kernel's background thread) while the rest of row ``r`` is decoded, and
    predicts the rest of row ``r + 1`` while its head is decoded: about max(ARM, range decoding) instead of their
    sum (on a slow 2-core CPU, 94 and 100 ms for a 768×512 image). The runs decode the same symbols as one call
    per row would, so the file does not depend on it."""
    import constriction

    order = LatentOrder.build(shapes, offsets)
    buffer = np.zeros(order.size)
    family = _family(max_abs)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(stream, dtype="<u4").astype(np.uint32))
    side = max(abs(dx) for _, dx in offsets)
    starts = order.row_starts
    heads = [start + min((end - start) // 2, max(shapes[0][1] - side, 0)) for start, end in itertools.pairwise(starts)]

    def decode(run: slice, mean: np.ndarray, scale: np.ndarray) -> None:
        if run.stop > run.start:
            buffer[order.positions[run]] = decoder.decode(family, mean, scale)

    try:
        with arm.ahead(buffer, order, background=torch.get_num_threads() > 1) as start:
            head = start(slice(starts[0], heads[0]))
            for row in range(len(heads)):
                head_mean, head_scale = head()
                tail = start(slice(heads[row], starts[row + 1]))
                decode(slice(starts[row], heads[row]), head_mean, head_scale)
                tail_mean, tail_scale = tail()
                neck = min(heads[row] + side, starts[row + 1])
                decode(slice(heads[row], neck), tail_mean[: neck - heads[row]], tail_scale[: neck - heads[row]])
                if row + 1 < len(heads):
                    head = start(slice(starts[row + 1], heads[row + 1]))
                decode(slice(neck, starts[row + 1]), tail_mean[neck - heads[row] :], tail_scale[neck - heads[row] :])
    except (ValueError, RuntimeError, AssertionError) as err:
        raise InrkitError(f"latent stream is corrupt ({type(err).__name__})") from None
    return order.grids(buffer, shapes)


# -- network parameters -----------------------------------------------------------------------------
class _Networks(torch.nn.Module):
    """The coded parameters of a latent field (synthesis ``network.*`` and ``arm.*``): what the tensor table lists."""

    def __init__(self, field: LatentField) -> None:
        super().__init__()
        self.network, self.arm = field.network, field.arm


def quantise_networks(field: LatentField, bits: int) -> tuple[LatentField, dict[str, torch.Tensor], QuantisationPlan]:
    """A copy of ``field`` whose synthesis and ARM parameters sit on their per-tensor ``bits``-bit grids
    (MSE-optimal steps, :func:`inrkit.export.quantize.best_step`, rounded to :data:`STEP_DIGITS` significant
    digits); ``(copy, steps, plan)``."""
    import copy

    quantised = copy.deepcopy(field)
    networks = _Networks(quantised)
    plan = QuantisationPlan(bits=bits, scheme="tensor", coder="range")  # range wins on MLP weights; lzma is slow
    steps = {name: torch.tensor([float(f"{float(step[0]):.{STEP_DIGITS}g}")])
             for name, step in plan_steps(networks, plan).items()}
    with torch.no_grad():
        for name, parameter in networks.named_parameters():
            parameter.copy_(dequantise(quantise(parameter, steps[name], bits), steps[name]).reshape(parameter.shape))
    plan.steps = steps
    return quantised, steps, plan


def _integer_grids(field: LatentField) -> list[np.ndarray]:
    return [grid.double().numpy() for grid in field.encoding.integers()]


@torch.no_grad()
def choose_network_bits(field: LatentField, target: torch.Tensor, lmbda: float) -> int:
    """The bit width (of :data:`NETWORK_BITS`) of the synthesis and ARM parameters minimising ``D + λ·R``:
    ``D`` the MSE of the decoded image, ``R`` the ARM's estimate of the latents' bits plus the coded
    networks' bytes, per pixel."""
    pixels = field.height * field.width
    grids = [torch.from_numpy(grid).float() for grid in _integer_grids(field)]
    best, best_cost = NETWORK_BITS[-1], float("inf")
    for bits in NETWORK_BITS:
        quantised, _, plan = quantise_networks(field, bits)
        _, payload = encode_tensors(_Networks(quantised), plan)
        image = quantised.image(grids).clamp(0.0, 1.0)
        rate = (float(quantised.rate_bits(grids, CODER_PROBABILITY_FLOOR)) + 8.0 * len(payload)) / pixels
        cost = float(torch.mean((image - target) ** 2)) + lmbda * rate
        if cost < best_cost:
            best, best_cost = bits, cost
    return best


# -- the file ---------------------------------------------------------------------------------------
@dataclass
class DecodedImage:
    """A decoded latent file: the field (networks and integer latents loaded), its image ``(H, W, C)`` in
    [0, 1] (float32, unclamped), the header (its tensor table in full: :func:`_full_table`)."""

    field: LatentField
    image: torch.Tensor
    header: dict[str, Any]


@dataclass
class CodedField:
    """The coded part of a latent file (:func:`code_field`): everything but the header's signal and metrics."""

    field_config: dict[str, Any]
    bits: int
    table: list[dict[str, Any]]
    payload: bytes  # the networks' coded tensors, then the latents' range-coded stream
    max_abs: int
    stream_length: int


def code_field(field: LatentField, bits: int) -> CodedField:
    """Quantise ``field``'s networks to ``bits`` and code them and the latents (the costly part of :func:`encode`)."""
    quantised, steps, plan = quantise_networks(field, bits)
    table, network_payload = encode_tensors(_Networks(quantised), plan)
    arm = FixedPointArm(quantised.arm, steps)
    stream, max_abs = encode_latents(_integer_grids(field), arm, quantised.arm.offsets)
    config = {key: value for key, value in field.config.items() if key != "optimizer"}  # training only
    return CodedField(config, bits, table, network_payload + stream, max_abs, len(stream))


def pack_file(coded: CodedField, signal: dict[str, Any], metrics: dict[str, Any]) -> bytes:
    """The ``.inrz`` bytes of a :class:`CodedField` with the image description ``signal`` and ``metrics``."""
    header = {
        "inrkit_version": __version__,
        "codec": CODEC,
        "field": coded.field_config,
        "signal": {k: v for k, v in signal.items() if k not in ("source", "options")},
        "metrics": metrics,
        "tensors": [_compact_entry(entry) for entry in coded.table],
        "latent": {"bits": coded.bits, "max_abs": coded.max_abs, "length": coded.stream_length},
    }
    return inrz.pack(header, coded.payload, version=VERSION)


def encode(field: LatentField, bits: int, signal: dict[str, Any], metrics: dict[str, Any]) -> bytes:
    """The ``.inrz`` bytes of ``field`` with its networks at ``bits`` (``signal``: the image description)."""
    return pack_file(code_field(field, bits), signal, metrics)


def _check_config(header: dict[str, Any]) -> tuple[dict[str, Any], LatentField]:
    """The header's latent field config, checked and built on the meta device (nothing allocated)."""
    config = header.get("field")
    require(is_latent_config(config), "header field is not a latent field config")
    check_numbers(config, "header field config")
    encoding = config["encoding"]
    for key in ("height", "width"):
        require(is_int(encoding.get(key), 1, MAX_SIDE), f"header latent grid {key} must be an integer in 1..{MAX_SIDE}")
    require(encoding["height"] * encoding["width"] <= MAX_PIXELS,
            f"header image has {encoding['height'] * encoding['width']:,} pixels, above the limit of {MAX_PIXELS:,}")
    signal = header.get("signal")
    inrz.check_signal(signal)
    require(isinstance(signal, dict) and signal.get("kind") == "image", "a latent file must describe an image")
    require(signal["height"] == encoding["height"] and signal["width"] == encoding["width"]
            and signal["channels"] == config.get("n_output_dims", 3), "header signal size differs from the latent grids'")
    try:
        with torch.device("meta"):
            skeleton = LatentField(config)
    except Exception as err:  # an untrusted config: any failure is a bad file
        reason = str(err) if isinstance(err, InrkitError) else f"{type(err).__name__}: {err}"
        raise InrkitError(f"header field config is invalid ({reason.splitlines()[0][:300]})") from None
    return config, skeleton


def _compact_entry(entry: dict[str, Any]) -> list[Any]:
    """A compact table entry ``[model, p, q, step, length]`` of a weights-codec table entry (module docstring)."""
    params = entry["params"]
    return [params["model"], *(params[key] for key in MODEL_PARAMETERS[params["model"]]), entry["step"], entry["length"]]


def _full_table(table: Any, bits: Any, expected: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """A compact table with what the config (``expected``: its meta-device tensors) and the ``bits`` fix filled
    in: the weights codec's table, for :func:`~inrkit.export.codec.check_table` to check in full."""
    require(is_int(bits, MIN_BITS, MAX_BITS), f"header latent bits must be an integer in {MIN_BITS}..{MAX_BITS}")
    require(isinstance(table, list) and len(table) == len(expected),
            f"header tensor table must list the field config's {len(expected)} tensors")
    full = []
    for entry, (name, tensor) in zip(table, expected.items(), strict=True):
        require(isinstance(entry, list) and len(entry) == 5 and isinstance(entry[0], str) and entry[0] in MODEL_PARAMETERS,
                f"tensor {name}: a table entry must be [model, parameter, parameter, step, length]")
        model, first, second, step, length = entry
        full.append({"name": name, "shape": list(tensor.shape), "dtype": dtype_name(tensor), "storage": "quantized",
                     "bits": bits, "scheme": "tensor", "coder": "range",
                     "params": {"model": model, **dict(zip(MODEL_PARAMETERS[model], (first, second), strict=True))},
                     "step": step, "length": length})
    return full


def decode(header: dict[str, Any], payload: bytes) -> DecodedImage:
    """Rebuild the field and image of a latent file's header and payload; every size is checked first."""
    require(header.get("codec") == CODEC, "header codec is not 'latent'")
    config, skeleton = _check_config(header)
    section = header.get("latent")
    require(isinstance(section, dict), "header has no latent section")
    max_abs, length = section.get("max_abs"), section.get("length")
    require(is_int(max_abs, 1, MAX_LATENT), f"header latent max_abs must be an integer in 1..{MAX_LATENT}")
    require(is_int(length, 0, len(payload)) and length % 4 == 0, "header latent length is invalid")
    shapes = grid_shapes(skeleton.height, skeleton.width, skeleton.encoding.n_levels)
    n_latents = sum(h * w for h, w in shapes)
    require(length >= 4 * min_stream_words(n_latents),
            f"latent stream has {length} bytes, fewer than the {4 * min_stream_words(n_latents)} of {n_latents:,} latents")
    expected = _Networks(skeleton).state_dict()
    table = _full_table(header.get("tensors"), section.get("bits"), expected)
    offsets = check_table(table, expected, set(), frozenset(), len(payload) - length)
    with torch.random.fork_rng(devices=[]):
        field = LatentField(config)
    networks = _Networks(field)
    networks.load_state_dict(decode_tensors(table, offsets, payload[: len(payload) - length], networks.state_dict()))
    steps = {entry["name"]: torch.tensor([entry["step"]]) for entry in table if "step" in entry}
    require(all(f"arm.{name}" in steps for name, _ in field.arm.named_parameters() if name.endswith("weight")),
            "the ARM's weights must be stored with one quantisation step each")
    arm = FixedPointArm(field.arm, steps)
    grids = decode_latents(payload[len(payload) - length :], shapes, arm, field.arm.offsets, max_abs)
    field.encoding.load_integers([torch.from_numpy(grid) for grid in grids])
    with torch.no_grad():
        field.encoding.mode = "exact"
        image = field.image([torch.from_numpy(grid).float() for grid in grids])
    return DecodedImage(field.eval(), image, {**header, "tensors": table})
