"""The fast CPU path of the latents' noisy soft rounding while training: ``csrc/softround_cpu.c``.

:func:`soft_round_noise` equals :func:`inrkit.encodings.latent_grids.quantise_latent` in mode ``"noise"``
for a given noise draw ``ε`` (drawn by the caller from its generator, so runs stay reproducible): one pass
computes the value and its derivative, which the backward pass multiplies by the upstream gradient, where
PyTorch runs about a dozen elementwise passes each way (13 ms of a step on the 524k latents of a 768×512
image, one core; the kernel: about 2 ms).
"""

from __future__ import annotations

import ctypes
import functools

import torch

from inrkit.backends import c_kernels

FLAGS = ("-march=native", "-ffast-math", "-fopenmp-simd")  # this CPU's vectors, vector tanh (glibc's libmvec)
MIN_VALUES_PER_THREAD = 1 << 15


@functools.cache
def _library() -> ctypes.CDLL | None:
    pointer, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    return c_kernels.bind("softround_cpu", FLAGS, {
        "inrkit_soft_round_noise": ([pointer, pointer, i64, i64, f32, f32, f32, pointer, pointer], None),
    }, "the fast soft-rounding kernel")


def available() -> bool:
    """Whether the kernel is (or can be) compiled and loaded."""
    return _library() is not None


def supports(values: torch.Tensor) -> bool:
    """Whether :func:`soft_round_noise` can run on ``values`` (float32, CPU)."""
    return values.device.type == "cpu" and values.dtype == torch.float32 and available()


class _SoftRoundNoise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: torch.Tensor, noise: torch.Tensor, limit: float, temperature: float, sigma: float
                ) -> torch.Tensor:
        values, noise = values.detach().contiguous(), noise.contiguous()
        out, derivative = torch.empty_like(values), torch.empty_like(values)
        library = _library()
        c_kernels.run_ranges(lambda begin, end: library.inrkit_soft_round_noise(
            values.data_ptr(), noise.data_ptr(), begin, end, limit, temperature, sigma, out.data_ptr(),
            derivative.data_ptr()), values.numel(), MIN_VALUES_PER_THREAD)
        ctx.save_for_backward(derivative)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        (derivative,) = ctx.saved_tensors
        return grad * derivative, None, None, None, None


def soft_round_noise(values: torch.Tensor, noise: torch.Tensor, limit: float, temperature: float,
                     sigma: float) -> torch.Tensor:
    """``s_T(s_T(clamp(v, ±limit)) + σ·noise)``, differentiable in ``values`` (:func:`supports`)."""
    return _SoftRoundNoise.apply(values, noise, float(limit), float(temperature), float(sigma))
