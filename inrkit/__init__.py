"""inrkit: implicit neural representations behind one API and one CLI.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="siren", steps=500)   # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                # doctest: +SKIP
"""

__version__ = "0.1.0"

from inrkit import fields, signals
from inrkit.api import Run, export_mesh, fit, load, load_run, render_image
from inrkit.errors import InrkitError

__all__ = ["InrkitError", "Run", "__version__", "export_mesh", "fields", "fit", "load", "load_run", "render_image", "signals"]
