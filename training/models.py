"""Encoders and decoders of the VAE family.

Two architectures, both for 64x64 images with 1 or 3 channels:
  conv: Burgess et al. 2018, "Understanding disentangling in beta-VAE", appendix A.1: four 4x4 stride-2
        convolutions of 32 channels, fc 256, fc 256, fc 2d; the decoder mirrors it with ConvTranspose2d.
  mlp:  Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", the dSprites MLP:
        4096-1200-1200-2d encoder and d-1200-1200-1200-4096 decoder with tanh.

The decoder returns logits; ``torch.sigmoid(logits)`` is the image in [0, 1] (the mean of a Bernoulli, or
the mean of a Gaussian squashed to the pixel range).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Architecture = Literal["conv", "mlp"]
IMAGE_SIZE = 64


class ConvEncoder(nn.Module):
    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 32, 32)
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 16, 16)
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 8, 8)
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 4, 4)
        )  # fmt: skip
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))  # (B, 2d)


class ConvDecoder(nn.Module):
    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 32 * 4 * 4), nn.ReLU(),
        )  # fmt: skip
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 8, 8)
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 16, 16)
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(),  # (B, 32, 32, 32)
            nn.ConvTranspose2d(32, channels, 4, 2, 1),  # (B, C, 64, 64)
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.fc(z).view(-1, 32, 4, 4))


class MLPEncoder(nn.Module):
    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * IMAGE_SIZE * IMAGE_SIZE, 1200), nn.ReLU(),
            nn.Linear(1200, 1200), nn.ReLU(),
            nn.Linear(1200, 2 * latent_dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 2d)


class MLPDecoder(nn.Module):
    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 1200), nn.Tanh(),
            nn.Linear(1200, 1200), nn.Tanh(),
            nn.Linear(1200, 1200), nn.Tanh(),
            nn.Linear(1200, channels * IMAGE_SIZE * IMAGE_SIZE),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, self.channels, IMAGE_SIZE, IMAGE_SIZE)


class VAE(nn.Module):
    """Encoder, reparameterised sampling and decoder.

    With ``deterministic=True`` (the plain autoencoder) z is the encoder mean and logvar is reported as 0:
    an AE has no posterior variance, and 0 keeps the exported contract (mu, logvar) the same for every model.
    """

    def __init__(
        self,
        architecture: Architecture = "conv",
        channels: int = 1,
        latent_dim: int = 10,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if architecture == "conv":
            self.encoder: nn.Module = ConvEncoder(channels, latent_dim)
            self.decoder: nn.Module = ConvDecoder(channels, latent_dim)
        elif architecture == "mlp":
            self.encoder = MLPEncoder(channels, latent_dim)
            self.decoder = MLPDecoder(channels, latent_dim)
        else:
            raise ValueError(f"architecture must be 'conv' or 'mlp', got {architecture!r}")
        self.architecture = architecture
        self.channels = channels
        self.latent_dim = latent_dim
        self.deterministic = deterministic

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, d), (B, d)
        if self.deterministic:
            logvar = torch.zeros_like(mu)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, C, H, W) logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        if self.deterministic:
            z = mu
        else:
            # Kingma & Welling 2014, eq. 10: z = mu + sigma * eps, eps ~ N(0, I).
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return mu, logvar, z, self.decode(z)
