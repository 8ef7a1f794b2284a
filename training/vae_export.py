"""The VAE family's export adapter: the encoder answers mu and logvar (and the categorical parts' probabilities),
the decoder draws from the flat latent; training/artifact.py does the rest.

    disentangle-train export runs/smoke --out models-local/smoke
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from contract.manifest import CategoricalPart, ContinuousPrior, LatentLayout, LatentStat, active
from training.artifact import ExportAdapter
from training.data import get_dataset
from training.labels import unlabelled
from training.models import VAE
from training.objectives import kl_per_dim, settings_read
from training.train import TrainConfig, build_model


class _Encoder(nn.Module):
    """image -> (mu, logvar), plus the categorical parts' probabilities (B, K) when the model has them."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mu, logvar, category_logits = self.model.encode_all(image)
        if not self.model.categories:
            return mu, logvar
        return mu, logvar, self.model.category_probabilities(category_logits)


class _Decoder(nn.Module):
    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decode(z))


def layout_of(cfg: TrainConfig, model: VAE) -> LatentLayout:
    """The parts; the prior N(0, 1), or none for a plain autoencoder, whose codes no prior holds."""
    parts = [CategoricalPart(name=name, classes=k) for name, k in cfg.categorical_parts()]
    prior = ContinuousPrior(kind="none") if model.deterministic else ContinuousPrior()
    return LatentLayout(continuous=cfg.latent_dim, categorical=parts, prior=prior)


@torch.no_grad()
def flat_codes(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, d + K): mu, then each part's one-hot of its most probable class (for a model in eval
    mode, as export holds it)."""
    mu, _, category_logits = model.encode_all(images)
    if not model.categories:
        return mu
    return torch.cat([mu, model.category_codes(category_logits)], dim=1)


@torch.no_grad()
def latent_stats(model: VAE, images: np.ndarray, chunk: int = 512) -> list[LatentStat]:
    mus, logvars = [], []
    for start in range(0, len(images), chunk):
        mu, logvar = model.encode(torch.from_numpy(images[start : start + chunk]))
        mus.append(mu)
        logvars.append(logvar)
    mu, logvar = torch.cat(mus), torch.cat(logvars)  # (N, d)
    kl = kl_per_dim(mu, logvar)
    # An AE reports logvar = 0, so its "KL" is E[mu^2] / 2: the same rule then ranks dims by spread.
    used = active(kl.numpy())
    return [
        LatentStat(
            index=j,
            mean=float(mu[:, j].mean()),
            std=float(mu[:, j].std()),
            kl=float(kl[j]),
            active=bool(used[j]),
        )
        for j in range(mu.shape[1])
    ]


def adapter(state: dict, run_dir: Path) -> ExportAdapter:
    """The adapter for a VAE-family run's checkpoint ``state`` (the model as of its last checkpoint)."""
    cfg = TrainConfig.from_dict(state["config"])
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    model = build_model(cfg, dataset)
    model.load_state_dict(state["model"])
    model = model.to("cpu").float().eval()
    return ExportAdapter(
        encoder=_Encoder(model),
        decoder=_Decoder(model),
        layout=layout_of(cfg, model),
        parity_latents=lambda images: flat_codes(model, images),
        latent_stats=lambda images: latent_stats(model, images),
        objective=cfg.objective,
        architecture=cfg.architecture,
        likelihood=cfg.likelihood,
        hyperparameters=hyperparameters(cfg),
        dataset=dataset,
    )


def hyperparameters(cfg: TrainConfig) -> dict[str, str | int | float | bool]:
    """The run's learning settings (``RunConfig.learning_settings``) less the objective settings its objective
    does not read and, without labels, the few-label ones."""
    unread = set(cfg.objective_settings()) - settings_read(cfg, cfg.objective)
    return {k: v for k, v in cfg.learning_settings().items() if k not in unread and not unlabelled(cfg, k)}
