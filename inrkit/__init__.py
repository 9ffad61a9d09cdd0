"""inrkit: implicit neural representations behind one API and one CLI.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="siren", steps=500)   # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                # doctest: +SKIP
"""

import os

# Threads of torch's OpenMP pool sleep at barriers instead of spinning: on a CPU shared with another
# process (even one at nice 19) spinning threads waited for a preempted one and fits ran 5-20x slower
# (BENCHMARKS.md, "Busy machines"). Read when torch loads, so it applies when inrkit is imported first;
# an explicit OMP_WAIT_POLICY is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from inrkit import export, fields, nerf, signals
from inrkit.api import Estimate, Run, estimate, export_mesh, fit, load, load_run, render_audio, render_image, render_video
from inrkit.api import compress as _compress_workflows
from inrkit.api import nerf as _nerf_workflows
from inrkit.errors import InrkitError
from inrkit.version import __version__

# Workflows users reach through the library's namespaces (``inrkit.nerf.fit``, ``inrkit.export.compress``)
# live in the API layer, which those packages must not import; they are attached here, above every layer.
for _name in _nerf_workflows.__all__:
    setattr(nerf, _name, getattr(_nerf_workflows, _name))
for _name in _compress_workflows.__all__:
    setattr(export, _name, getattr(_compress_workflows, _name))

__all__ = ["Estimate", "InrkitError", "Run", "__version__", "estimate", "export", "export_mesh", "fields", "fit",
           "load", "load_run", "nerf", "render_audio", "render_image", "render_video", "signals"]
