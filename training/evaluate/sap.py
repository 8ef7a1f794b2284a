"""SAP, the Separated Attribute Predictability score (Kumar et al. 2018, "Variational Inference of Disentangled
Latent Concepts from Unlabeled Observations", Sec. 3), as in disentanglement_lib's ``sap_score`` with
``continuous_factors=False``.

For every (dim i, factor j), a linear SVM (C = 0.01, balanced class weights) predicts factor j from dim i alone;
its held-out accuracy fills a (d, F) score matrix. SAP is the mean over factors of the gap between the two best
dims. One deviation, stated in the definition: each dim is standardised (training mean and std) before its SVM.
disentanglement_lib feeds raw codes, which makes the strongly regularised SVM, and so the score, depend on the
code's scale and offset; standardised, a rescaled or shifted code scores the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.svm import LinearSVC

from training.evaluate.inputs import factor_names, paired_splits

SAP_DEFINITION = (
    "disentanglement_lib sap_score, continuous_factors=False: mean over factors of the top-two gap in held-out "
    "accuracy of sklearn LinearSVC(C=0.01, class_weight=balanced) on one dim, each dim standardised first"
)
SVM_C = 0.01


@dataclass(frozen=True)
class SapResult:
    score: float
    gaps: tuple[float, ...]  # per factor, best minus second-best dim accuracy
    top_dims: tuple[int, ...]  # per factor, the dim that predicts it best
    scores: np.ndarray  # (d, F) held-out accuracy of each single-dim classifier
    names: tuple[str, ...]
    num_train: int
    num_test: int

    def as_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "sap": self.score,
            "sap.definition": SAP_DEFINITION,
            "sap.num_train": self.num_train,
            "sap.num_test": self.num_test,
        }
        for name, gap, dim in zip(self.names, self.gaps, self.top_dims, strict=True):
            out[f"sap.gap.{name}"] = gap
            out[f"sap.dim.{name}"] = dim
        return out


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both (N, d) arrays scaled by the training mean and std; a constant dim stays constant (at 0)."""
    mean = train.mean(axis=0)  # (d,)
    std = train.std(axis=0)  # (d,)
    std[std == 0] = 1.0
    return (train - mean) / std, (test - mean) / std


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    names: Sequence[str] | None = None,
) -> SapResult:
    """SAP from (N, d) codes and (N, F) classes; disentanglement_lib trains on 10,000 and tests on 5,000 points."""
    z, y, z_test, y_test = paired_splits(codes_train, factors_train, codes_test, factors_test)
    z, z_test = _standardise(z, z_test)
    scores = np.zeros((z.shape[1], y.shape[1]))  # (d, F)
    for i in range(z.shape[1]):
        for j in range(y.shape[1]):
            model = LinearSVC(C=SVM_C, class_weight="balanced").fit(z[:, [i]], y[:, j])
            scores[i, j] = np.mean(model.predict(z_test[:, [i]]) == y_test[:, j])
    ranked = np.sort(scores, axis=0)[::-1]  # (d, F), best first
    second = ranked[1] if scores.shape[0] > 1 else np.zeros(scores.shape[1])  # (F,)
    gaps = ranked[0] - second  # (F,)
    return SapResult(
        score=float(np.mean(gaps)),
        gaps=tuple(float(g) for g in gaps),
        top_dims=tuple(int(i) for i in np.argmax(scores, axis=0)),
        scores=scores,
        names=factor_names(names, y.shape[1]),
        num_train=z.shape[0],
        num_test=z_test.shape[0],
    )
