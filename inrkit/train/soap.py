"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al. 2024), the optimiser of Cool-Chic 5's networks.

For a matrix parameter ``W`` (``m × n``; a convolution's ``(c_out, c_in, k, k)`` kernel is read as
``c_out × c_in·k²``) with gradient ``G``, step ``t`` (1, 2, …)::

    L ← β₂·L + (1 − β₂)·G·Gᵀ,   R ← β₂·R + (1 − β₂)·Gᵀ·G        # Shampoo's two factors (m × m, n × n)
    G' = Q_Lᵀ·G·Q_R                                                # the gradient in the factors' eigenbasis
    M ← β₁·M + (1 − β₁)·G;   M' = Q_Lᵀ·M·Q_R                       # first moment, kept in the original basis
    V ← β₂·V + (1 − β₂)·G'²                                       # second moment, in the eigenbasis
    W ← W·(1 − η·λ) − η·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · Q_L·(M' / (√V + ε))·Q_Rᵀ

A matrix's first gradient only sets up ``L``, ``R`` and the bases, and does not move ``W``: a single
gradient's factors are rank-deficient, and in the directions of their null spaces ``G'`` and ``√V`` are both
rounding noise, whose ratio would be a step of ±η. ``Q_L``, ``Q_R`` start as the eigenvectors of the first
gradient's factors (``torch.linalg.eigh``) and are refreshed
every ``precondition_every`` steps by one power-iteration step, ``Q ← qr(L·Q)``, after ordering ``Q``'s columns
(and ``V``'s matching rows or columns) by the estimated eigenvalues ``diag(Qᵀ·L·Q)``, largest first. Parameters
with fewer than two dimensions, groups with ``precondition=False`` and matrices with a side above
``max_precondition_dim`` take the same update with ``Q = I``: AdamW. ``λ`` is the decoupled weight decay.

Cool-Chic 5 trains its synthesis, upsampling and ARM with SOAP (β = (0.95, 0.95), weight decay 0.01, refresh
every 10 steps) and its latent grids with Adam (β = (0.9, 0.999)). On three 256×384 Kodak crops, 600 steps of
inrkit's latent codec reached a 4–17 % lower ``D + λ·R`` with SOAP on the networks than with Adam in six fits
(BENCHMARKS.md, latent codec), and 600 SOAP steps beat 1,500 Adam steps.

Example::

    optimizer = Soap([{"params": net.parameters()},
                      {"params": grids, "precondition": False, "betas": (0.9, 0.999), "weight_decay": 0.0}],
                     lr=2e-2, betas=(0.95, 0.95), weight_decay=0.01)
"""

from __future__ import annotations

from typing import Any

import torch

MAX_PRECONDITION_DIM = 256


def _eigenbasis(factor: torch.Tensor) -> torch.Tensor:
    """Eigenvectors of the symmetric ``factor`` as columns, largest eigenvalue first."""
    return torch.linalg.eigh(factor)[1].flip(1)


class Soap(torch.optim.Optimizer):
    """SOAP with AdamW for what it does not precondition (module docstring). Every state entry is a tensor,
    so :mod:`inrkit.train.checkpoint` saves and restores it."""

    def __init__(self, params: Any, lr: float, betas: tuple[float, float] = (0.95, 0.95), eps: float = 1e-8,
                 weight_decay: float = 0.0, precondition_every: int = 10,
                 max_precondition_dim: int = MAX_PRECONDITION_DIM) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "precondition": True, "precondition_every": precondition_every,
                                  "max_precondition_dim": max_precondition_dim})

    @staticmethod
    def _preconditioned(param: torch.Tensor, group: dict[str, Any]) -> bool:
        if not group["precondition"] or param.ndim < 2:
            return False
        return max(param.shape[0], param[0].numel()) <= group["max_precondition_dim"]

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)

    def _update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        rotated = self._preconditioned(param, group)
        grad = param.grad.reshape(param.shape[0], -1) if rotated else param.grad
        state = self.state[param]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.int64)
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
            if rotated:  # the first gradient only sets up the factors (see the module docstring)
                state["left"] = (1 - beta2) * grad @ grad.T
                state["right"] = (1 - beta2) * grad.T @ grad
                state["basis_left"] = _eigenbasis(state["left"])
                state["basis_right"] = _eigenbasis(state["right"])
                return
        state["step"] += 1
        step = int(state["step"])
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        moment, projected = state["exp_avg"], grad
        if rotated:
            left, right = state["basis_left"], state["basis_right"]
            projected, moment = left.T @ grad @ right, left.T @ moment @ right
        state["exp_avg_sq"].mul_(beta2).addcmul_(projected, projected, value=1 - beta2)
        direction = moment / (state["exp_avg_sq"].sqrt() + group["eps"])
        if rotated:
            direction = left @ direction @ right.T
        if group["weight_decay"]:
            param.mul_(1 - group["lr"] * group["weight_decay"])
        step_size = group["lr"] * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
        param.add_(direction.reshape(param.shape), alpha=-step_size)
        if rotated:
            state["left"].mul_(beta2).add_(grad @ grad.T, alpha=1 - beta2)
            state["right"].mul_(beta2).add_(grad.T @ grad, alpha=1 - beta2)
            if step % group["precondition_every"] == 0:
                self._refresh(state)

    @staticmethod
    def _refresh(state: dict[str, torch.Tensor]) -> None:
        """One power-iteration step per factor, ``V`` reordered with its basis (module docstring)."""
        for side, dim in (("left", 0), ("right", 1)):
            basis, factor = state["basis_" + side], state[side]
            order = torch.argsort(torch.diagonal(basis.T @ factor @ basis), descending=True)
            state["exp_avg_sq"] = state["exp_avg_sq"].index_select(dim, order)
            state["basis_" + side] = torch.linalg.qr(factor @ basis[:, order])[0]
