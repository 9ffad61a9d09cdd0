"""Optimisers: PyTorch's Adam by default, tcnn's Adam or SOAP for configs that ask for it.

A field config may carry an ``"optimizer"`` entry in tiny-cuda-nn's schema. ``{"otype": "Adam",
"beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15, "l2_reg": 1e-6}`` selects :class:`TcnnAdam`, which
follows tcnn's semantics (the learning rate is the run's ``lr``; a ``"learning_rate"`` key, which
runs written before 2026-11-30 carry, is accepted and superseded by it):

* L2 regularisation ``g ← g + λ·w`` on **matrix** parameters (MLP weights) only;
* non-matrix parameters (hash-grid tables, biases): entries whose gradient is exactly zero are
  skipped — no moment decay, no step — and each entry counts its own steps ``t_i``;
* ``w ← w − lr·√(1 − β2^t)/(1 − β1^t) · m/(√v + ε)``.

Untouched hash entries thus keep their moments, and one Adam step costs only the touched rows
(the fast CPU backend runs the sparse update in C; elsewhere it is a masked PyTorch update).
``{"otype": "SOAP", "beta1": 0.95, "beta2": 0.95, "epsilon": 1e-8, "weight_decay": 0.01,
"precondition_every": 10}`` selects :class:`~inrkit.train.soap.Soap` (Cool-Chic 5's optimiser; the keys shown
are its defaults). Without an ``"optimizer"`` entry a field trains with ``torch.optim.Adam(lr)``.

A submodule with an ``optimizer_group()`` method (a NeRF's camera-pose corrections, a latent field's grids)
trains in the group that method returns: its own parameters, learning rate, betas, ε and no weight decay, and with
``lr_initial``/``lr_final`` its own exponential schedule (:func:`inrkit.train.schedules.group_lr`).
"""

from __future__ import annotations

from typing import Any

import torch

from inrkit.errors import ConfigError
from inrkit.train.soap import Soap

OPTIMIZER_KEYS = ("otype", "learning_rate", "beta1", "beta2", "epsilon", "l2_reg")  # learning_rate: old runs
SOAP_KEYS = ("otype", "beta1", "beta2", "epsilon", "weight_decay", "precondition_every")
TCNN_GROUP_KEYS = ("l2_reg", "matrix")  # group keys of TcnnAdam that torch's Adam does not take
_DYNAMO_GUARDED = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")


def skip_dynamo_import() -> None:
    """Keep ``torch.optim.Optimizer`` from importing ``torch._dynamo`` (2-8 s of a CPU run's start-up).

    Torch wraps these methods in ``torch._disable_dynamo``, which imports the compiler stack on the first
    call only to mark them "not traceable". Nothing in inrkit traces an optimizer, so when the compiler
    has not been imported yet, each wrapper is handed the plain method as its (cached) disabled version.
    """
    import sys

    if "torch._dynamo" in sys.modules:
        return
    for name in _DYNAMO_GUARDED:
        method = getattr(torch.optim.Optimizer, name).__dict__.get("__wrapped__")
        if method is not None and getattr(method, "__dynamo_disable", None) is None:
            setattr(method, "__dynamo_disable", method)


