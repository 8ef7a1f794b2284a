"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018, "A Framework for the
Quantitative Evaluation of Disentangled Representations", Sec. 2), as in disentanglement_lib's ``dci``.

One gradient-boosted tree classifier per factor predicts it from the codes; its feature importances form the
(d, F) importance matrix R. Disentanglement weighs each dim's 1 - H_F(P_i.) by its share of total importance;
completeness weighs each factor's 1 - H_d(P~_.j) likewise. Informativeness is the classifiers' accuracy, as
disentanglement_lib reports it (the paper reports the prediction error, 1 - accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

from training.evaluate.inputs import factor_names, paired_splits

DCI_DEFINITION = (
    "disentanglement_lib dci: importance = sklearn GradientBoostingClassifier feature_importances_ "
    "(100 stages, depth 3, learning rate 0.1), informativeness = accuracy"
)
EPS = 1e-11  # disentanglement_lib's offset, so an all-zero row has a defined entropy


def _one_minus_entropy(weights: np.ndarray) -> np.ndarray:
    """(rows, K) non-negative weights -> (rows,) 1 - H(row / row sum) with the log in base K."""
    p = (weights + EPS) / np.sum(weights + EPS, axis=1, keepdims=True)  # (rows, K)
    return 1.0 - (-np.sum(p * np.log(p), axis=1) / np.log(weights.shape[1]))


def disentanglement(importance: np.ndarray) -> tuple[float, np.ndarray]:
    """Eastwood & Williams eq. 2-3: sum_i rho_i (1 - H_F(P_i.)) for (d, F) importances; also per dim (d,)."""
    if importance.shape[1] < 2:
        raise ValueError(f"disentanglement needs at least 2 factors, got importance shape {importance.shape}")
    per_dim = _one_minus_entropy(importance)  # (d,)
    total = importance.sum()
    weight = importance.sum(axis=1) / total if total > 0 else np.full(importance.shape[0], 1 / importance.shape[0])
    return float(np.sum(weight * per_dim)), per_dim


def completeness(importance: np.ndarray) -> tuple[float, np.ndarray]:
    """Eastwood & Williams eq. 4: sum_j w_j (1 - H_d(P~_.j)) for (d, F) importances; also per factor (F,)."""
    if importance.shape[0] < 2:
        raise ValueError(f"completeness needs at least 2 dims, got importance shape {importance.shape}")
    per_factor = _one_minus_entropy(importance.T)  # (F,)
    total = importance.sum()
    weight = importance.sum(axis=0) / total if total > 0 else np.full(importance.shape[1], 1 / importance.shape[1])
    return float(np.sum(weight * per_factor)), per_factor


@dataclass(frozen=True)
class DciResult:
    disentanglement: float
    completeness: float
    informativeness_train: float
    informativeness_test: float
    importance: np.ndarray  # (d, F)
    per_factor_completeness: tuple[float, ...]
    names: tuple[str, ...]
    num_train: int
    num_test: int

    def as_dict(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {
            "dci.disentanglement": self.disentanglement,
            "dci.completeness": self.completeness,
            "dci.informativeness_train": self.informativeness_train,
            "dci.informativeness_test": self.informativeness_test,
            "dci.definition": DCI_DEFINITION,
            "dci.num_train": self.num_train,
            "dci.num_test": self.num_test,
        }
        top_dims = np.argmax(self.importance, axis=0)  # (F,)
        for name, c, dim in zip(self.names, self.per_factor_completeness, top_dims, strict=True):
            out[f"dci.completeness.{name}"] = c
            out[f"dci.dim.{name}"] = int(dim)
        return out


def dci(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    rng: np.random.Generator,
    names: Sequence[str] | None = None,
) -> DciResult:
    """DCI from (N, d) codes and (N, F) classes; disentanglement_lib trains on 10,000 and tests on 5,000 points."""
    z, y, z_test, y_test = paired_splits(codes_train, factors_train, codes_test, factors_test)
    importance = np.zeros((z.shape[1], y.shape[1]))  # (d, F)
    train_acc, test_acc = [], []
    for j in range(y.shape[1]):
        model = GradientBoostingClassifier(random_state=int(rng.integers(2**31)))
        model.fit(z, y[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(z) == y[:, j]))
        test_acc.append(np.mean(model.predict(z_test) == y_test[:, j]))
    d_score, _ = disentanglement(importance)
    c_score, per_factor = completeness(importance)
    return DciResult(
        disentanglement=d_score,
        completeness=c_score,
        informativeness_train=float(np.mean(train_acc)),
        informativeness_test=float(np.mean(test_acc)),
        importance=importance,
        per_factor_completeness=tuple(float(c) for c in per_factor),
        names=factor_names(names, y.shape[1]),
        num_train=z.shape[0],
        num_test=z_test.shape[0],
    )
