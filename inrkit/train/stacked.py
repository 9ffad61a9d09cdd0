"""N independent fields of one architecture trained as one module: every tensor stacked along a leading axis.

``StackedFields(fields)`` holds each parameter and buffer of the N fields as one tensor ``(N, *shape)``; its
forward maps ``coords (N, B, in)`` to ``(N, B, out)`` by vectorising the single field's own forward over the
leading axis (``torch.func.vmap`` of ``torch.func.functional_call``), so every backbone runs exactly the code
of a single fit: ``y[n] = field_n(coords[n])``. Summing the per-field losses, ``L = Σ_n L_n``, gives each
field the gradient of its own loss (``∂L/∂θ_n = ∂L_n/∂θ_n``), and since Adam is elementwise one Adam over the
stacked tensors keeps each field's own moments: field n in a batch follows the same trajectory as when fitted
alone (up to float rounding of a batched matmul).

Measured on 512 SIREN 3×32 fields of 1,024 pixels on 2 CPU cores (BENCHMARKS.md, "Fitting many fields"):
``vmap`` of the field's forward (0.52 s a step) was a little faster than hand-written batched matmuls
``(N, B, in) @ (N, in, out)`` (0.59 s; vmap lowers ``F.linear`` to the same ``bmm``), and compiling the vectorised
forward with ``torch.compile`` (``compile=True``: the sines fused with their matmuls) took 0.36 s after ~8 s of
compiling, so fit-many compiles large shards. Compiled, a plain SIREN runs the same function written on the stacked
tensors with feature-major activations (:mod:`~inrkit.train.stacked_siren`, 4-8 % less CPU time than the compiled vmap).

Example:
    >>> from inrkit.fields import build_field
    >>> stacked = StackedFields([build_field("siren", 2, 3, width=8, depth=2) for _ in range(4)])
    >>> stacked(torch.zeros(4, 10, 2)).shape
    torch.Size([4, 10, 3])
    >>> stacked.field(2)(torch.zeros(10, 2)).shape   # field 2 as a normal Field
    torch.Size([10, 3])
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from inrkit.errors import ConfigError
from inrkit.fields import field_from_config
from inrkit.train.stacked_siren import stacked_siren_forward

SEPARATOR = "__"  # parameter names of the field ("network.hidden.0.linear.weight") with dots replaced


def _safe(name: str) -> str:
    return name.replace(".", SEPARATOR)


def vectorised(template: nn.Module) -> Callable[..., torch.Tensor]:
    """``(params, buffers, coords)`` each with a leading field axis -> ``template``'s forward of each field, stacked."""

    def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (params, buffers), (coords,))

    return vmap(one, in_dims=(0, 0, 0))


_COMPILED: dict[str, Callable[..., torch.Tensor]] = {}


def compiled_forward(template: nn.Module, config: dict[str, Any]) -> Callable[..., torch.Tensor]:
    """``torch.compile`` of the stacked forward (a plain SIREN's batched matmuls, :mod:`~inrkit.train.stacked_siren`,
    else :func:`vectorised`), one per field config in the process: later batches of fields of the same config and
    shape (the next shards) reuse the compiled code instead of compiling again."""
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(stacked_siren_forward(template) or vectorised(template), dynamic=False)
    return _COMPILED[key]


class StackedFields(nn.Module):
    """N fields of one config as one module; see the module docstring.

    ``leading_dims`` (1) tells the optimiser that a parameter's first axis counts fields, so that a
    ``(N, out)`` bias is not taken for a matrix (tcnn's Adam applies L2 to matrices only).
    """

    leading_dims = 1

    def __init__(self, fields: list[nn.Module], compile: bool = False) -> None:
        super().__init__()
        if not fields:
            raise ConfigError("StackedFields needs at least one field")
        configs = {repr(getattr(f, "config", None)) for f in fields}
        if len(configs) != 1:
            raise ConfigError("stacked fields must share one config (one architecture)")
        self.config = copy.deepcopy(getattr(fields[0], "config", {}))
        self.n_fields = len(fields)
        params, buffers = stack_module_state(fields)
        self._param_names = list(params)
        self._state_names = list(fields[0].state_dict())  # persistent tensors only, as a Field's state_dict
        self._buffer_names = list(buffers)
        for name, value in params.items():
            self.register_parameter(_safe(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_safe(name), value.detach().clone())
        # the single field's code, without storage: functional_call supplies each field's tensors
        self._template = [copy.deepcopy(fields[0]).to("meta")]
        self._forward: Callable[..., torch.Tensor] = vectorised(self._template[0])
        self.compiled = False
        if compile:
            self._forward = compiled_forward(self._template[0], self.config)
            self.compiled = True

    def stacked_state(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """``(parameters, buffers)`` by the single field's names, each ``(N, *shape)``."""
        own_params = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        return ({name: own_params[_safe(name)] for name in self._param_names},
                {name: own_buffers[_safe(name)] for name in self._buffer_names})

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords (N, B, in)`` -> ``(N, B, out)``, ``y[n] = field_n(coords[n])``."""
        params, buffers = self.stacked_state()
        return self._forward(params, buffers, coords)

    def use_eager(self) -> None:
        """Run the plain vectorised forward from now on (when compiling fails on this machine)."""
        self._forward = vectorised(self._template[0])
        self.compiled = False

    def stacked_state_dict(self) -> dict[str, torch.Tensor]:
        """The single field's ``state_dict`` names, each holding the N fields' tensors ``(N, *shape)`` (detached)."""
        params, buffers = self.stacked_state()
        merged = {**params, **buffers}
        return {name: merged[name].detach() for name in self._state_names}

    def state_of(self, index: int) -> dict[str, torch.Tensor]:
        """Field ``index``'s ``state_dict``, detached copies."""
        return {name: value[index].clone() for name, value in self.stacked_state_dict().items()}

    def field(self, index: int, build: Callable[[dict[str, Any]], nn.Module] | None = None) -> nn.Module:
        """Field ``index`` as a normal module (a deep copy of the template with its weights)."""
        module = (build or field_from_config)(self.config)
        module.load_state_dict(self.state_of(index), strict=True)
        return module.to(next(self.parameters()).device)

    @property
    def n_params(self) -> int:
        """Trainable parameters of one field."""
        return sum(p[0].numel() for p in self.parameters() if p.requires_grad)
