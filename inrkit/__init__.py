"""inrkit: implicit neural representations behind one API and one CLI.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="siren", steps=500)   # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                # doctest: +SKIP
"""

__version__ = "0.1.0"

import os

# Threads of torch's OpenMP pool sleep at barriers instead of spinning: on a CPU shared with another
# process (even one at nice 19) spinning threads waited for a preempted one and fits ran 5-20x slower
# (BENCHMARKS.md, "Busy machines"). Read when torch loads, so it applies when inrkit is imported first;
# an explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from inrkit import export, fields, nerf, signals
from inrkit.api import Estimate, Run, estimate, export_mesh, fit, load, load_run, render_audio, render_image, render_video
from inrkit.errors import InrkitError

__all__ = ["Estimate", "InrkitError", "Run", "__version__", "estimate", "export", "export_mesh", "fields", "fit",
           "load", "load_run", "nerf", "render_audio", "render_image", "render_video", "signals"]