class TcnnAdam(torch.optim.Optimizer):
    """Adam with tcnn's semantics (module docstring). Param groups carry ``matrix: bool``."""

    def __init__(self, params: Any, lr: float, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-15,
                 l2_reg: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "l2_reg": l2_reg, "matrix": True})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param, dtype=param.real.dtype if param.is_complex() else None)
                    state["step"] = (torch.zeros((), dtype=torch.int64) if group["matrix"]
                                     else torch.zeros(param.shape, dtype=torch.int32, device=param.device))
                if group["matrix"]:
                    self._matrix_step(param, state, group["lr"], beta1, beta2, group["eps"], group["l2_reg"])
                else:
                    self._sparse_step(param, state, group["lr"], beta1, beta2, group["eps"])

    @staticmethod
    def _matrix_step(param: torch.Tensor, state: dict[str, torch.Tensor], lr: float, beta1: float, beta2: float,
                     eps: float, l2_reg: float) -> None:
        grad = param.grad + l2_reg * param if l2_reg else param.grad
        state["step"] += 1
        t = int(state["step"])
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        magnitude = (grad * grad.conj()).real if grad.is_complex() else grad * grad
        state["exp_avg_sq"].mul_(beta2).add_(magnitude, alpha=1 - beta2)
        step_size = lr * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        param.sub_(step_size * state["exp_avg"] / (state["exp_avg_sq"].sqrt() + eps))

    @staticmethod
    def _sparse_step(param: torch.Tensor, state: dict[str, torch.Tensor], lr: float, beta1: float, beta2: float,
                     eps: float) -> None:
        grad = param.grad
        if param.device.type == "cpu" and param.dtype == torch.float32 and param.is_contiguous():
            from inrkit.backends import cpu_grid

            if cpu_grid.available():
                cpu_grid.sparse_adam_(param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, beta1,
                                      beta2, eps)
                return
        touched = grad != 0
        state["step"] += touched.to(torch.int32)
        t = state["step"].clamp(min=1).to(param.dtype)
        exp_avg = torch.where(touched, beta1 * state["exp_avg"] + (1 - beta1) * grad, state["exp_avg"])
        exp_avg_sq = torch.where(touched, beta2 * state["exp_avg_sq"] + (1 - beta2) * grad * grad, state["exp_avg_sq"])
        state["exp_avg"].copy_(exp_avg)
        state["exp_avg_sq"].copy_(exp_avg_sq)
        step_size = lr * torch.sqrt(1 - beta2**t) / (1 - beta1**t)
        param.sub_(torch.where(touched, step_size * exp_avg / (exp_avg_sq.sqrt() + eps), 0.0))


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose ``step`` runs under ``no_grad`` directly: torch's wrapper imports the
    compiler stack on the first step (see :func:`skip_dynamo_import`); the update is the same code."""

    _plain_step = getattr(torch.optim.Adam.step, "__wrapped__", None)

    def step(self, closure: Any = None) -> Any:
        if self._plain_step is None or self.defaults.get("differentiable"):
            return super().step(closure)
        with torch.no_grad():
            return self._plain_step(closure)


def build_optimizer(module: torch.nn.Module, lr: float, config: dict[str, Any] | None = None,
                    leading_dims: int = 0) -> torch.optim.Optimizer:
    """The optimiser for ``module``: :class:`TcnnAdam` for a tcnn ``Adam`` config, else ``torch.optim.Adam``.

    Matrices (parameters with two or more dimensions after the first ``leading_dims``, which stack
    independent fields: :class:`~inrkit.train.stacked.StackedFields`) form the ``matrix`` group; the rest
    (hash tables, biases) the non-matrix group.
    """
    skip_dynamo_import()
    own = [m.optimizer_group() for m in module.modules() if callable(getattr(m, "optimizer_group", None))]
    owned = {id(p) for group in own for p in group["params"]}
    params = [p for p in module.parameters() if p.requires_grad and id(p) not in owned]
    if not config:
        return Adam([{"params": params}, *({k: v for k, v in g.items() if k not in TCNN_GROUP_KEYS} for g in own)],
                     lr=lr)
    if config.get("otype") == "SOAP":
        return _soap(params, own, lr, config, leading_dims)
    unknown = sorted(set(config) - set(OPTIMIZER_KEYS))
    if config.get("otype") != "Adam" or unknown:
        raise ConfigError(f"optimizer: only tcnn's 'Adam' with keys {', '.join(OPTIMIZER_KEYS)} is supported, "
                          f"got otype {config.get('otype')!r}{' and keys ' + ', '.join(unknown) if unknown else ''}")
    groups = [{"params": [p for p in params if p.ndim - leading_dims >= 2], "matrix": True},
              {"params": [p for p in params if p.ndim - leading_dims < 2], "matrix": False}]
    own = [{k: v for k, v in g.items() if k != "weight_decay"} for g in own]
    return TcnnAdam([g for g in groups if g["params"]] + own, lr=lr,
                    betas=(float(config.get("beta1", 0.9)), float(config.get("beta2", 0.99))),
                    eps=float(config.get("epsilon", 1e-15)), l2_reg=float(config.get("l2_reg", 0.0)))


def _soap(params: list[torch.nn.Parameter], own: list[dict[str, Any]], lr: float, config: dict[str, Any],
          leading_dims: int) -> Soap:
    """:class:`Soap` for the ``{"otype": "SOAP", ...}`` config (module docstring); ``own`` groups keep their keys."""
    unknown = sorted(set(config) - set(SOAP_KEYS))
    if unknown:
        raise ConfigError(f"optimizer: SOAP takes the keys {', '.join(SOAP_KEYS)}, got {', '.join(unknown)}")
    if leading_dims:
        raise ConfigError("optimizer: SOAP does not train stacked fields (fit-many); use Adam")
    every = config.get("precondition_every", 10)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ConfigError(f"optimizer key 'precondition_every' must be a positive integer, got {every!r:.40}")
    return Soap([{"params": params}, *own], lr=lr,
                betas=(float(config.get("beta1", 0.95)), float(config.get("beta2", 0.95))),
                eps=float(config.get("epsilon", 1e-8)), weight_decay=float(config.get("weight_decay", 0.01)),
                precondition_every=every)
