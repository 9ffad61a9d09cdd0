"""Fields: coordinate networks built from JSON-able configs, and the named presets."""

from __future__ import annotations

from torch import nn

from inrkit.fields.field import NETWORK_OTYPES, Field, build_network
from inrkit.fields.latent_field import LatentField, is_latent_config
from inrkit.fields.nerf_model import NerfModel, is_nerf_config
from inrkit.fields.presets import PRESETS, ModelOptions, Preset, get_preset, preset_config


def field_from_config(config: dict) -> nn.Module:
    """The field a run's ``config["field"]`` describes: a coordinate :class:`Field`, a radiance
    :class:`NerfModel` (density and colour heads, occupancy grid and renderer) or a :class:`LatentField`
    (latent grids, synthesis and ARM of the latent image codec).

    Example:
        >>> field_from_config(build_field("siren", 2, 3).config).n_params
        198915
    """
    if is_latent_config(config):
        return LatentField(config)
    return NerfModel(config) if is_nerf_config(config) else Field(config)


def build_field(model: str = "siren", n_input_dims: int = 2, n_output_dims: int = 3, n_frames: int | None = None,
                **overrides) -> Field:
    """Build a field from a preset name and :class:`ModelOptions` overrides (``n_frames``: time-varying presets).

    Example:
        >>> build_field("siren", 2, 3).n_params
        198915
    """
    return Field(preset_config(ModelOptions(model=model, **overrides), n_input_dims, n_output_dims, n_frames=n_frames))


__all__ = [
    "NETWORK_OTYPES",
    "PRESETS",
    "Field",
    "LatentField",
    "ModelOptions",
    "NerfModel",
    "Preset",
    "build_field",
    "build_network",
    "field_from_config",
    "get_preset",
    "preset_config",
]
