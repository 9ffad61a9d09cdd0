"""The forward of N stacked SIRENs as batched matmuls over feature-major activations (the compiled fast path).

For a plain SIREN field (``Identity`` encoding, ``Siren`` network, no output activation) the N fields' forward is
written directly on the stacked tensors, activations kept feature-major ``h (N, C, B)``:

    h_0 = (scale·x + offset)ᵀ                                 x (N, B, in): the Identity encoding
    h_1 = sin(Σ_k ω_0·W_0[:, :, k] ⊗ h_0[:, k, :] + ω_0·b_0)   the first layer (in ≤ 4) as broadcast products
    h_{i+1} = sin(ω_i·W_i h_i + ω_i·b_i)                       torch.baddbmm: (N, out, in) @ (N, in, B)
    y = ((W_o h_L + b_o)ᵀ − lo) / (hi − lo)                    the field's output range map

(``+ b_i`` instead of ``+ ω_i·b_i`` with ``omega_on_bias`` false). This is the function
``vmap(functional_call(field))`` computes (PeriodicLayer: ``F.linear(x, ω·W, ω·b)``, then ``sin``), only its
matmuls sum in another order: ``(N, B, in) @ (N, in, out)`` there, ``(N, out, in) @ (N, in, B)`` here, where the
long axis ``B`` (the pixels) is the GEMM's columns, and the first layer's few input columns are products that
torch.compile fuses with the sine (a matmul of inner size 2 wastes most of a GEMM kernel; its weight gradient
becomes a fused reduction). Compiled, a step of 64 SIRENs of 3×32 on 1,024 pixels took 4-8 % less CPU time than
the compiled ``vmap`` (0.474 against 0.514 and 0.506 against 0.528 ms per field, one thread, interleaved blocks
of steps, medians; BENCHMARKS.md, "Fitting many fields"); writing the first layer as a matmul too made it slower.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from inrkit.encodings.frequency import Identity
from inrkit.fields.layers import PeriodicLayer
from inrkit.fields.mlp import CoordinateMLP

POINTWISE_INPUTS = 4  # a first layer with at most this many inputs runs as broadcast products, not a matmul
StackedForward = Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


def _plain_siren_layers(field: nn.Module) -> list[PeriodicLayer] | None:
    """The sine layers of ``field`` when it is a plain SIREN this module covers exactly, else None."""
    encoding, network = getattr(field, "encoding", None), getattr(field, "network", None)
    if type(encoding) is not Identity or not isinstance(network, CoordinateMLP):
        return None
    if network.time_dim is not None or network.is_complex or getattr(field, "output_activation", None) != "None":
        return None
    layers = list(network.hidden)
    if not layers or not all(type(layer) is PeriodicLayer and layer.activation == "sine" and not layer.is_resfield
                             for layer in layers):
        return None
    if not all(p.dtype == torch.float32 for p in field.parameters()):
        return None
    return layers


def stacked_siren_forward(field: nn.Module) -> StackedForward | None:
    """``(params, buffers, coords (N, B, in)) -> (N, B, out)`` for N stacked copies of ``field`` (params by the
    field's own names, each ``(N, *shape)``), or None when ``field`` is not a plain SIREN (module docstring)."""
    layers = _plain_siren_layers(field)
    if layers is None:
        return None
    encoding = field.encoding
    omegas = [(float(layer.omega_0), bool(layer.omega_on_bias)) for layer in layers]
    low, span = float(field._out_low), float(field._out_span)

    def forward(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        h = coords.transpose(1, 2)
        if encoding.scale != 1.0 or encoding.offset != 0.0:
            h = encoding.scale * h + encoding.offset
        for i, (omega, on_bias) in enumerate(omegas):
            weight, bias = params[f"network.hidden.{i}.linear.weight"], params[f"network.hidden.{i}.linear.bias"]
            bias = (omega * bias if on_bias else bias).unsqueeze(-1)
            if i == 0 and h.shape[1] <= POINTWISE_INPUTS:
                scaled = omega * weight
                z = scaled[:, :, 0:1] * h[:, 0:1, :]
                for k in range(1, h.shape[1]):
                    z = z + scaled[:, :, k:k + 1] * h[:, k:k + 1, :]
                z = z + bias
            else:
                z = torch.baddbmm(bias, omega * weight, h)
            h = torch.sin(z)
        raw = torch.baddbmm(params["network.output.bias"].unsqueeze(-1), params["network.output.weight"], h)
        return (raw if low == 0.0 and span == 1.0 else (raw - low) / span).transpose(1, 2)

    return forward
