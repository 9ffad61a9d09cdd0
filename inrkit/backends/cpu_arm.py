"""The fast CPU path of the latent codec's fixed-point ARM: ``csrc/arm_exact_cpu.c``.

:class:`ExactArm` gathers the context of a range of latents of the decoding order from the flat latent buffer and
runs :class:`inrkit.export.latent_codec.FixedPointArm`'s integer-exact MLP on them in one C call, bit for bit the
NumPy reference (the kernel's comment says why). A decoder calls it twice per row of the image (1,024 times for a
768×512 image), where the reference runs about twenty NumPy passes per row plus a gather of the contexts, and on a
background thread (:meth:`ExactArm.ahead`), so that it predicts one part of a row while the range decoder decodes
another.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from inrkit.backends import c_kernels

# -ffp-contract=off: v·m + β must be two roundings, as in NumPy (the kernel's comment); -march=native only widens
# the exact integer dot products.
FLAGS = ("-march=native", "-ffp-contract=off", "-fopenmp-simd", "-pthread")
MAX_WIDTH = 64  # the kernel's buffers (ARM_SCHEMA's largest n_context and n_neurons)


@functools.cache
def _library() -> ctypes.CDLL | None:
    pointer, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    call = [pointer, pointer, pointer, pointer, i64, i64, i64, pointer, pointer, pointer, pointer, f64, f64, f64, f64,
            f64, f64, pointer, pointer, pointer]
    return c_kernels.bind("arm_exact_cpu", FLAGS, {
        "inrkit_arm_exact": (call, None),
        "inrkit_arm_worker_start": ([], pointer),
        "inrkit_arm_worker_submit": ([pointer, *call], None),
        "inrkit_arm_worker_wait": ([pointer], None),
        "inrkit_arm_worker_stop": ([pointer], None),
    }, "the fast fixed-point ARM kernel")


def available() -> bool:
    """Whether the kernel is (or can be) compiled and loaded."""
    return _library() is not None


def at_once(predict: Callable[[slice], tuple[np.ndarray, np.ndarray]]
            ) -> Callable[[slice], Callable[[], tuple[np.ndarray, np.ndarray]]]:
    """``predict`` in the form of :meth:`ExactArm.ahead`'s ``start``, predicting at once (no thread)."""
    def start(rows: slice) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        result = predict(rows)
        return lambda: result

    return start


@dataclass(frozen=True)
class ExactArm:
    """An ARM packed for the kernel. ``layers``: per layer ``(codes (in, out), m, bias (out,))``, ``m`` the layer's
    step times ``2^-F`` of its input; the constants as in ``FixedPointArm`` (``2^F``, the activations' limit, μ's
    and log2 b's steps per unit, log2 b's range, the 16 values 2^(j/16))."""

    widths: np.ndarray
    codes: np.ndarray
    multipliers: np.ndarray
    biases: np.ndarray
    constants: tuple[float, ...]
    pow2_fraction: np.ndarray

    @classmethod
    def pack(cls, layers: list[tuple[np.ndarray, float, np.ndarray]], fraction_bits: int, limit: float,
             mean_steps: int, scale_steps: int, log2_range: tuple[float, float], pow2_fraction: np.ndarray) -> ExactArm:
        widths = np.array([layers[0][0].shape[0]] + [codes.shape[1] for codes, _, _ in layers], dtype=np.int64)
        if widths.max() > MAX_WIDTH:
            raise ValueError(f"ARM widths above {MAX_WIDTH}")
        return cls(widths, np.concatenate([np.asarray(c, dtype=np.float64).reshape(-1) for c, _, _ in layers]),
                   np.array([m for _, m, _ in layers], dtype=np.float64),
                   np.concatenate([np.asarray(b, dtype=np.float64).reshape(-1) for _, _, b in layers]),
                   (float(1 << fraction_bits), limit, float(mean_steps), float(scale_steps), *log2_range),
                   np.ascontiguousarray(pow2_fraction, dtype=np.float64))

    def over(self, buffer: np.ndarray, positions: np.ndarray, strides: np.ndarray, deltas: np.ndarray
             ) -> Callable[[slice], tuple[np.ndarray, np.ndarray]]:
        """The ARM over one latent buffer: a function from a slice ``rows`` of the decoding order to ``(μ, b)``,
        each ``(n,)`` float64. ``buffer (size,)`` float64 integer latents (read at each call: a decoder fills it
        between calls), ``positions, strides (N,)`` int64 and ``deltas (n_context, 2)`` int64 as in
        :class:`~inrkit.export.latent_codec.LatentOrder`."""
        arguments = self._arguments(buffer, positions, strides, deltas)
        function = _library().inrkit_arm_exact

        def predict(rows: slice) -> tuple[np.ndarray, np.ndarray]:
            mean, scale, call = arguments(rows)
            function(*call)
            return mean, scale

        return predict

    @contextlib.contextmanager
    def ahead(self, buffer: np.ndarray, positions: np.ndarray, strides: np.ndarray, deltas: np.ndarray
              ) -> Iterator[Callable[[slice], Callable[[], tuple[np.ndarray, np.ndarray]]]]:
        """:meth:`over` on a background thread: ``start(rows)`` starts the prediction of ``rows`` and returns the
        function that waits for it and gives ``(μ, b)``. One prediction runs at a time (a second ``start`` waits for
        the first); meanwhile the caller may write only buffer cells outside the running prediction's contexts.
        The thread ends when the block does. Where no thread can be started, ``start`` predicts at once."""
        library = _library()
        arguments = self._arguments(buffer, positions, strides, deltas)
        worker = library.inrkit_arm_worker_start()
        if not worker:
            yield at_once(self.over(buffer, positions, strides, deltas))
            return

        def start(rows: slice) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
            mean, scale, call = arguments(rows)
            library.inrkit_arm_worker_submit(worker, *call)

            def wait() -> tuple[np.ndarray, np.ndarray]:
                library.inrkit_arm_worker_wait(worker)
                return mean, scale

            return wait

        try:
            yield start
        finally:
            library.inrkit_arm_worker_stop(worker)  # after the running prediction, whose arrays ``start`` holds

    def _arguments(self, buffer: np.ndarray, positions: np.ndarray, strides: np.ndarray, deltas: np.ndarray
                   ) -> Callable[[slice], tuple[np.ndarray, np.ndarray, list]]:
        """A function from ``rows`` to ``(μ, b, the kernel call's arguments)``, ``μ`` and ``b`` new arrays the
        call fills; the arrays the arguments point to live as long as the function."""
        for array, dtype in ((buffer, np.float64), (positions, np.int64), (strides, np.int64), (deltas, np.int64)):
            if array.dtype != dtype or not array.flags.c_contiguous:
                raise ValueError("the ARM kernel needs contiguous float64 latents and int64 indices")
        arrays = (buffer, positions, strides, deltas, self.widths, self.codes, self.multipliers, self.biases)
        pointers = [array.ctypes.data for array in arrays]
        n_layers, table = len(self.multipliers), self.pow2_fraction.ctypes.data

        def arguments(rows: slice) -> tuple[np.ndarray, np.ndarray, list]:
            begin, end, _ = rows.indices(len(arrays[1]))
            end = max(end, begin)
            mean, scale = np.empty(end - begin), np.empty(end - begin)
            return mean, scale, [*pointers[:4], begin, end, n_layers, *pointers[4:], *self.constants, table,
                                 mean.ctypes.data, scale.ctypes.data]

        return arguments
