"""inrkit: implicit neural representations behind one API and one CLI.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="siren", steps=500)   # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                # doctest: +SKIP
"""

__version__ = "0.1.0"

from inrkit import export, fields, nerf, signals
from inrkit.api import Run, export_mesh, fit, load, load_run, render_audio, render_image, render_video
from inrkit.errors import InrkitError

__all__ = ["InrkitError", "Run", "__version__", "export", "export_mesh", "fields", "fit", "load", "load_run", "nerf",
           "render_audio", "render_image", "render_video", "signals"]
