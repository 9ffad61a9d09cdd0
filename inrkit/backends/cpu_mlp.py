"""The fast CPU path of small MLPs over many points: ``csrc/mlp_cpu.c``.

Two users, both in latent fields:

* :func:`arm_bits` gives the same number as :meth:`inrkit.fields.arm.ARM.reference_bits` (the
  specification): the bits of quantised latent grids under the ARM's Laplace, summed. When a gradient is
  wanted it computes it in the forward call (for the loss ``Σ bits``) and the backward pass only scales it
  by the upstream gradient. Grids are cut into row ranges, one per thread; a latent's context gradient
  lands in the rows above it, so the ranges run in two phases (every range without its first
  context rows, then those rows), whose writes do not overlap.
* :func:`mlp_channels_first` is :meth:`inrkit.fields.synthesis.Synthesis.channels_first`: ``(K, N)`` features
  through ReLU layers and a linear output to ``(C, N)``; its backward recomputes the activations block
  by block.

The references keep every layer's ``(width, N)`` activations and are memory-bound; the kernel runs blocks
of 16 points through the layers while their activations stay in cache. On a 768×512 image (one core) the
ARM's forward and backward take 35 ms instead of 90 ms. Results depend on the thread count only through
the order of float sums (tested against the references).
"""

from __future__ import annotations

import ctypes
import functools
import math

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from inrkit.backends import c_kernels

FLAGS = ("-march=native", "-ffast-math", "-fopenmp-simd")  # this CPU's vectors, vector exp/log (glibc's libmvec)
LANES = 16  # points per block, and floats per parameter in a workspace (mlp_cpu.c)
MAX_FEATURES, MAX_HIDDEN = 256, 8  # mlp_cpu.c's buffer sizes
MIN_ROWS_PER_THREAD = 16
MIN_POINTS_PER_THREAD = 4096


@functools.cache
def _library() -> ctypes.CDLL | None:
    pointer, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
    mlp_args = [pointer, i64, i64, i64, i32, i32, i32, i32, pointer]
    return c_kernels.bind("mlp_cpu", FLAGS, {
        "inrkit_arm_rate": ([pointer, i64, i64, i64, i64, i32, pointer, i32, i32, pointer, ctypes.c_float, pointer,
                             pointer, pointer], ctypes.c_double),
        "inrkit_mlp_forward": ([*mlp_args, pointer], None),
        "inrkit_mlp_backward": ([*mlp_args, pointer, pointer, pointer, pointer], None),
    }, "the fast MLP kernel")


def available() -> bool:
    """Whether the kernel is (or can be) compiled and loaded."""
    return _library() is not None


def supports(layers: list[torch.nn.Linear], tensors: list[torch.Tensor]) -> bool:
    """Whether the kernel can run an MLP of these ``layers`` (all hidden ones of one width) on ``tensors``:
    float32 CPU tensors and sizes within its buffers, and the kernel compiled."""
    sizes = [layers[0].in_features, *(layer.out_features for layer in layers)]
    same_width = len({layer.out_features for layer in layers[:-1]}) <= 1
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and same_width \
        and max(sizes) <= MAX_FEATURES and 1 <= len(layers) - 1 <= MAX_HIDDEN and available()


def _phases(height: int, context_rows: int) -> list[list[tuple[int, int]]]:
    """Row ranges of a grid for the threads, in two phases whose gradient writes do not overlap (module docstring)."""
    ranges = c_kernels.thread_ranges(height, max(MIN_ROWS_PER_THREAD, 2 * context_rows))
    if len(ranges) == 1:
        return [ranges]
    first = [(begin + context_rows, end) for begin, end in ranges]
    second = [(begin, begin + context_rows) for begin, _ in ranges]
    return [first, second]


def _weights(layers: list[torch.nn.Linear]) -> list[torch.Tensor]:
    """The layers' parameters in the kernel's order: each layer's weight, then its bias."""
    return [p for layer in layers for p in (layer.weight, layer.bias)]


def _packed(layers: list[torch.nn.Linear]) -> torch.Tensor:
    """:func:`_weights` packed as the kernel reads them (weights row-major)."""
    return torch.cat([t.detach().float().reshape(-1) for t in _weights(layers)])


def _rate(grids: list[torch.Tensor], offsets: np.ndarray, layers: list[torch.nn.Linear], min_log2_p: float,
          with_grad: bool) -> tuple[float, list[torch.Tensor] | None, torch.Tensor | None]:
    """``(bits, grid gradients, packed parameter gradient)`` of ``Σ bits``, each latent's log2 probability
    clamped below at ``min_log2_p``; gradients only ``with_grad``."""
    library = _library()
    params = _packed(layers)
    width, n_hidden = layers[0].out_features, len(layers) - 1
    context_rows = int(-offsets[:, 0].min())
    grads = [torch.zeros_like(grid) for grid in grids] if with_grad else None
    results: list[float] = []
    param_grads: list[torch.Tensor] = []  # per call, summed in a fixed order
    workspaces: list[torch.Tensor] = []  # alive until the calls that write them have run
    for index, grid in enumerate(grids):
        height, grid_width = grid.shape
        for phase in _phases(height, context_rows):
            calls = []
            for begin, end in phase:
                pointers = [None, None, None]
                if with_grad:
                    param_grads.append(torch.zeros(params.numel(), dtype=torch.float64))
                    workspaces.append(torch.empty(params.numel() * LANES))
                    pointers = [grads[index].data_ptr(), param_grads[-1].data_ptr(), workspaces[-1].data_ptr()]
                calls.append(functools.partial(
                    library.inrkit_arm_rate, grid.data_ptr(), height, grid_width, begin, end, len(offsets),
                    offsets.ctypes.data, width, n_hidden, params.data_ptr(), min_log2_p, *pointers))
            results.extend(c_kernels.run_parallel(calls))
    param_grad = torch.stack(param_grads).sum(0).float() if with_grad else None
    return float(sum(results)), grads, param_grad


