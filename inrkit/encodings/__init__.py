"""Input encodings: ``(N, n_input_dims) -> (N, n_output_dims)`` maps applied before a network."""

from inrkit.encodings.frequency import (
    ENCODING_OTYPES,
    GaussianFourier,
    Identity,
    PositionalEncoding,
    build_encoding,
    nyquist_frequencies,
)

__all__ = [
    "ENCODING_OTYPES",
    "GaussianFourier",
    "Identity",
    "PositionalEncoding",
    "build_encoding",
    "nyquist_frequencies",
]
