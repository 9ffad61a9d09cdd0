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
from inrkit.api import (
    Estimate,
    Run,
    estimate,
    export_mesh,
    fit,
    fit_many,
    load,
    load_dataset,
    load_run,
    render_audio,
    render_image,
    render_video,
)
from inrkit.api import compress as _compress_workflows
from inrkit.api import nerf as _nerf_workflows
from inrkit.errors import InrkitError
from inrkit.fields import nerf_model as _nerf_model
from inrkit.fields import nerf_presets as _nerf_presets
from inrkit.fields import radiance as _nerf_heads
from inrkit.version import __version__

# Names users reach through the library's namespaces (``inrkit.nerf.fit``, ``inrkit.nerf.NerfModel``,
# ``inrkit.export.compress``) live in layers above those packages, which must not import them; they are
# attached here, above every layer.
for _namespace, _module, _names in ((nerf, _nerf_workflows, _nerf_workflows.__all__),
                                    (nerf, _nerf_model, ("NerfModel",)),
                                    (nerf, _nerf_heads, ("NerfField",)),
                                    (nerf, _nerf_presets, ("PRESETS",)),
                                    (export, _compress_workflows, _compress_workflows.__all__)):
    for _name in _names:
        setattr(_namespace, _name, getattr(_module, _name))

__all__ = ["Estimate", "InrkitError", "Run", "__version__", "estimate", "export", "export_mesh", "fields", "fit",
           "fit_many", "load", "load_dataset", "load_run", "nerf", "render_audio", "render_image", "render_video", "signals"]
