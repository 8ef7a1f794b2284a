"""beta-VAE score (Higgins et al. 2017, "beta-VAE: Learning Basic Visual Concepts...", Sec. 3), as in
disentanglement_lib's ``beta_vae_sklearn``.

Each point fixes one factor k: two batches of ``batch_size`` factor draws share factor k pair by pair, and the
feature is the mean absolute difference of their codes, (d,). A logistic regression predicts k from the
feature; the score is its accuracy on held-out points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from training.evaluate.source import CodeSource

BETA_VAE_DEFINITION = (
    "disentanglement_lib beta_vae_sklearn: eval accuracy of sklearn LogisticRegression (lbfgs, C=1) "
    "predicting the fixed factor from mean |z1 - z2| over a batch"
)
POINTS_PER_CALL = 8  # points whose batches go to the representation together, for fewer, larger calls
MAX_ITER = 1000  # sklearn's default of 100 stops lbfgs short on unscaled codes


@dataclass(frozen=True)
class BetaVaeResult:
    score: float  # eval accuracy
    train_accuracy: float
    batch_size: int
    num_train: int
    num_eval: int

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "beta_vae": self.score,
            "beta_vae.definition": BETA_VAE_DEFINITION,
            "beta_vae.train_accuracy": self.train_accuracy,
            "beta_vae.batch_size": self.batch_size,
            "beta_vae.num_train": self.num_train,
            "beta_vae.num_eval": self.num_eval,
            "beta_vae.max_iter": MAX_ITER,
        }


def beta_vae_features(
    source: CodeSource, rng: np.random.Generator, num_points: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(num_points, d) features, mean |z1 - z2| over a batch, and (num_points,) the factor each one fixed."""
    features, labels = [], []
    done = 0
    while done < num_points:
        p = min(POINTS_PER_CALL, num_points - done)
        fixed = rng.integers(0, source.num_factors, size=p)  # (p,)
        first = source.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)  # (p, B, F)
        second = source.sample_factors(p * batch_size, rng).reshape(p, batch_size, -1)  # (p, B, F)
        rows = np.arange(p)
        second[rows, :, fixed] = first[rows, :, fixed]
        both = np.concatenate([first, second], axis=0).reshape(2 * p * batch_size, -1)  # (2pB, F)
        codes = source.codes(both).reshape(2, p, batch_size, -1)  # (2, p, B, d)
        features.append(np.mean(np.abs(codes[0] - codes[1]), axis=1))  # (p, d)
        labels.append(fixed)
        done += p
    return np.concatenate(features), np.concatenate(labels)


def beta_vae_score(
    source: CodeSource,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
) -> BetaVaeResult:
    """beta-VAE score; the defaults are disentanglement_lib's (batch 64, 10,000 train / 5,000 eval points)."""
    for field, value in (("batch_size", batch_size), ("num_train", num_train), ("num_eval", num_eval)):
        if value < 1:
            raise ValueError(f"{field} must be >= 1, got {value}")
    x_train, y_train = beta_vae_features(source, rng, num_train, batch_size)
    x_eval, y_eval = beta_vae_features(source, rng, num_eval, batch_size)
    if np.unique(y_train).size < 2:
        raise ValueError(f"num_train must be large enough to fix at least 2 factors, got {num_train}")
    model = LogisticRegression(max_iter=MAX_ITER, random_state=int(rng.integers(2**31)))
    model.fit(x_train, y_train)
    return BetaVaeResult(
        score=float(np.mean(model.predict(x_eval) == y_eval)),
        train_accuracy=float(np.mean(model.predict(x_train) == y_train)),
        batch_size=batch_size,
        num_train=num_train,
        num_eval=num_eval,
    )
