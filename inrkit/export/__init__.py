"""Codecs as pure encode/decode: the ``.inrz`` container, quantisation and entropy coding of a fitted field's
weights (:mod:`~inrkit.export.codec`), and the latent image codec (:mod:`~inrkit.export.latent_codec`: latent
grids coded with an autoregressive model, ``.inrz`` format version 4).

The compress/decompress workflows (open a run, measure, fine-tune, write) are :mod:`inrkit.api.compress`,
also reachable here as ``inrkit.export.compress``, ``inrkit.export.decompress`` and ``inrkit.export.load``.
Meshes are :mod:`inrkit.geometry` (marching cubes) and :mod:`inrkit.io.meshes` (files).

Example:
    >>> import inrkit
    >>> report = inrkit.export.compress("runs/photo-siren", "photo.inrz", bits=8)   # doctest: +SKIP
    >>> field = inrkit.export.decompress("photo.inrz").field                         # doctest: +SKIP
    >>> inrkit.export.compress("photo.png", "p.inrz", codec="latent", target_bpp=0.3)  # doctest: +SKIP
"""

from inrkit.export.inrz import SUFFIX, is_inrz

__all__ = ["SUFFIX", "is_inrz"]
