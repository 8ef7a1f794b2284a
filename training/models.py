"""Encoders and decoders of the VAE family.

Two architectures, both for 64x64 images with 1 or 3 channels:
  conv: Burgess et al. 2018, "Understanding disentangling in beta-VAE", appendix A.1: four 4x4 stride-2
        convolutions of 32 channels, fc 256, fc 256, fc 2d; the decoder mirrors it with ConvTranspose2d.
  mlp:  Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs", the dSprites MLP:
        4096-1200-1200-2d encoder and d-1200-1200-1200-4096 decoder with tanh.

The conv encoder may normalise each convolution's output (``encoder_norm``): batch or group norm. Without it
the encoder learns a few-pixel factor such as dSprites' shape slowly: on the 1% labelled subset alone its
cross-entropy stood at 0.9 nats after 500 steps, where a normalised one fits the subset in about 2,000
(scripts/labelled_code_only.py).

The decoder returns logits; ``torch.sigmoid(logits)`` is the image in [0, 1] (the mean of a Bernoulli, or
the mean of a Gaussian squashed to the pixel range).

With ``categories`` (JointVAE, Dupont 2018) the encoder has one more linear head on its last hidden layer: the
logits of each categorical part, concatenated (B, K). The decoder then takes the flat latent of the artifact's
layout, [continuous z (c) | one relaxed one-hot per part (K_i)], of width c + K.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Architecture = Literal["conv", "mlp"]
EncoderNorm = Literal["", "batch", "group"]  # after each conv of the encoder: none, batch norm, group norm
IMAGE_SIZE = 64


class ConvEncoder(nn.Module):
    def __init__(self, channels: int, latent_dim: int, classes: int = 0, norm: EncoderNorm = "") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in in (channels, 32, 32, 32):  # 64 -> 32 -> 16 -> 8 -> 4 px, 32 channels each
            layers += [nn.Conv2d(c_in, 32, 4, 2, 1), *_norm(norm, 32), nn.ReLU()]
        self.convs = nn.Sequential(*layers)  # (B, 32, 4, 4)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 2 * latent_dim),
        )  # fmt: skip
        # The categorical head reads the same last hidden layer as the Gaussian head (Dupont 2018, appendix).
        self.category_head = nn.Linear(256, classes) if classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2d + K): Gaussian parameters, then the categorical logits (K = 0 without)."""
        if self.category_head is None:
            return self.fc(self.convs(x))  # (B, 2d)
        hidden = self.fc[:-1](self.convs(x))  # (B, 256)
        return torch.cat([self.fc[-1](hidden), self.category_head(hidden)], dim=1)  # (B, 2d + K)


def _norm(norm: EncoderNorm, channels: int) -> list[nn.Module]:
    """The normalisation after each encoder convolution: none (Burgess et al.), batch norm (Ioffe & Szegedy
    2015), or group norm with 8 groups (Wu & He 2018), which behaves the same in training and in eval."""
    if norm == "batch":
        return [nn.BatchNorm2d(channels)]
    if norm == "group":
        return [nn.GroupNorm(8, channels)]
    if norm == "":
        return []
    raise ValueError(f"encoder_norm must be '', 'batch' or 'group', got {norm!r}")


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


