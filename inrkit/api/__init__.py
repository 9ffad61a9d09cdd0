"""The workflows a user calls: fit, resume, load and render runs of every signal kind, radiance fields,
compression to ``.inrz``, and datasets of many fields (``fit_many``, ``load_dataset``). The CLI is a thin shell over these.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="spder", steps=2000)   # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                 # doctest: +SKIP
"""

from inrkit.api.fit_many import FitManyOptions, fit_many
from inrkit.api.lifecycle import Estimate, Run, estimate, fit, load, load_run
from inrkit.api.neural_dataset import NeuralDataset, load_dataset
from inrkit.api.render import export_mesh, render_audio, render_image, render_video

__all__ = ["Estimate", "FitManyOptions", "NeuralDataset", "Run", "estimate", "export_mesh", "fit", "fit_many", "load",
           "load_dataset", "load_run", "render_audio", "render_image", "render_video"]
