"""InfoGAN's export adapter: the generator is the decoder, the Q head the encoder; training/artifact.py does the rest.

    disentangle-train export runs/zoo/digits_infogan --out models/digits_infogan

decoder.onnx maps the layout vector (continuous codes, each categorical code one-hot, noise) to an image.
encoder.onnx is Q (Chen et al. 2016): an image -> ``mu`` and ``logvar`` (B, c) of Q's factored Gaussian over the
continuous codes, and, when the generator has categorical codes, ``probabilities`` (B, k) over each one's
classes; Q does not read the noise. The layout states the continuous codes' prior, U(-1, 1), so the contract's
ranges (traversals, sliders, the service's bounds) stay on the codes G was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.manifest import CategoricalPart, ContinuousPrior, LatentLayout, LatentStat
from training.artifact import ExportAdapter
from training.data import get_dataset
from training.gan import CODE_HIGH, CODE_LOW, InfoGAN, fold_spectral_norm
from training.infogan import InfoGANConfig, build_infogan
from training.labels import unlabelled


class _QEncoder(nn.Module):
    """image (B, C, H, W) -> Q's mean (B, c) and log variance (B, c) of the continuous codes, and the class
    probabilities (B, k) of the categorical codes, one part after another, when there are any."""

    def __init__(self, model: InfoGAN) -> None:
        super().__init__()
        self.model = model
        # The exporter puts the wrapper back in its own mode afterwards, children included: a wrapper left in
        # training mode would switch the networks' batch norm back to batch statistics.
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        discriminator = self.model.discriminator
        logits, mean, logvar = discriminator.split_q(discriminator.q(image))
        if not logits:
            return mean, logvar
        return mean, logvar, torch.cat([torch.softmax(part, dim=1) for part in logits], dim=1)


class _GDecoder(nn.Module):
    def __init__(self, model: InfoGAN) -> None:
        super().__init__()
        self.model = model
        # As for _QEncoder: G's batch norm must read its running statistics.
        self.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.generator(z))


def layout_of(model: InfoGAN) -> LatentLayout:
    layout = model.layout
    parts = [CategoricalPart(name=f"cat{i}", classes=k) for i, k in enumerate(layout.categorical)]
    prior = ContinuousPrior(kind="uniform", low=CODE_LOW, high=CODE_HIGH)
    return LatentLayout(continuous=layout.continuous, categorical=parts, noise=layout.noise, prior=prior)


@torch.no_grad()
def latent_stats(model: InfoGAN, images: np.ndarray) -> list[LatentStat]:
    """Spread of Q's mean over real images, per continuous code. A GAN has no posterior to hold a KL against
    the prior: ``kl`` is 0, and every code is ``active``, since G was trained to make Q read it back."""
    mean = _QEncoder(model)(torch.from_numpy(images))[0]  # (N, c)
    return [
        LatentStat(index=j, mean=float(mean[:, j].mean()), std=float(mean[:, j].std()), kl=0.0, active=True)
        for j in range(mean.shape[1])
    ]


def prior_draws(model: InfoGAN, n: int) -> torch.Tensor:
    """(n, d) layout vectors drawn from the prior, the same every export: the decoder's parity inputs."""
    return model.layout.sample(n, torch.Generator().manual_seed(0))[0]


def adapter(state: dict, run_dir: Path) -> ExportAdapter:
    """The adapter for an InfoGAN run's checkpoint ``state``."""
    cfg = InfoGANConfig.from_dict(state["config"])
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    model = build_infogan(cfg, dataset)
    model.load_state_dict(state["model"])
    model = fold_spectral_norm(model.to("cpu").float().eval())  # built here: nobody else holds it
    return ExportAdapter(
        encoder=_QEncoder(model),
        decoder=_GDecoder(model),
        layout=layout_of(model),
        parity_latents=lambda images: prior_draws(model, len(images)),
        latent_stats=lambda images: latent_stats(model, images),
        objective="infogan",
        architecture="conv",
        likelihood="bernoulli",
        hyperparameters={k: v for k, v in cfg.learning_settings().items() if not unlabelled(cfg, k)},
        dataset=dataset,
    )
