"""``build_encoding``: an encoding module from its tcnn-style config dict."""

from __future__ import annotations

from typing import Any

from torch import nn

from inrkit.encodings.composite import Composite
from inrkit.encodings.frequency import Frequency, GaussianFourier, Identity, PositionalEncoding
from inrkit.encodings.grid import GRID_OTYPES, GridEncoding
from inrkit.encodings.spatial_mask import SpatialBandMask
from inrkit.encodings.spherical_harmonics import SphericalHarmonics
from inrkit.errors import ConfigError, Rule, check_section

ENCODING_OTYPES = ("Identity", "PositionalEncoding", "GaussianFourier", "Frequency", "SphericalHarmonics", "Composite",
                   *GRID_OTYPES)
# The keys of the simple encodings, checked when one is built (from flags or from a file); grids, spherical
# harmonics and composites check their own sections.
ENCODING_SCHEMAS = {
    "Identity": {"scale": Rule("number"), "offset": Rule("number")},
    "PositionalEncoding": {"n_frequencies": Rule("int", 0, 64), "include_input": Rule("bool"), "include_pi": Rule("bool")},
    "GaussianFourier": {"n_features": Rule("int", 1, 1 << 16), "sigma": Rule("number", 0.0, 1e6, above=True),
                        "seed": Rule("int", 0, (1 << 32) - 1)},
    "Frequency": {"n_frequencies": Rule("int", 0, 64)},
}


BAND_MASK_SCHEMA = {"resolution": Rule("int", 3, 1 << 21)}


def build_encoding(n_input_dims: int, config: dict[str, Any]) -> nn.Module:
    """Build an encoding from its config dict (``{"otype": ..., ...}``); every module has ``n_output_dims``
    and ``input_domain`` ("signed": inrkit's [-1,1] coordinates, "unit": tcnn's [0,1]).

    An encoding with bands may carry ``"band_mask": {"resolution": R}``: SAPE's spatial mask over its
    bands (:class:`~inrkit.encodings.spatial_mask.SpatialBandMask`), whose state is saved with the weights."""
    module = _build(n_input_dims, config)
    mask = config.get("band_mask")
    if mask is not None:
        check_section("encoding band_mask", mask, BAND_MASK_SCHEMA)
        if not getattr(getattr(module, "bands", None), "n_bands", 0):
            raise ConfigError(f"encoding {config.get('otype')!r} has no frequency bands for a 'band_mask' (SAPE)")
        if "resolution" not in mask:
            raise ConfigError("encoding key 'band_mask' needs the key 'resolution'")
        module.bands.spatial = SpatialBandMask(n_input_dims, module.bands.n_bands, int(mask["resolution"]),
                                               module.input_domain)
    return module


def _build(n_input_dims: int, config: dict[str, Any]) -> nn.Module:
    check_section("encoding", config, {})
    otype = config.get("otype", "Identity")
    if not isinstance(otype, str):
        raise ConfigError(f"encoding key 'otype' must be one of {', '.join(ENCODING_OTYPES)}")
    check_section("encoding", config, ENCODING_SCHEMAS.get(otype, {}))
    try:
        if otype == "Identity":
            return Identity(n_input_dims, float(config.get("scale", 1.0)), float(config.get("offset", 0.0)))
        if otype == "PositionalEncoding":
            return PositionalEncoding(n_input_dims, int(config["n_frequencies"]), bool(config.get("include_input", True)),
                                      bool(config.get("include_pi", True)))
        if otype == "GaussianFourier":
            return GaussianFourier(n_input_dims, int(config.get("n_features", 256)), float(config.get("sigma", 10.0)),
                                   int(config.get("seed", 0)))
        if otype == "Frequency":
            return Frequency(n_input_dims, int(config.get("n_frequencies", 12)))
    except KeyError as err:
        raise ConfigError(f"encoding {otype!r} needs the key {err}") from None
    if otype == "SphericalHarmonics":
        return SphericalHarmonics(n_input_dims, config)
    if otype == "Composite":
        return Composite(n_input_dims, config, build_encoding)
    if otype in GRID_OTYPES:
        return GridEncoding(n_input_dims, config)
    raise ConfigError(f"unknown encoding otype {otype!r}; choose one of {', '.join(ENCODING_OTYPES)}")
