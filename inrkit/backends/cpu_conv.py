"""The fast CPU path of the latent synthesis's refinements: 3×3 convolutions of few-channel images with
replicate padding, ``csrc/conv3_cpu.c``.

:func:`conv3x3_replicate` equals ``conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))`` for a ``Conv2d`` of ``C``
to ``C`` channels (``C`` ≤ :data:`MAX_CHANNELS`) on one ``(C, H, W)`` image, differentiable in the image and
the convolution's parameters. oneDNN spends about 10 ms on the forward and backward of a 3-channel
768×512 image on one core; the kernel vectorises rows along the width. The backward gathers the gradient
of the padded image row by row (rows run on threads) and folds its border onto the edges here.
"""

from __future__ import annotations

import ctypes
import functools

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from inrkit.backends import c_kernels

FLAGS = ("-march=native", "-fopenmp-simd")  # this CPU's vectors; the "omp simd" reductions
MAX_CHANNELS = 4
MIN_ROWS_PER_THREAD = 32


@functools.cache
def _library() -> ctypes.CDLL | None:
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    return c_kernels.bind("conv3_cpu", FLAGS, {
        "inrkit_conv3_forward": ([pointer, i64, i64, i64, pointer, pointer, pointer, i64, i64], None),
        "inrkit_conv3_backward": ([pointer, pointer, i64, i64, i64, pointer, pointer, i64, i64, pointer, pointer, i64,
                                   i64], None),
    }, "the fast convolution kernel")


def available() -> bool:
    """Whether the kernel is (or can be) compiled and loaded."""
    return _library() is not None


def supports(conv: nn.Conv2d, image: torch.Tensor) -> bool:
    """Whether :func:`conv3x3_replicate` can run ``conv`` on the ``(C, H, W)`` float32 CPU ``image``."""
    channels = image.shape[0]
    return image.device.type == "cpu" and image.dtype == torch.float32 and conv.weight.dtype == torch.float32 \
        and conv.weight.device.type == "cpu" and tuple(conv.weight.shape) == (channels, channels, 3, 3) \
        and conv.bias is not None and channels <= MAX_CHANNELS and conv.stride == (1, 1) and conv.padding == (0, 0) \
        and conv.dilation == (1, 1) and conv.groups == 1 and available()


class _Conv3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        image, weight, bias = (t.detach().contiguous() for t in (image, weight, bias))
        channels, height, width = image.shape
        out = torch.empty_like(image)
        library = _library()
        c_kernels.run_parallel([functools.partial(
            library.inrkit_conv3_forward, image.data_ptr(), channels, height, width, weight.data_ptr(),
            bias.data_ptr(), out.data_ptr(), begin, end) for begin, end in c_kernels.thread_ranges(height, MIN_ROWS_PER_THREAD)])
        ctx.save_for_backward(image, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, weight = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        channels, height, width = image.shape
        padded = torch.empty(channels, height + 2, width + 2)
        ranges = c_kernels.thread_ranges(height, MIN_ROWS_PER_THREAD)
        padded_ranges = [(0 if index == 0 else begin + 1, end + 1 if index < len(ranges) - 1 else height + 2)
                         for index, (begin, end) in enumerate(ranges)]
        grad_weights = [torch.zeros(weight.shape, dtype=torch.float64) for _ in ranges]
        grad_biases = [torch.zeros(channels, dtype=torch.float64) for _ in ranges]
        library = _library()
        c_kernels.run_parallel([functools.partial(
            library.inrkit_conv3_backward, image.data_ptr(), grad_out.data_ptr(), channels, height, width,
            weight.data_ptr(), padded.data_ptr(), padded_begin, padded_end, grad_weights[index].data_ptr(),
            grad_biases[index].data_ptr(), begin, end)
            for index, ((begin, end), (padded_begin, padded_end)) in enumerate(zip(ranges, padded_ranges, strict=True))])
        padded[:, 1] += padded[:, 0]  # the replicate padding's adjoint: the border onto the edges
        padded[:, height] += padded[:, height + 1]
        padded[:, :, 1] += padded[:, :, 0]
        padded[:, :, width] += padded[:, :, width + 1]
        grad_weight = torch.stack(grad_weights).sum(0).float()
        grad_bias = torch.stack(grad_biases).sum(0).float()
        return padded[:, 1 : height + 1, 1 : width + 1], grad_weight, grad_bias


def conv3x3_replicate(image: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(F.pad(image[None], (1, 1, 1, 1), mode="replicate"))[0]`` for a ``(C, H, W)`` image (:func:`supports`)."""
    return _Conv3.apply(image, conv.weight, conv.bias)
