"""The tensors of an artifact's ONNX files: their names, and which outputs an encoder has for a layout.

With the manifest's ``layout`` (``LatentLayout``): ``d = layout.size`` is the decoder's input width,
``c = layout.continuous`` and ``k = layout.classes`` the total number of categorical classes:

    encoder: IMAGE (B, C, H, W) float32 in [0, 1]  ->  MU (B, c), LOGVAR (B, c)
                                                        [+ PROBABILITIES (B, k) when the layout has categories]
    decoder: LATENT (B, d) float32                  ->  IMAGE (B, C, H, W) float32 in [0, 1]

An artifact of schema version 1 has no ``layout``: it reads as all-continuous (c = d, no PROBABILITIES).
"""

from __future__ import annotations

from contract.manifest import LatentLayout

IMAGE = "image"  # the encoder's input and the decoder's output
LATENT = "z"  # the decoder's input: the flat latent
MU = "mu"
LOGVAR = "logvar"
PROBABILITIES = "probabilities"


def encoder_outputs(layout: LatentLayout) -> list[str]:
    """The encoder's outputs, in order: mu and logvar, and the probabilities when the layout has categories."""
    return [MU, LOGVAR, PROBABILITIES] if layout.classes else [MU, LOGVAR]


DECODER_OUTPUTS = [IMAGE]
