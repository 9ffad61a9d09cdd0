"""A Field executed by tiny-cuda-nn (``backend="tcnn"``): same config, same weights, fp16 inside.

``TcnnField(field)`` builds ``tinycudann.NetworkWithInputEncoding`` from the field's encoding and
network configs (tcnn's own schema, which inrkit's configs follow) and copies the field's weights
into tcnn's flat parameter vector (:mod:`inrkit.fields.tcnn_layout`). ``state_dict`` and
``load_state_dict`` speak the plain Field's layout, so checkpoints and run directories written while
training with tcnn load in plain PyTorch, and the other way round.

tcnn keeps one flat parameter tensor, so inrkit's Adam sees a single non-matrix parameter: the
zero-gradient skipping then also applies to MLP weights and ``l2_reg`` is not applied (tcnn's own
optimiser would distinguish them). Only fields whose network is a ``FullyFusedMLP``/``CutlassMLP``
and whose encoding is a tcnn encoding can run on tcnn (``tcnn_compatible``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inrkit.fields.field import Field
from inrkit.fields.fused_mlp import TcnnMLP
from inrkit.fields.tcnn_layout import load_tcnn_parameters, tcnn_parameters

TCNN_ENCODINGS = ("HashGrid", "Grid", "DenseGrid", "TiledGrid", "Frequency", "SphericalHarmonics", "Composite")


def tcnn_compatible(field: nn.Module) -> bool:
    """Whether tiny-cuda-nn can run this field (tcnn network and tcnn encoding)."""
    encoding = field.config.get("encoding", {}).get("otype")
    return isinstance(getattr(field, "network", None), TcnnMLP) and encoding in TCNN_ENCODINGS


class TcnnField(nn.Module):
    """``(N, n_input_dims)`` in [-1,1] → ``(N, n_output_dims)`` float32, computed by tiny-cuda-nn."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        import tinycudann

        self.config = field.config
        self.n_input_dims, self.n_output_dims = field.n_input_dims, field.n_output_dims
        self.module = tinycudann.NetworkWithInputEncoding(
            field.n_input_dims, field.n_output_dims,
            dict(field.config["encoding"]),
            dict(field.config["network"]),
        )
        with torch.no_grad():
            self.module.params.copy_(tcnn_parameters(field).to(self.module.params.device))
        self._output = (field.output_activation, field._out_low, field._out_span)

    @property
    def n_params(self) -> int:
        return self.module.params.numel()

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        raw = self.module((coords + 1.0) * 0.5).float()
        activation, low, span = self._output
        if activation == "Sigmoid":
            raw = torch.sigmoid(raw)
        return (raw - low) / span

    def to_field(self) -> Field:
        """A plain PyTorch Field with the current weights (on the CPU)."""
        field = Field(self.config)
        load_tcnn_parameters(field, self.module.params.detach().float().cpu())
        return field

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # the plain Field's keys
        return self.to_field().state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        field = Field(self.config)
        result = field.load_state_dict(state_dict, strict=strict)
        with torch.no_grad():
            self.module.params.copy_(tcnn_parameters(field).to(self.module.params.device))
        return result