def _split_params(packed: torch.Tensor, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """A packed parameter gradient cut into the shapes of ``weights``."""
    return [g.reshape(w.shape) for g, w in zip(packed.split([w.numel() for w in weights]), weights, strict=True)]


class _ArmRate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, offsets: np.ndarray, layers: list[torch.nn.Linear], min_log2_p: float, n_grids: int,
                *tensors: torch.Tensor) -> torch.Tensor:
        grids = [t.detach().contiguous() for t in tensors[:n_grids]]
        bits, grid_grads, param_grad = _rate(grids, offsets, layers, min_log2_p, with_grad=True)
        assert grid_grads is not None and param_grad is not None
        ctx.grads = [*grid_grads, *_split_params(param_grad, list(tensors[n_grids:]))]
        return torch.tensor(bits)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_bits: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grads = [g * grad_bits if needed else None for g, needed in zip(ctx.grads, ctx.needs_input_grad[4:], strict=True)]
        return (None, None, None, None, *grads)


def arm_bits(grids: list[torch.Tensor], offsets: tuple[tuple[int, int], ...], layers: list[torch.nn.Linear],
             floor: float) -> torch.Tensor:
    """Total bits of the ``(h_k, w_k)`` grids under an ARM with causal context ``offsets`` and linear
    ``layers`` (ReLU between them; the last gives μ and the raw log2 scale), each latent's probability
    clamped below at ``floor``: a scalar, differentiable in the grids and the layers' parameters. Float32 CPU
    tensors (:func:`supports`)."""
    table = np.ascontiguousarray(np.array(offsets, dtype=np.int32).reshape(-1, 2))
    weights = _weights(layers)
    min_log2_p = math.log2(floor)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*grids, *weights)):
        return _ArmRate.apply(table, layers, min_log2_p, len(grids), *grids, *weights)
    bits, _, _ = _rate([g.contiguous() for g in grids], table, layers, min_log2_p, with_grad=False)
    return torch.tensor(bits)


def _mlp_shape(layers: list[torch.nn.Linear]) -> tuple[int, int, int, int]:
    """``(n_in, width, n_hidden, n_out)`` as the kernel takes them."""
    return layers[0].in_features, layers[0].out_features, len(layers) - 1, layers[-1].out_features


class _Mlp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layers: list[torch.nn.Linear], features: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        features = features.detach().contiguous()
        params = _packed(layers)
        shape = _mlp_shape(layers)
        n = features.shape[1]
        out = torch.empty(shape[3], n)
        library = _library()
        c_kernels.run_ranges(lambda begin, end: library.inrkit_mlp_forward(
            features.data_ptr(), n, begin, end, *shape, params.data_ptr(), out.data_ptr()), n, MIN_POINTS_PER_THREAD)
        ctx.save_for_backward(features, params)
        ctx.shape, ctx.weights = shape, weights
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        features, params = ctx.saved_tensors
        grad_out = grad_out.contiguous().float()
        n = features.shape[1]
        grad_features = torch.empty_like(features) if ctx.needs_input_grad[1] else None
        ranges = c_kernels.thread_ranges(n, MIN_POINTS_PER_THREAD)
        param_grads = [torch.zeros(params.numel(), dtype=torch.float64) for _ in ranges]
        workspaces = [torch.empty(params.numel() * LANES) for _ in ranges]
        library = _library()
        c_kernels.run_parallel([functools.partial(
            library.inrkit_mlp_backward, features.data_ptr(), n, begin, end, *ctx.shape, params.data_ptr(),
            grad_out.data_ptr(), grad_features.data_ptr() if grad_features is not None else None,
            param_grads[index].data_ptr(), workspaces[index].data_ptr()) for index, (begin, end) in enumerate(ranges)])
        weight_grads = _split_params(torch.stack(param_grads).sum(0).float(), list(ctx.weights))
        return (None, grad_features, *weight_grads)


def mlp_channels_first(features: torch.Tensor, layers: list[torch.nn.Linear]) -> torch.Tensor:
    """``(K, N)`` features through ``layers`` (ReLU after all but the last, all hidden ones of one width) →
    ``(C, N)``; differentiable in the features and the layers' parameters. Float32 CPU tensors (:func:`supports`)."""
    return _Mlp.apply(layers, features, *_weights(layers))
