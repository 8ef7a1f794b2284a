"""FactorVAE score (Kim & Mnih 2018, "Disentangling by Factorising", Sec. 4), with disentanglement_lib's settings.

Each vote fixes one factor k at a random value across a batch of ``batch_size`` points, divides each dim's
variance in that batch by its global variance, and votes (k, argmin dim). A majority-vote classifier maps every
dim to the factor it most often wins for; the score is that classifier's accuracy on fresh votes. Dims whose
global standard deviation is below ``prune_std`` are left out (collapsed to the prior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.evaluate.source import CodeSource

FACTOR_VAE_DEFINITION = "disentanglement_lib factor_vae_score: majority-vote accuracy on eval votes"
VOTES_PER_CALL = 16  # votes whose batches go to the representation together, for fewer, larger calls


@dataclass(frozen=True)
class FactorVaeResult:
    score: float  # eval accuracy
    train_accuracy: float
    num_active_dims: int
    dim_to_factor: tuple[int, ...]  # per dim, the factor the classifier assigns (-1 for a pruned dim)
    per_factor_accuracy: tuple[float, ...]  # per factor, eval accuracy over the votes that fixed it
    train_votes: np.ndarray  # (F, d) how often fixing factor k made dim i the least varying
    eval_votes: np.ndarray  # (F, d)
    names: tuple[str, ...]
    batch_size: int
    num_train: int
    num_eval: int
    num_variance_estimate: int
    prune_std: float

    def as_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "factor_vae": self.score,
            "factor_vae.definition": FACTOR_VAE_DEFINITION,
            "factor_vae.train_accuracy": self.train_accuracy,
            "factor_vae.num_active_dims": self.num_active_dims,
            "factor_vae.batch_size": self.batch_size,
            "factor_vae.num_train": self.num_train,
            "factor_vae.num_eval": self.num_eval,
            "factor_vae.num_variance_estimate": self.num_variance_estimate,
            "factor_vae.prune_std": self.prune_std,
        }
        for name, acc in zip(self.names, self.per_factor_accuracy, strict=True):
            out[f"factor_vae.accuracy.{name}"] = acc
        return out


def _votes(
    source: CodeSource, rng: np.random.Generator, num_votes: int, batch_size: int, scale: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """(F, d) vote counts: how often each dim had the least normalised variance with each factor fixed."""
    votes = np.zeros((source.num_factors, scale.size), dtype=np.int64)
    active_index = np.flatnonzero(active)  # (a,)
    done = 0
    while done < num_votes:
        v = min(VOTES_PER_CALL, num_votes - done)
        fixed = rng.integers(0, source.num_factors, size=v)  # (v,)
        classes = source.sample_factors(v * batch_size, rng).reshape(v, batch_size, -1)  # (v, B, F)
        rows = np.arange(v)
        classes[rows, :, fixed] = classes[rows, 0, fixed][:, None]
        codes = source.codes(classes.reshape(v * batch_size, -1)).reshape(v, batch_size, -1)  # (v, B, d)
        local = np.var(codes[:, :, active], axis=1, ddof=1) / scale[active] ** 2  # (v, a)
        np.add.at(votes, (fixed, active_index[np.argmin(local, axis=1)]), 1)
        done += v
    return votes


def _accuracy(votes: np.ndarray, dim_to_factor: np.ndarray) -> tuple[float, np.ndarray]:
    """Overall and per-factor accuracy of the dim -> factor classifier on (F, d) votes."""
    assigned = dim_to_factor >= 0  # pruned dims (-1) never receive votes
    correct = votes[dim_to_factor[assigned], np.flatnonzero(assigned)]  # votes the classifier gets right
    per_factor = np.zeros(votes.shape[0])
    for k in range(votes.shape[0]):
        total = votes[k].sum()
        per_factor[k] = votes[k, dim_to_factor == k].sum() / total if total else 0.0
    return float(correct.sum() / votes.sum()), per_factor


def factor_vae_score(
    source: CodeSource,
    rng: np.random.Generator,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_std: float = 0.05,
) -> FactorVaeResult:
    """FactorVAE score; the defaults are disentanglement_lib's (batch 64, 10,000 / 5,000 votes, prune std < 0.05)."""
    for field, value in (("batch_size", batch_size), ("num_train", num_train), ("num_eval", num_eval)):
        if value < 2:
            raise ValueError(f"{field} must be >= 2, got {value}")
    codes, _ = source.sample(num_variance_estimate, rng)  # (n, d)
    scale = np.std(codes, axis=0, ddof=1)  # (d,)
    active = scale >= prune_std  # (d,)
    train = np.zeros((source.num_factors, scale.size), dtype=np.int64)  # (F, d)
    evaluation = np.zeros_like(train)
    dim_to_factor = np.full(scale.size, -1)  # (d,)
    score, train_accuracy, per_factor = 0.0, 0.0, np.zeros(source.num_factors)
    if active.any():
        train = _votes(source, rng, num_train, batch_size, scale, active)
        dim_to_factor = np.where(active, np.argmax(train, axis=0), -1)
        train_accuracy, _ = _accuracy(train, dim_to_factor)
        evaluation = _votes(source, rng, num_eval, batch_size, scale, active)
        score, per_factor = _accuracy(evaluation, dim_to_factor)
    return FactorVaeResult(
        score=score,
        train_accuracy=train_accuracy,
        num_active_dims=int(active.sum()),
        dim_to_factor=tuple(int(k) for k in dim_to_factor),
        per_factor_accuracy=tuple(float(a) for a in per_factor),
        train_votes=train,
        eval_votes=evaluation,
        names=source.names,
        batch_size=batch_size,
        num_train=num_train,
        num_eval=num_eval,
        num_variance_estimate=num_variance_estimate,
        prune_std=prune_std,
    )
