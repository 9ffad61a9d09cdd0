"""SL²A-INR (Heidari, Rezaeian et al., ICCV 2025): a learnable Chebyshev first layer whose features
modulate low-rank ReLU layers.

Forward, for coordinates ``x`` of shape ``(N, d)`` (official ``SL2A_INR.py``)::

    z1 = LayerNorm( Σ_i Σ_k a[i, :, k] · T_k(tanh x_i) )        # (N, W), Chebyshev of the 1st kind
    h  = z1
    h  = ReLU( (z1 ⊙ h) @ L_l @ R_l + b_l )    for l = 1..n_fusion   # low-rank W = L_l R_l
    y  = W_o (z1 ⊙ h) + b_o

so the first fusion layer sees ``z1 ⊙ z1``. ``T_k`` is evaluated by the recurrence
``T_0 = 1, T_1 = u, T_{k+1} = 2u·T_k − T_{k−1}`` rather than ``cos(k·arccos u)``: the values are
the same, and the gradient stays finite where ``tanh`` saturates (REFERENCE §1.8).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from inrkit.errors import ConfigError, Rule, check_section

# The network section of an SL2A field: at least one fusion layer after the Chebyshev layer.
NETWORK_SCHEMA = {"n_neurons": Rule("int", 1, 1 << 16), "n_hidden_layers": Rule("int", 2, 1024),
                  "degree": Rule("int", 1, 1 << 16), "rank": Rule("int", 1, 1 << 16)}


def chebyshev_basis(u: torch.Tensor, degree: int) -> torch.Tensor:
    """``T_0..T_degree`` at ``u``: ``(N, d) -> (N, d, degree+1)``."""
    terms = [torch.ones_like(u), u]
    for _ in range(2, degree + 1):
        terms.append(2.0 * u * terms[-1] - terms[-2])
    return torch.stack(terms[: degree + 1], dim=-1)


class ChebyshevLayer(nn.Module):
    """``y[n, o] = Σ_{i,k} T_k(tanh x[n, i]) · a[i, o, k]``; no bias.

    Coefficients ``a`` of shape ``(in, out, degree+1)`` are Xavier-uniform over the 3-D tensor,
    i.e. ``U(±√(6/((in+out)(degree+1))))``.
    """

    def __init__(self, in_features: int, out_features: int, degree: int) -> None:
        super().__init__()
        self.degree = int(degree)
        self.coefficients = nn.Parameter(torch.empty(in_features, out_features, self.degree + 1))
        nn.init.xavier_uniform_(self.coefficients)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        basis = chebyshev_basis(torch.tanh(x), self.degree)  # (N, in, K+1)
        return torch.einsum("nik,iok->no", basis, self.coefficients)


class LowRankReLULayer(nn.Module):
    """``y = ReLU(x @ L @ R + b)`` with ``L: (in, rank)``, ``R: (rank, out)``.

    Initialisation as the official code: Kaiming-uniform(a=√5) on each factor (bound ``1/√rank``
    for ``L``, ``1/√out`` for ``R``, from PyTorch's fan-in of the stored layout), bias ``U(±1/√rank)``.
    """

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.left = nn.Parameter(torch.empty(in_features, rank))
        self.right = nn.Parameter(torch.empty(rank, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        nn.init.kaiming_uniform_(self.left, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.right, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(rank)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu((x @ self.left) @ self.right + self.bias)


class SL2ANet(nn.Module):
    """SL²A network ``(N, d) -> (N, out)``. Config keys: ``n_neurons`` (256), ``degree`` K (256),
    ``rank`` (128), ``n_hidden_layers`` = 1 + number of fusion layers (4 for the paper's 3)."""

    def __init__(self, n_input_dims: int, n_output_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("network", config, NETWORK_SCHEMA)
        for key in ("n_neurons", "n_hidden_layers"):
            if key not in config:
                raise ConfigError(f"network config of SL2A needs the key {key!r}")
        width = int(config["n_neurons"])
        n_fusion = int(config["n_hidden_layers"]) - 1
        self.first = ChebyshevLayer(n_input_dims, width, int(config.get("degree", 256)))
        self.norm = nn.LayerNorm(width)
        rank = int(config.get("rank", 128))
        self.fusion = nn.ModuleList(LowRankReLULayer(width, width, rank) for _ in range(n_fusion))
        self.output = nn.Linear(width, n_output_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1 = self.norm(self.first(x))
        h = z1
        for layer in self.fusion:
            h = layer(z1 * h)
        return self.output(z1 * h)
