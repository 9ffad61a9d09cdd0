"""Input encodings: ``(N, n_input_dims) -> (N, n_output_dims)`` maps applied before a network.

inrkit's own encodings (Identity, PositionalEncoding, GaussianFourier) take the field's [-1,1]
coordinates; tiny-cuda-nn's (HashGrid/DenseGrid/TiledGrid, Frequency, SphericalHarmonics,
Composite) take [0,1] inputs as tcnn does, and the Field maps ``x -> (x + 1)/2`` for them.
"""

from inrkit.backends.grid_reference import grid_geometry
from inrkit.encodings.bands import BandWeights
from inrkit.encodings.build import ENCODING_OTYPES, build_encoding
from inrkit.encodings.composite import Composite
from inrkit.encodings.frequency import Frequency, GaussianFourier, Identity, PositionalEncoding, nyquist_frequencies
from inrkit.encodings.grid import GridEncoding
from inrkit.encodings.spherical_harmonics import SphericalHarmonics

__all__ = [
    "ENCODING_OTYPES",
    "BandWeights",
    "Composite",
    "Frequency",
    "GaussianFourier",
    "GridEncoding",
    "Identity",
    "PositionalEncoding",
    "SphericalHarmonics",
    "build_encoding",
    "grid_geometry",
    "nyquist_frequencies",
]
