"""Exports of fitted fields: compressed weights (``.inrz``: quantise + entropy-code, and its decoder) and
meshes (marching cubes, mesh files).

Example:
    >>> import inrkit
    >>> report = inrkit.export.compress("runs/photo-siren", "photo.inrz", bits=8)   # doctest: +SKIP
    >>> field = inrkit.export.decompress("photo.inrz").field                         # doctest: +SKIP
"""

from inrkit.export.compress import CompressionReport, CompressOptions, Decoded, compress, decompress, load
from inrkit.export.inrz import SUFFIX, is_inrz
from inrkit.export.mesh import Mesh, extract_mesh, marching_cubes, sample_grid, write_mesh

__all__ = ["SUFFIX", "CompressOptions", "CompressionReport", "Decoded", "Mesh", "compress", "decompress",
           "extract_mesh", "is_inrz", "load", "marching_cubes", "sample_grid", "write_mesh"]
