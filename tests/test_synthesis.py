"""The latent field's synthesis: its 3×3 refinements start as the identity and keep passing gradient."""

from __future__ import annotations

import pytest
import torch

from inrkit.fields.synthesis import Synthesis

CONFIG = {"otype": "Synthesis", "n_neurons": 8, "n_hidden_layers": 1, "n_refine": 2}


@pytest.mark.parametrize("path", ["refined", "reference_refined"])
def test_untrained_refinements_are_the_identity_on_an_image(path):
    synthesis = Synthesis(4, 3, CONFIG)
    image = torch.rand(1, 3, 9, 11)
    assert torch.equal(getattr(synthesis, path)(image), image)


def test_refinements_keep_every_channel_alive_when_training_pulls_the_image_down():
    """A dark target pulls every bias down on the first Adam steps (±lr each). With the ReLU inside the residual
    branch (started at a bias of 0.01) two of the three channels of the first refinement stopped passing
    gradient at step 1; after the residual sum, the ReLU sees the image (about ½) and stays open."""
    torch.manual_seed(0)
    synthesis = Synthesis(4, 3, CONFIG)
    features = torch.randn(1, 4, 16, 16)
    target = torch.full((16, 16, 3), 0.2)
    optimiser = torch.optim.Adam(synthesis.parameters(), lr=0.02)
    for _ in range(5):
        optimiser.zero_grad()
        loss = (synthesis.dense(features) - target).square().mean()
        loss.backward()
        optimiser.step()
    first = synthesis.refine[0]
    assert bool((first.weight.grad.abs().sum(dim=(1, 2, 3)) > 0).all())
    assert bool((first.bias.grad != 0).all())
