"""tiny-cuda-nn's flat parameter vector of a ``NetworkWithInputEncoding``, to and from an inrkit Field.

tcnn keeps all trainable parameters of a ``NetworkWithInputEncoding`` in one vector:
``[network | encoding]``. The network part is the MLP's matrices in order, each row-major
``[out, in]`` with tcnn's padding (input to 16, output rows to 16, see
:mod:`inrkit.fields.fused_mlp`); the encoding part is the grid table(s), level → entry → feature
(nested encodings of a ``Composite`` in order). An inrkit Field whose network is a
``FullyFusedMLP``/``CutlassMLP`` and whose encoding is a grid, a ``Composite`` of grids and
parameter-free encodings, or parameter-free, maps one-to-one onto that vector.

Example:
    >>> from inrkit.fields import build_field
    >>> field = build_field("hashgrid", 2, 3)
    >>> flat = tcnn_parameters(field)              # what tinycudann's module.params holds
    >>> load_tcnn_parameters(field, flat)           # and back
"""

from __future__ import annotations

import torch

from inrkit.encodings.grid import GridEncoding
from inrkit.errors import InrkitError
from inrkit.fields.fused_mlp import TcnnMLP


def _parts(field: torch.nn.Module) -> list[torch.Tensor]:
    network = field.network
    if not isinstance(network, TcnnMLP):
        raise InrkitError(f"the tcnn parameter layout needs a FullyFusedMLP/CutlassMLP network, "
                          f"this field has {type(network).__name__}")
    encoding_params = [m.params for m in field.encoding.modules() if isinstance(m, GridEncoding)]
    grid_ids = {id(p) for p in encoding_params}
    other = [name for name, p in field.encoding.named_parameters() if id(p) not in grid_ids]
    if other:
        raise InrkitError(f"the tcnn parameter layout has no place for encoding parameters {other}")
    return [*network.weights, *encoding_params]


def tcnn_parameter_count(field: torch.nn.Module) -> int:
    """Length of the field's tcnn parameter vector."""
    return sum(p.numel() for p in _parts(field))


@torch.no_grad()
def tcnn_parameters(field: torch.nn.Module) -> torch.Tensor:
    """The field's parameters as tcnn's flat float32 vector ``[network | encoding]`` (a copy, on the CPU)."""
    return torch.cat([p.detach().float().reshape(-1).cpu() for p in _parts(field)])


@torch.no_grad()
def load_tcnn_parameters(field: torch.nn.Module, flat: torch.Tensor) -> None:
    """Copy tcnn's flat vector into the field; a vector of the wrong length is refused."""
    parts = _parts(field)
    expected = sum(p.numel() for p in parts)
    flat = torch.as_tensor(flat).reshape(-1)
    if flat.numel() != expected:
        raise InrkitError(f"tcnn parameter vector has {flat.numel():,} values; this field's layout needs {expected:,}")
    start = 0
    for param in parts:
        param.copy_(flat[start:start + param.numel()].view_as(param).to(param.dtype))
        start += param.numel()
