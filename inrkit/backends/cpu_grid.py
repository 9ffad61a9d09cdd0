"""The fast CPU path: ``csrc/grid_cpu.c`` compiled on first use and called through ctypes.

The kernel is built with the system C compiler (``cc``, or ``$CC``) into
``$INRKIT_CACHE`` (default ``~/.cache/inrkit``), keyed by a hash of its source and flags, and written
atomically, so concurrent processes never load a half-written library. Without a compiler the
backend reports itself unavailable and inrkit runs the PyTorch reference (with one warning).

The lookup is an autograd function: forward writes ``(N, L·F)`` features, backward scatters the
output gradient into a dense gradient of the table (one level per thread: no atomics). It
computes no gradient for the coordinates; ``inrkit.backends.grid_forward`` uses the reference
whenever the coordinates require one.

Parallelism: ctypes releases the GIL during a call, so each call is split into ranges (points,
levels or entries) run on ``torch.get_num_threads()`` Python threads. The kernel has no OpenMP: a
second OpenMP runtime next to PyTorch's makes the two spin against each other.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from inrkit.backends.grid_reference import INTERPOLATIONS, GridEncodingSpec, GridGeometry, active_levels
from inrkit.files import atomic_path

SOURCE = Path(__file__).with_name("csrc") / "grid_cpu.c"
FLAGS = ("-O3", "-std=c11", "-fPIC", "-shared")
MIN_POINTS_PER_THREAD = 4096


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$INRKIT_CACHE`` or ``~/.cache/inrkit``."""
    return Path(os.environ.get("INRKIT_CACHE", Path.home() / ".cache" / "inrkit")) / "kernels"


def _compile() -> Path:
    source = SOURCE.read_bytes()
    compiler = os.environ.get("CC", "cc")
    key = hashlib.sha256(source + " ".join((compiler, *FLAGS)).encode()).hexdigest()[:16]
    target = cache_dir() / f"grid_cpu-{key}.so"
    if target.is_file():
        return target
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    with atomic_path(target, ".so") as built:
        built.unlink()  # the compiler creates it, with its usual (not mkstemp's 0600) permissions
        result = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"compiling {SOURCE.name} failed: {result.stderr.strip().splitlines()[-1:]}")
    return target


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        library = ctypes.CDLL(str(_compile()))
    except OSError as err:
        warnings.warn(f"inrkit: the fast CPU kernel is unavailable ({err}); using the PyTorch reference", stacklevel=3)
        return None
    pointer, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
    grid_args = [i32, i32, i32, i32, i32, pointer, pointer, pointer, pointer, pointer]
    library.inrkit_grid_forward.argtypes = [pointer, i64, i64, pointer, pointer, *grid_args]
    library.inrkit_grid_backward.argtypes = [pointer, i64, i32, i32, pointer, pointer, *grid_args]
    library.inrkit_sparse_adam.argtypes = [pointer, pointer, pointer, pointer, pointer, i64, i64, f32, f32, f32, f32]
    return library


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inrkit-grid")


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    bounds = [total * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts) if bounds[k] < bounds[k + 1]]


def _run_ranges(call: Callable[[int, int], None], total: int, min_size: int = 1) -> None:
    """Run ``call(begin, end)`` over ``[0, total)`` split across ``torch.get_num_threads()`` threads."""
    parts = max(1, min(torch.get_num_threads(), total // max(min_size, 1)))
    ranges = _split(total, parts)
    if len(ranges) <= 1:
        call(0, total)
        return
    for future in [_pool(parts).submit(call, begin, end) for begin, end in ranges]:
        future.result()


def available() -> bool:
    """Whether the kernel is (or can be) compiled and loaded."""
    return _library() is not None


@functools.lru_cache(maxsize=64)
def _tables(geometry: GridGeometry) -> tuple[np.ndarray, ...]:
    """Per-level arrays the kernel reads (kept alive by the cache)."""
    return (np.asarray(geometry.scales, dtype=np.float32), np.asarray(geometry.resolutions, dtype=np.int64),
            np.asarray(geometry.sizes, dtype=np.int64), np.asarray(geometry.offsets, dtype=np.int64),
            np.asarray(geometry.hashed, dtype=np.uint8))


def _grid_args(spec: GridEncodingSpec) -> list:
    g = spec.geometry
    tables = _tables(g)
    return [g.n_input_dims, g.n_levels, g.n_features_per_level, INTERPOLATIONS.index(spec.interpolation),
            active_levels(g.n_levels, spec.max_level), *(t.ctypes.data for t in tables)]


class _GridLookup(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec) -> torch.Tensor:
        x = x.contiguous()
        out = torch.empty(x.shape[0], spec.geometry.n_levels * spec.geometry.n_features_per_level)
        args = _grid_args(spec)
        library = _library()
        _run_ranges(lambda begin, end: library.inrkit_grid_forward(x.data_ptr(), begin, end, params.data_ptr(),
                                                                   out.data_ptr(), *args),
                    x.shape[0], MIN_POINTS_PER_THREAD)
        ctx.save_for_backward(x)
        ctx.spec = GridEncodingSpec(spec.geometry, spec.interpolation, spec.max_level)
        ctx.n_params = params.numel()
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[None, torch.Tensor | None, None]:
        if not ctx.needs_input_grad[1]:
            return None, None, None
        (x,) = ctx.saved_tensors
        grad_out = grad_out.contiguous().float()
        grad_params = torch.zeros(ctx.n_params)
        args = _grid_args(ctx.spec)
        library = _library()
        n_levels = ctx.spec.geometry.n_levels
        # interleave levels so that each thread gets coarse and fine ones
        order = list(range(n_levels))
        _run_ranges(lambda begin, end: [library.inrkit_grid_backward(x.data_ptr(), x.shape[0], level, level + 1,
                                                                     grad_out.data_ptr(), grad_params.data_ptr(), *args)
                                        for level in order[begin:end]], n_levels)
        return None, grad_params, None


def grid_forward(x: torch.Tensor, params: torch.Tensor, spec: GridEncodingSpec) -> torch.Tensor:
    """Grid lookup ``x (N, D) -> (N, L·F)`` on the CPU (float32, contiguous ``params``)."""
    if x.shape[0] == 0:
        return x.new_zeros(0, spec.geometry.n_levels * spec.geometry.n_features_per_level)
    return _GridLookup.apply(x.float(), params.contiguous(), spec)


def sparse_adam_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                 steps: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    """In-place tcnn Adam step on a contiguous float32 CPU tensor (zero-gradient entries untouched)."""
    grad = grad.contiguous()
    library = _library()
    _run_ranges(lambda begin, end: library.inrkit_sparse_adam(param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(),
                                                              exp_avg_sq.data_ptr(), steps.data_ptr(), begin, end, lr,
                                                              beta1, beta2, eps),
                param.numel(), 1 << 16)
