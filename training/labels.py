"""Few-label supervision, shared by both model families (Locatello et al. 2020; ss-InfoGAN, Spurr et al. 2017):
the settings that name the labelled factors, and the fixed labelled subset every step draws from.

On a fixed ``label_fraction`` of the images (at most 1%), the first categorical code learns to read
``label_factor`` and the first continuous codes the ``label_continuous`` factors; how each family turns the
labels into a loss is its own (``train.labelled_loss``, ``infogan.label_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.data.base import FactorDataset, ImageDataset, LabelledDataset

MAX_LABEL_FRACTION = 0.01  # Locatello et al. 2020 use 0.01% to 1% of labels; we allow at most 1%


@dataclass
class FewLabels:
    """The few-label settings both families take; each adds its own (the VAE's warm-up and ties, InfoGAN's
    label_real_only)."""

    # the fraction of images labelled, the factor the first categorical code reads, the factors the first
    # continuous codes read (comma-separated, in code order)
    label_fraction: float = 0.0
    label_factor: str = ""
    label_continuous: str = ""
    label_weight: float = 1.0  # the weight of the label terms
    label_batch: int = 16  # labelled images drawn at every step
    # A label-preserving augmentation of the labelled images: each is moved by up to this many pixels in x and
    # y at every draw; tied positions follow the move where the dataset says how (``ImageDataset.tie_shift``).
    # Without it a 907-image digits subset was learnt by heart (its cross-entropy 0.1 nats) while the code
    # read fresh renders right 56-77% of the time.
    label_shift: int = 0

    def check_labels(self) -> None:
        if not 0 <= self.label_fraction <= MAX_LABEL_FRACTION:
            raise ValueError(f"label_fraction must be in [0, {MAX_LABEL_FRACTION}], got {self.label_fraction}")
        if self.label_batch < 1:
            raise ValueError(f"label_batch must be >= 1, got {self.label_batch}")
        if self.label_shift < 0:
            raise ValueError(f"label_shift must be >= 0 pixels, got {self.label_shift}")
        if not 0 <= self.label_weight < float("inf"):
            raise ValueError(f"label_weight must be a finite number >= 0, got {self.label_weight}")
        self.continuous_labels()

    def continuous_labels(self) -> list[str]:
        """``label_continuous`` parsed: the factor tied to each of the first continuous codes, in code order."""
        names = [n.strip() for n in self.label_continuous.split(",") if n.strip()]
        if len(set(names)) < len(names):
            raise ValueError(f"label_continuous: factor names must be unique, got {names}")
        return names


def unlabelled(cfg: FewLabels, setting: str) -> bool:
    """Whether ``setting`` is a few-label setting of a run without labels (inert: a manifest leaves it out)."""
    return cfg.label_fraction == 0 and setting.startswith("label_")


@dataclass
class LabelledSubset:
    """The fixed few-label subset: its images rendered once (uint8) and each image's class of one factor."""

    images: torch.Tensor  # (L, C, H, W) uint8
    labels: torch.Tensor  # (L,) int64
    part: slice  # the supervised part's columns of the categorical logits
    targets: torch.Tensor  # (L, m) float32: the tied continuous factors, standardised (m = 0 when none)
    batch_size: int = 16  # images drawn at every step (cfg.label_batch)
    shift: int = 0  # each draw moves every image by up to this many pixels (cfg.label_shift)
    shift_rates: torch.Tensor | None = None  # (2, m): the targets' change per pixel moved right, down

    @classmethod
    def draw(
        cls,
        dataset: ImageDataset,
        factor_name: str,
        code: tuple[str, int],
        part: slice,
        continuous: list[str],
        fraction: float,
        seed: int,
        batch_size: int,
        shift: int = 0,
    ) -> LabelledSubset:
        """A fixed ``fraction`` of ``dataset``, labelled with factor ``factor_name`` for the categorical ``code``
        (its name and classes; ``part``: its columns of the logits) and with the ``continuous`` factors' targets."""
        if not isinstance(dataset, LabelledDataset | FactorDataset):
            raise ValueError(f"label_fraction needs a dataset with factors; {dataset.name!r} has none")
        names = [f.name for f in dataset.factors]
        if factor_name not in names:
            raise ValueError(f"label_factor must be one of {names}, got {factor_name!r}")
        unknown = [tied for tied in continuous if tied not in names]
        if unknown:
            raise ValueError(f"label_continuous: expected factors among {names}, got {unknown[0]!r}")
        factor = dataset.factors[names.index(factor_name)]
        if code[1] != factor.size:
            raise ValueError(
                f"label_factor {factor.name!r} has {factor.size} values; the categorical part {code[0]!r} it is "
                f"tied to has {code[1]} classes"
            )
        # Seeded apart from the batches: the same images stay labelled when a run is resumed.
        indices = dataset.labelled_indices(fraction, np.random.default_rng([seed, 7919]))
        count = len(indices)
        images = torch.from_numpy((dataset.images(indices) * 255).round().astype(np.uint8))
        classes_of = dataset.index_to_factors(indices)  # (L, F)
        labels = torch.from_numpy(classes_of[:, names.index(factor_name)].astype(np.int64))
        columns = [dataset.tie_targets(tied, classes_of) for tied in continuous]  # each (L, m)
        targets = torch.from_numpy(np.concatenate(columns, axis=1) if columns else np.zeros((count, 0))).float()
        rates = [dataset.tie_shift(tied) for tied in continuous] if shift else []  # each (2, m)
        shift_rates = torch.from_numpy(np.concatenate(rates, axis=1)).float() if rates else None
        return cls(images, labels, part, targets, batch_size, shift, shift_rates)

    def batch(self, seed: int, rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, rank, step, 1])
        picked = torch.from_numpy(rng.integers(0, len(self.labels), size=self.batch_size))
        images = self.images[picked].float().div_(255)  # (L, C, H, W)
        if self.shift:
            # Pad with background and crop back at a random offset: a move of up to `shift` px, nothing wrapped.
            s = self.shift
            padded = torch.nn.functional.pad(images, (s, s, s, s))  # (L, C, H + 2s, W + 2s)
            h, w = images.shape[-2:]
            offsets = rng.integers(0, 2 * s + 1, size=(self.batch_size, 2))
            images = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets)])
            if self.shift_rates is not None:  # tied positions follow the move: (L, 2) px right, down
                moved = torch.from_numpy(s - offsets[:, ::-1].copy()).float()
                return images, self.labels[picked], self.targets[picked] + moved @ self.shift_rates
        return images, self.labels[picked], self.targets[picked]  # (L, C, H, W), (L,), (L, m)
