"""InfoGAN's networks: a generator (the artifact's decoder) and a discriminator whose conv trunk it shares
with the Q head (the artifact's encoder).

Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by Information Maximizing Generative
Adversarial Nets": the generator takes noise plus latent codes c; Q(c|x) reads the codes back from an image
and shares all conv layers with D. Architecture after Radford et al. 2016 (DCGAN): strided (transposed)
convolutions, batch norm and ReLU in G, leaky ReLU in D. D's layers are spectrally normalised (Miyato et al.
2018), which keeps D Lipschitz and the small CPU-sized GAN stable without batch norm in D.

The generator's input is the layout vector, in layout order: continuous codes, each categorical code one-hot,
then noise. It returns logits; ``torch.sigmoid(logits)`` is the image in [0, 1], as for the VAE decoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

IMAGE_SIZE = 64
CODE_LOW, CODE_HIGH = -1.0, 1.0  # the continuous codes' prior, U(low, high), which the artifact's layout states
DiscriminatorNorm = Literal["spectral", "batch"]


@dataclass(frozen=True)
class CodeLayout:
    """The parts of the generator's input: ``continuous`` codes ~ U(-1, 1), one categorical code per entry of
    ``categorical`` (its number of classes, one-hot), then ``noise`` dims ~ N(0, 1)."""

    continuous: int
    categorical: tuple[int, ...]
    noise: int

    @property
    def categorical_dim(self) -> int:
        return sum(self.categorical)

    @property
    def size(self) -> int:
        return self.continuous + self.categorical_dim + self.noise

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Draw ``batch`` layout vectors; return (z (B, size), continuous (B, k), classes (B, n_cat) int64)."""
        continuous = torch.rand(batch, self.continuous, generator=generator) * (CODE_HIGH - CODE_LOW) + CODE_LOW
        classes = torch.stack(
            [torch.randint(0, n, (batch,), generator=generator) for n in self.categorical], dim=1
        ) if self.categorical else torch.zeros(batch, 0, dtype=torch.long)  # fmt: skip
        noise = torch.randn(batch, self.noise, generator=generator)
        return self.assemble(continuous, classes, noise), continuous, classes

    def assemble(self, continuous: torch.Tensor, classes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        one_hot = [nn.functional.one_hot(classes[:, i], n).float() for i, n in enumerate(self.categorical)]
        return torch.cat([continuous, *one_hot, noise], dim=1)  # (B, size)


class Generator(nn.Module):
    """Layout vector (B, size) -> (B, C, 64, 64) logits. Channels 8w, 4w, 2w, w from 4x4 up to 32x32.

    Each doubling is a nearest-neighbour upsampling and a 3x3 convolution rather than a stride-2 transposed
    convolution, whose uneven kernel overlap paints checkerboards (Odena et al. 2016, "Deconvolution and
    Checkerboard Artifacts"); on these thin-stroke digits it drew isolated bright dots.
    """

    def __init__(self, input_dim: int, channels: int, width: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.width = width
        self.fc = nn.Sequential(
            nn.Linear(input_dim, 8 * width * 4 * 4, bias=False), nn.BatchNorm1d(8 * width * 4 * 4), nn.ReLU(),
        )  # fmt: skip
        self.ups = nn.Sequential(
            *self._up(8 * width, 4 * width),  # (B, 4w, 8, 8)
            *self._up(4 * width, 2 * width),  # (B, 2w, 16, 16)
            *self._up(2 * width, width),  # (B, w, 32, 32)
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(width, channels, 3, 1, 1),  # (B, C, 64, 64)
        )

    @staticmethod
    def _up(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
        ]  # fmt: skip

    def start_at(self, mean_pixel: float) -> None:
        """Start from the data's mean intensity instead of grey: with a mostly black dataset, D tells a grey
        image from a real one at once and G's first gradients only say "darker"."""
        mean_pixel = min(max(mean_pixel, 1e-3), 1 - 1e-3)
        last = self.ups[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        with torch.no_grad():
            last.bias.fill_(float(torch.logit(torch.tensor(mean_pixel))))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.ups(self.fc(z).view(-1, 8 * self.width, 4, 4))


class Discriminator(nn.Module):
    """A shared conv trunk with two heads: D's real/fake logit and Q's code posterior.

    Q gives, per categorical code, class logits, and per continuous code a factored Gaussian's mean and log
    variance (Chen et al. 2016, section 6: "for continuous latent code, we parameterize the approximate
    posterior through a diagonal Gaussian").
    """

    def __init__(
        self, layout: CodeLayout, channels: int, width: int, q_hidden: int = 64, norm: DiscriminatorNorm = "spectral"
    ) -> None:
        super().__init__()
        if norm not in ("spectral", "batch"):
            raise ValueError(f"norm must be 'spectral' or 'batch', got {norm!r}")
        self.layout = layout

        def down(c_in: int, c_out: int, first: bool = False) -> list[nn.Module]:
            if norm == "spectral":
                return [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            # DCGAN: batch norm in every layer but D's first
            normed = [] if first else [nn.BatchNorm2d(c_out)]
            return [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=first), *normed, nn.LeakyReLU(0.2)]

        self.trunk = nn.Sequential(
            *down(channels, width, first=True),  # (B, w, 32, 32)
            *down(width, 2 * width),  # (B, 2w, 16, 16)
            *down(2 * width, 4 * width),  # (B, 4w, 8, 8)
            *down(4 * width, 8 * width),  # (B, 8w, 4, 4)
            nn.Flatten(),
        )
        features = 8 * width * 4 * 4
        head = nn.Linear(features, 1)
        self.d_head = spectral_norm(head) if norm == "spectral" else head
        self.q_head = nn.Sequential(
            nn.Linear(features, q_hidden), nn.LeakyReLU(0.2),
            nn.Linear(q_hidden, layout.categorical_dim + 2 * layout.continuous),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> real/fake logit (B,), Q's raw output (B, categorical_dim + 2k)."""
        h = self.trunk(x)  # (B, 8w * 16)
        return self.d_head(h).squeeze(1), self.q_head(h)

    def q(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_head(self.trunk(x))

    def split_q(self, q: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Q's raw output -> (class logits per categorical code, continuous mean (B, k), log variance (B, k))."""
        logits = list(torch.split(q[:, : self.layout.categorical_dim], list(self.layout.categorical), dim=1))
        mean, logvar = q[:, self.layout.categorical_dim :].chunk(2, dim=1)
        # Bounded so that one confident Q cannot drive the NLL to -inf; e^-8 is far below any code's spread.
        return logits, mean, logvar.clamp(-8.0, 4.0)


class InfoGAN(nn.Module):
    def __init__(
        self,
        layout: CodeLayout,
        channels: int = 1,
        width: int = 16,
        q_hidden: int = 64,
        d_norm: DiscriminatorNorm = "spectral",
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.layout = layout
        self.channels = channels
        self.generator = Generator(layout.size, channels, width)
        self.discriminator = Discriminator(layout, channels, width, q_hidden, d_norm)


def fold_spectral_norm(model: InfoGAN) -> InfoGAN:
    """Replace each spectrally normalised weight by its current value W / sigma(W), in place.

    In eval mode the normalisation is a fixed division, but it is still computed per call (``vdot`` of the
    stored singular vectors), which ONNX cannot express; folded, the network computes the same function.
    """
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model
