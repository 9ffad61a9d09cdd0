"""tcnn's ``Composite`` encoding: different encodings for different input dimensions.

``{"otype": "Composite", "nested": [{"n_dims_to_encode": 3, "otype": "HashGrid", …},
{"otype": "SphericalHarmonics", "degree": 4}], "reduction": "Concatenation"}`` encodes dimensions
0–2 with a hash grid and the rest with spherical harmonics. Each nested entry takes
``n_dims_to_encode`` dimensions starting at ``dims_to_encode_begin`` (default: where the previous one
ended); at most one entry may omit its count and takes the remaining dimensions. Reductions:
Concatenation (widths add up), Sum and Product (element-wise; all widths must match).
All nested encodings see tcnn's [0,1] inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from inrkit.errors import ConfigError, Rule, check_section

REDUCTIONS = ("Concatenation", "Sum", "Product")
MAX_DEPTH = 4       # Composites inside Composites, the outermost counting 1
MAX_ENCODINGS = 64  # encodings in one Composite's whole tree


def check_tree(config: Any, depth: int = 1) -> int:
    """Refuse a Composite nested deeper than :data:`MAX_DEPTH` or holding more than :data:`MAX_ENCODINGS`
    encodings in all (a file may claim 65,536 of them); returns the number of encodings in the tree."""
    if depth > MAX_DEPTH:
        raise ConfigError(f"Composite encodings are nested more than {MAX_DEPTH} deep")
    nested = config.get("nested") if isinstance(config, dict) else None
    if not isinstance(nested, list) or not nested:
        raise ConfigError("encoding key 'nested' of a Composite must be a non-empty list of encodings")
    if len(nested) > MAX_ENCODINGS:
        raise ConfigError(f"a Composite encoding holds {len(nested)} encodings, above the limit of {MAX_ENCODINGS}")
    total = 0
    for entry in nested:
        if not isinstance(entry, dict):
            raise ConfigError("each nested encoding of a Composite must be an object")
        total += check_tree(entry, depth + 1) if entry.get("otype") == "Composite" else 1
        if total > MAX_ENCODINGS:
            raise ConfigError(f"a Composite encoding holds more than {MAX_ENCODINGS} encodings in all")
    return total


class Composite(nn.Module):
    """``(N, D) -> (N, Σ widths)`` (Concatenation) or ``(N, width)`` (Sum/Product); ``build(n_dims, config)``
    builds each nested encoding (:func:`~inrkit.encodings.build.build_encoding`)."""

    input_domain = "unit"

    def __init__(self, n_input_dims: int, config: dict[str, Any], build: Callable[[int, dict[str, Any]], nn.Module]) -> None:
        super().__init__()
        check_tree(config)
        nested = config["nested"]
        self.reduction = config.get("reduction", "Concatenation")
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"encoding key 'reduction' must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}")
        check = {"n_dims_to_encode": Rule("int", 1, n_input_dims), "dims_to_encode_begin": Rule("int", 0, n_input_dims)}
        for entry in nested:
            check_section("nested encoding", entry, check)
        counted = sum(int(entry.get("n_dims_to_encode", 0)) for entry in nested)
        if sum("n_dims_to_encode" not in entry for entry in nested) > 1:
            raise ConfigError("at most one nested encoding of a Composite may omit 'n_dims_to_encode'")
        self.ranges: list[tuple[int, int]] = []
        begin = 0
        modules = []
        for entry in nested:
            begin = int(entry.get("dims_to_encode_begin", begin))
            count = int(entry.get("n_dims_to_encode", n_input_dims - counted))
            if count < 1 or begin < 0 or begin + count > n_input_dims:
                raise ConfigError(f"nested encoding {entry.get('otype')!r} encodes dimensions {begin}..{begin + count - 1} "
                                  f"of a {n_input_dims}-D input ('n_dims_to_encode'/'dims_to_encode_begin')")
            modules.append(build(count, {k: v for k, v in entry.items()
                                                  if k not in ("n_dims_to_encode", "dims_to_encode_begin")}))
            self.ranges.append((begin, begin + count))
            begin += count
        self.nested = nn.ModuleList(modules)
        widths = [m.n_output_dims for m in modules]
        if self.reduction != "Concatenation" and len(set(widths)) != 1:
            raise ConfigError(f"a Composite with reduction {self.reduction} needs equal widths, got {widths}")
        self.n_output_dims = sum(widths) if self.reduction == "Concatenation" else widths[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [module(x[:, begin:end]) for module, (begin, end) in zip(self.nested, self.ranges, strict=True)]
        if self.reduction == "Concatenation":
            return torch.cat(parts, dim=1)
        result = parts[0]
        for part in parts[1:]:
            result = result + part if self.reduction == "Sum" else result * part
        return result
