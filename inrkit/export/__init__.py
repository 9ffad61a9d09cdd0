"""Exports of fitted fields: compressed weights (``.inrz``: quantise + entropy-code, and its decoder).

Example:
    >>> import inrkit
    >>> report = inrkit.export.compress("runs/photo-siren", "photo.inrz", bits=8)   # doctest: +SKIP
    >>> field = inrkit.export.decompress("photo.inrz").field                         # doctest: +SKIP
"""

from inrkit.export.compress import CompressionReport, CompressOptions, Decoded, compress, decompress, load
from inrkit.export.inrz import SUFFIX, is_inrz

__all__ = ["SUFFIX", "CompressOptions", "CompressionReport", "Decoded", "compress", "decompress", "is_inrz", "load"]
