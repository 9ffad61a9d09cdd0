"""Every backbone fits a small smooth image well within a few hundred CPU steps.

Thresholds were measured on this image (seeds 0-2) and leave a margin of several dB below the worst.
Narrow widths keep the default run fast; the default architectures are fitted in the slow test.
"""

from __future__ import annotations

import pytest

import inrkit
from inrkit.signals import ImageSignal

# model: (options, PSNR threshold in dB)
FAST = {
    "siren": ({"width": 64, "steps": 300}, 40.0),
    "spder": ({"width": 64, "steps": 300}, 30.0),
    "finer": ({"width": 64, "steps": 300}, 40.0),
    "gauss": ({"width": 128, "steps": 300}, 35.0),
    "wire": ({"width": 128, "steps": 300, "lr": 2e-3}, 35.0),
    "relu-pe": ({"steps": 200}, 28.0),
    "ffn": ({"width": 64, "steps": 300}, 40.0),
    "relu": ({"steps": 300}, 25.0),
    "sl2a": ({"width": 64, "steps": 200}, 30.0),
    "hashgrid": ({"steps": 150}, 50.0),
    "hashgrid-siren": ({"steps": 150}, 33.0),
}

DEFAULT_ARCHITECTURE = {
    "siren": ({}, 40.0),
    "spder": ({}, 40.0),
    "finer": ({}, 40.0),
    "gauss": ({}, 35.0),
    "wire": ({"lr": 2e-3}, 35.0),
    "relu-pe": ({}, 30.0),
    "ffn": ({}, 40.0),
    "relu": ({}, 25.0),
    "sl2a": ({}, 40.0),
    "hashgrid": ({}, 50.0),
    "hashgrid-siren": ({}, 40.0),
}


def _fit(tmp_path, image, model, options):
    return inrkit.fit(ImageSignal.from_array(image), model=model, out=tmp_path / model, eval_every=0, seed=0,
                      device="cpu", quiet=True, **options)


def test_every_preset_is_covered():
    still_image_presets = {name for name, preset in inrkit.fields.PRESETS.items() if not preset.time_varying}
    assert set(FAST) == still_image_presets == set(DEFAULT_ARCHITECTURE)  # resfields: tests/test_video.py


@pytest.mark.parametrize("model", FAST)
def test_backbone_fits_smooth_image(tmp_path, make_image, model):
    options, threshold = FAST[model]
    run = _fit(tmp_path, make_image(32, 32, 3, seed=0), model, options)
    assert run.metrics["final"] is True
    assert run.metrics["step"] == options["steps"]
    assert run.metrics["psnr"] > threshold, f"{model}: {run.metrics['psnr']:.2f} dB"
    assert run.metrics["ssim"] > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("model", DEFAULT_ARCHITECTURE)
def test_default_architecture_fits_smooth_image(tmp_path, make_image, model):
    options, threshold = DEFAULT_ARCHITECTURE[model]
    run = _fit(tmp_path, make_image(32, 32, 3, seed=0), model, {"steps": 300, **options})
    assert run.field.n_params == inrkit.fields.build_field(model, 2, 3).n_params or model == "relu-pe"
    assert run.metrics["psnr"] > threshold, f"{model}: {run.metrics['psnr']:.2f} dB"
