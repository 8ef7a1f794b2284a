"""All supervised disentanglement metrics of one representation, as flat manifest ``metrics`` entries.

    evaluate_representation(dataset, represent, np.random.default_rng(0))  # -> {"mig": 0.31, ...}

MIG, SAP and DCI read one shared uniform sample (disentanglement_lib draws one per metric; sharing saves
encoder time and changes no expectation). FactorVAE and beta-VAE draw their own fixed-factor batches, which
is where most of the encoder's work goes: 10,000 + 15,000 x 64 images for FactorVAE and 15,000 x 128 for
beta-VAE at the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.data.base import FactorDataset
from training.evaluate.beta_vae import beta_vae_score
from training.evaluate.dci import dci
from training.evaluate.factor_vae import factor_vae_score
from training.evaluate.information import DEFAULT_BINS
from training.evaluate.mig import mig
from training.evaluate.sap import sap
from training.evaluate.source import CodeSource, Represent

# Called with a stage's name as it begins, for a progress display: the whole evaluation takes minutes.
Stage = Callable[[str], None]
SUPERVISED_STAGES = ("MIG, SAP", "DCI", "FactorVAE", "beta-VAE")


def no_stage(name: str) -> None:
    pass


@dataclass(frozen=True)
class EvaluationSettings:
    """Sample counts; the defaults are disentanglement_lib's except ``dci_num_train``."""

    num_train: int = 10_000  # MIG, SAP training set; DCI trains on its first dci_num_train rows
    num_test: int = 5_000  # SAP and DCI held-out set
    # disentanglement_lib trains DCI's trees on 10,000 points; sklearn's gradient boosting then takes ~5 min
    # for dSprites' five factors on 2 cores (one tree per class per stage, 40 classes for orientation).
    dci_num_train: int = 2_000
    bins: int = DEFAULT_BINS
    batch_size: int = 64  # FactorVAE and beta-VAE
    num_votes_train: int = 10_000  # FactorVAE votes / beta-VAE points for training
    num_votes_eval: int = 5_000
    num_variance_estimate: int = 10_000  # FactorVAE global variances

    def __post_init__(self) -> None:
        for field, value in vars(self).items():
            if value < 2:
                raise ValueError(f"{field} must be >= 2, got {value}")
        if self.dci_num_train > self.num_train:
            raise ValueError(f"dci_num_train must be <= num_train ({self.num_train}), got {self.dci_num_train}")


def evaluate_source(
    source: CodeSource, rng: np.random.Generator, settings: EvaluationSettings | None = None, stage: Stage = no_stage
) -> dict[str, float | int | str]:
    """MIG, SAP, DCI, FactorVAE and beta-VAE scores of ``source``, each with its definition and settings."""
    s = settings or EvaluationSettings()
    stage(SUPERVISED_STAGES[0])
    codes, factors = source.sample(s.num_train, rng)  # (n, d), (n, F)
    codes_test, factors_test = source.sample(s.num_test, rng)
    names = source.names
    out: dict[str, float | int | str] = {}
    out.update(mig(codes, factors, s.bins, names).as_dict())
    out.update(sap(codes, factors, codes_test, factors_test, names).as_dict())
    stage(SUPERVISED_STAGES[1])
    n = s.dci_num_train
    out.update(dci(codes[:n], factors[:n], codes_test, factors_test, rng, names).as_dict())
    stage(SUPERVISED_STAGES[2])
    out.update(
        factor_vae_score(
            source, rng, s.batch_size, s.num_votes_train, s.num_votes_eval, s.num_variance_estimate
        ).as_dict()
    )
    stage(SUPERVISED_STAGES[3])
    out.update(beta_vae_score(source, rng, s.batch_size, s.num_votes_train, s.num_votes_eval).as_dict())
    return out


def evaluate_representation(
    dataset: FactorDataset,
    represent: Represent,
    rng: np.random.Generator,
    settings: EvaluationSettings | None = None,
    stage: Stage = no_stage,
) -> dict[str, float | int | str]:
    """All supervised metrics of ``represent`` (images (B, C, H, W) -> mean codes (B, d)) on ``dataset``."""
    return evaluate_source(CodeSource.from_dataset(dataset, represent), rng, settings, stage)