def gumbel_softmax_sample(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """A relaxed one-hot sample, (B, K) logits -> (B, K) on the simplex.

    Jang et al. 2016 ("Categorical Reparameterization with Gumbel-Softmax"), eq. 1-2 / Maddison et al. 2016
    ("The Concrete Distribution"): y = softmax((log pi + g) / tau), g_k = -log(-log u_k), u_k ~ U(0, 1).
    Computed in fp32: the double log of a bf16 uniform would round u to 0 or 1.
    """
    u = torch.rand_like(logits, dtype=torch.float32).clamp_(1e-10, 1 - 1e-7)  # (B, K)
    gumbel = -torch.log(-torch.log(u))
    return torch.softmax((logits.float() + gumbel) / temperature, dim=1)


class VAE(nn.Module):
    """Encoder, reparameterised sampling and decoder.

    With ``deterministic=True`` (the plain autoencoder) z is the encoder mean and logvar is reported as 0:
    an AE has no posterior variance, and 0 keeps the exported contract (mu, logvar) the same for every model.

    With ``categories`` (class counts of the categorical parts, conv only) the model is a JointVAE: training
    draws a Gumbel-softmax sample per part at ``temperature``; in eval mode the decoder gets the one-hot of each
    part's most probable class, as Dupont 2018 decodes at test time.
    """

    def __init__(
        self,
        architecture: Architecture = "conv",
        channels: int = 1,
        latent_dim: int = 10,
        deterministic: bool = False,
        categories: tuple[int, ...] = (),
        temperature: float = 0.67,
        encoder_norm: EncoderNorm = "",
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if any(k < 2 for k in categories):
            raise ValueError(f"every categorical part needs at least 2 classes, got {list(categories)}")
        if encoder_norm and architecture != "conv":
            raise ValueError("encoder_norm needs the conv architecture")
        if categories and (architecture != "conv" or deterministic):
            raise ValueError("categorical latents need the conv architecture and a stochastic encoder")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        classes = sum(categories)
        if architecture == "conv":
            self.encoder: nn.Module = ConvEncoder(channels, latent_dim, classes, encoder_norm)
            self.decoder: nn.Module = ConvDecoder(channels, latent_dim + classes)
        elif architecture == "mlp":
            self.encoder = MLPEncoder(channels, latent_dim)
            self.decoder = MLPDecoder(channels, latent_dim)
        else:
            raise ValueError(f"architecture must be 'conv' or 'mlp', got {architecture!r}")
        self.architecture = architecture
        self.channels = channels
        self.latent_dim = latent_dim  # continuous dims
        self.categories = tuple(categories)
        self.temperature = temperature
        self.deterministic = deterministic

    @property
    def flat_dim(self) -> int:
        """Width of the decoder's input: continuous dims plus every categorical class."""
        return self.latent_dim + sum(self.categories)

    def encode_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> mu (B, d), logvar (B, d), categorical logits (B, K) (K = 0 without categories)."""
        return self.split_encoding(self.encoder(x))

    def split_encoding(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """An encoder's (B, 2d + K) output (this one's, or a frozen copy's) -> mu, logvar, categorical logits."""
        d = self.latent_dim
        mu, logvar, category_logits = out[:, :d], out[:, d : 2 * d], out[:, 2 * d :]
        if self.deterministic:
            logvar = torch.zeros_like(mu)
        return mu, logvar, category_logits

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar, _ = self.encode_all(x)
        return mu, logvar

    def category_probabilities(self, category_logits: torch.Tensor) -> torch.Tensor:
        """(B, K) logits -> (B, K): a softmax within each categorical part."""
        parts = category_logits.float().split(list(self.categories), dim=1)
        return torch.cat([torch.softmax(p, dim=1) for p in parts], dim=1)

    def category_codes(self, category_logits: torch.Tensor) -> torch.Tensor:
        """(B, K) -> (B, K): the decoder's categorical input, a relaxed sample per part while training, the
        one-hot of the most probable class in eval mode."""
        codes = []
        for part in category_logits.split(list(self.categories), dim=1):
            if self.training:
                codes.append(gumbel_softmax_sample(part, self.temperature))
            else:
                codes.append(nn.functional.one_hot(part.argmax(dim=1), part.shape[1]).float())
        return torch.cat(codes, dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, C, H, W) logits

    def sample_latent(
        self,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        category_logits: torch.Tensor,
        observed: tuple[slice, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """-> the flat latent z (B, d + K) the decoder reads: a posterior sample, then each part's code.

        ``observed`` = (a part's columns, (B,) classes) puts the one-hot of known classes in that part instead of
        a sample: the label is observed there, as Kingma et al. 2014 (M2) treat labelled data.
        """
        if self.deterministic:
            z = mu
        else:
            # Kingma & Welling 2014, eq. 10: z = mu + sigma * eps, eps ~ N(0, I).
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        if self.categories:
            codes = self.category_codes(category_logits)  # (B, K)
            if observed is not None:
                part, classes = observed
                truth = nn.functional.one_hot(classes, part.stop - part.start).to(codes.dtype)
                codes = torch.cat([codes[:, : part.start], truth, codes[:, part.stop :]], dim=1)
            z = torch.cat([z, codes.to(z.dtype)], dim=1)  # (B, d + K)
        return z

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> mu (B, d), logvar (B, d), categorical logits (B, K), flat latent z (B, d + K), image logits."""
        mu, logvar, category_logits = self.encode_all(x)
        z = self.sample_latent(mu, logvar, category_logits)
        return mu, logvar, category_logits, z, self.decode(z)
