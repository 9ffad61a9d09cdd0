"""Weight scaling for sine networks (Yeom et al. 2025): W ← α·W at init in every layer but the output layer."""

from __future__ import annotations

import pytest
import torch

import inrkit
from inrkit.errors import InrkitError
from inrkit.fields import build_field
from inrkit.signals import ImageSignal


@pytest.mark.parametrize("model", ["siren", "finer", "spder"])
def test_weight_scale_multiplies_hidden_weights_only(model):
    torch.manual_seed(0)
    plain = build_field(model, 2, 3, width=16, depth=3)
    torch.manual_seed(0)
    scaled = build_field(model, 2, 3, width=16, depth=3, weight_scale=2.5)
    for a, b in zip(plain.network.hidden, scaled.network.hidden, strict=True):
        torch.testing.assert_close(b.linear.weight, 2.5 * a.linear.weight, rtol=0, atol=0)
        assert torch.equal(b.linear.bias, a.linear.bias)
    assert torch.equal(scaled.network.output.weight, plain.network.output.weight)
    assert scaled.config["network"]["weight_scale"] == 2.5


def test_weight_scale_is_recorded_and_refused_for_other_networks(tmp_path, make_image):
    run = inrkit.fit(ImageSignal.from_array(make_image(8, 8)), model="siren", out=tmp_path / "run", steps=2, width=8,
                     depth=2, weight_scale=2.0, eval_every=0, quiet=True, device="cpu")
    assert run.config["field"]["network"]["weight_scale"] == 2.0 and run.config["model"]["weight_scale"] == 2.0
    torch.testing.assert_close(inrkit.load(tmp_path / "run")(torch.zeros(3, 2)), run.field(torch.zeros(3, 2)))
    for model in ("relu-pe", "gauss", "hashgrid"):
        with pytest.raises(InrkitError, match="--weight-scale applies to the sine networks"):
            build_field(model, 2, 3, weight_scale=2.0)
    with pytest.raises(InrkitError, match=r"--weight-scale must be in \(0, 1000\]"):
        build_field("siren", 2, 3, weight_scale=0.0)
