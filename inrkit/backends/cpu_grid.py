"""The fast CPU path of grid encodings: ``csrc/grid_cpu.c`` (:mod:`inrkit.backends.c_kernels` builds and runs it).

Without a compiler the backend reports itself unavailable and inrkit runs the PyTorch reference (with
one warning).

The lookup is an autograd function: forward writes ``(N, L·F)`` features, backward scatters the
output gradient into a dense gradient of the table (one level per thread: no atomics). It
computes no gradient for the coordinates; ``inrkit.backends.grid_forward`` uses the reference
whenever the coordinates require one.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from inrkit.backends import c_kernels
from inrkit.backends.grid_reference import INTERPOLATIONS, GridEncodingSpec, GridGeometry, active_levels

MIN_POINTS_PER_THREAD = 4096


@functools.cache
def _library() -> ctypes.CDLL | None:
    pointer, i64, i32, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_float
    grid_args = [i32, i32, i32, i32, i32, pointer, pointer, pointer, pointer, pointer]
    return c_kernels.bind("grid_cpu", (), {
        "inrkit_grid_forward": ([pointer, i64, i64, pointer, pointer, *grid_args], None),
        "inrkit_grid_backward": ([pointer, i64, i32, i32, pointer, pointer, *grid_args], None),
        "inrkit_sparse_adam": ([pointer, pointer, pointer, pointer, pointer, i64, i64, f32, f32, f32, f32], None),
    }, "the fast CPU kernel")

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
        c_kernels.run_ranges(lambda begin, end: library.inrkit_grid_forward(x.data_ptr(), begin, end, params.data_ptr(),
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
        c_kernels.run_ranges(lambda begin, end: [library.inrkit_grid_backward(x.data_ptr(), x.shape[0], level, level + 1,
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
    c_kernels.run_ranges(lambda begin, end: library.inrkit_sparse_adam(param.data_ptr(), grad.data_ptr(), exp_avg.data_ptr(),
                                                              exp_avg_sq.data_ptr(), steps.data_ptr(), begin, end, lr,
                                                              beta1, beta2, eps),
                param.numel(), 1 << 16)
