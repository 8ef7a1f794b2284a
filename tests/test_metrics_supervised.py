"""Supervised disentanglement metrics on constructed representations, whose right answers are known.

Exact results come from full factor grids (every combination once), where independent factors have exactly
zero empirical mutual information and any predictor that reads an unrelated dim scores exactly chance.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from pydantic import TypeAdapter

from training.data.base import Factor, FactorDataset
from training.evaluate.beta_vae import beta_vae_score
from training.evaluate.dci import completeness, dci, disentanglement
from training.evaluate.factor_vae import factor_vae_score
from training.evaluate.information import mutual_information_matrix
from training.evaluate.mig import mig
from training.evaluate.sap import sap
from training.evaluate.source import CodesOf, CodeSource
from training.evaluate.suite import EvaluationSettings, evaluate_representation

PERM = np.array([2, 0, 1])
SCALE = np.array([3.0, -0.25, 40.0])
SHIFT = np.array([-7.0, 2.0, 0.5])


def full_grid(sizes: tuple[int, ...], repeats: int = 1) -> np.ndarray:
    """(repeats * prod(sizes), F) every combination of classes, ``repeats`` times."""
    grid = np.array(list(itertools.product(*[range(s) for s in sizes])), dtype=np.int64)
    return np.tile(grid, (repeats, 1))


def identity(classes: np.ndarray) -> np.ndarray:
    return classes.astype(np.float64)


def permuted_affine(classes: np.ndarray) -> np.ndarray:
    """The factors themselves, reordered, rescaled (two signs flipped) and shifted."""
    return classes[:, PERM] * SCALE[PERM] + SHIFT


def entangled(classes: np.ndarray) -> np.ndarray:
    """Dim 0 carries factors 0 and 1 together (bijectively: 2 * c0 + c1), dim 1 carries factor 2."""
    return np.stack([2.0 * classes[:, 0] + classes[:, 1], classes[:, 2]], axis=1)


def noise_of(seed: int) -> CodesOf:
    rng = np.random.default_rng(seed)
    return lambda classes: rng.normal(size=(classes.shape[0], 3))


def noisy(seed: int, sigma: float) -> CodesOf:
    """Each factor in its own dim under Gaussian noise: informative, but far from perfect."""
    rng = np.random.default_rng(seed)
    return lambda classes: classes + sigma * rng.normal(size=classes.shape)


def entropy_nats(counts: list[int]) -> float:
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c)


def exact_bin(value: int, top: int, bins: int) -> int:
    """Equal-width bin of integer ``value`` on [0, top] in exact arithmetic; the maximum joins the last bin."""
    return min(math.floor(Fraction(value * bins, top)), bins - 1)


def direct_mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in I(x; y) in nats by counting pairs in Python, written apart from the module under test."""
    n = len(x)
    joint: dict[tuple[int, int], int] = {}
    for a, b in zip(x.tolist(), y.tolist(), strict=True):
        joint[(a, b)] = joint.get((a, b), 0) + 1
    px = {a: np.count_nonzero(x == a) / n for a in set(x.tolist())}
    py = {b: np.count_nonzero(y == b) / n for b in set(y.tolist())}
    return sum(c / n * math.log((c / n) / (px[a] * py[b])) for (a, b), c in joint.items())


# --- MIG -----------------------------------------------------------------------------------------------------


def test_mig_of_the_factors_is_what_20_equal_width_bins_allow() -> None:
    sizes = (3, 40, 6)
    classes = full_grid(sizes)
    # Per factor of k values on 0..k-1, the top dim is its own, a function of it, so I = H(bin(v)); every
    # other dim is an independent factor, I = 0 on the full grid. So the gap is H(bin(v)) / H(v).
    expected = []
    for k in sizes:
        bins = [exact_bin(v, k - 1, 20) for v in range(k)]
        expected.append(entropy_nats([bins.count(b) for b in range(20)]) / math.log(k))
    # 40 values in 20 bins of width 39/20: bin b holds exactly 2b and 2b+1, so log 20 / log 40 < 1.
    assert expected[1] == pytest.approx(math.log(20) / math.log(40), abs=1e-12)
    assert expected[0] == pytest.approx(1.0) and expected[2] == pytest.approx(1.0)

    result = mig(identity(classes), classes, bins=20, names=["a", "b", "c"])

    assert result.gaps == pytest.approx(expected, abs=1e-12)
    assert result.score == pytest.approx(np.mean(expected), abs=1e-12)
    assert result.score < 1
    assert result.top_dims == (0, 1, 2)


def test_mig_is_the_same_for_a_permuted_and_rescaled_copy() -> None:
    classes = full_grid((3, 40, 6))
    plain = mig(identity(classes), classes)
    moved = mig(classes[:, PERM] * SCALE[PERM] + SHIFT, classes)
    assert moved.score == pytest.approx(plain.score, abs=1e-12)
    assert moved.gaps == pytest.approx(plain.gaps, abs=1e-12)
    assert moved.top_dims == tuple(int(np.flatnonzero(PERM == j)[0]) for j in range(3))


def test_mig_of_noise_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    classes = CodeSource.from_function((3, 40, 6), identity).sample_factors(10_000, rng)
    assert mig(rng.normal(size=(10_000, 3)), classes).score < 0.01


def test_mig_does_not_penalise_one_dim_carrying_two_factors() -> None:
    """Dim 0 determines factors 0 and 1 completely, and no other dim knows either: MIG's gaps stay 1."""
    classes = full_grid((2, 2, 2), repeats=10)
    assert mig(entangled(classes), classes).score == pytest.approx(1.0, abs=1e-12)


def test_mig_matches_a_direct_computation_of_its_formula() -> None:
    rng = np.random.default_rng(1)
    classes = CodeSource.from_function((4, 5, 3), identity).sample_factors(3000, rng)
    codes = noisy(2, 1.0)(classes)
    # Equal-width bins by hand: bin = floor((x - min) / width), the maximum put in the last bin.
    labels = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        lo, hi = codes[:, i].min(), codes[:, i].max()
        labels[:, i] = np.minimum(((codes[:, i] - lo) / ((hi - lo) / 20)).astype(np.int64), 19)
    info = np.array([[direct_mutual_information(labels[:, i], classes[:, j]) for j in range(3)] for i in range(3)])
    gaps = []
    for j in range(3):
        top, second = sorted(info[:, j], reverse=True)[:2]
        gaps.append((top - second) / entropy_nats(np.bincount(classes[:, j]).tolist()))

    assert mutual_information_matrix(codes, classes) == pytest.approx(info, abs=1e-12)
    assert mig(codes, classes).score == pytest.approx(sum(gaps) / 3, abs=1e-12)


def test_mig_as_dict_names_its_definition_and_settings() -> None:
    classes = full_grid((2, 3))
    out = mig(identity(classes), classes, bins=20, names=["shape", "scale"]).as_dict()
    assert "disentanglement_lib" in str(out["mig.definition"])
    assert out["mig.bins"] == 20 and out["mig.num_points"] == 6
    assert out["mig.dim.scale"] == 1
    TypeAdapter(dict[str, float | int | str]).validate_python(out, strict=True)


@pytest.mark.parametrize(
    ("codes", "factors", "message"),
    [
        (np.zeros((5, 2)), np.zeros((4, 1), dtype=np.int64), "same number of rows, got 5 and 4"),
        (np.full((4, 2), np.nan), np.array([[0], [1], [0], [1]]), "codes must be finite, got 8 non-finite"),
        (np.zeros((4, 2)), np.array([[0.5], [1], [0], [1]]), "factors must hold integer classes, got dtype float64"),
        (np.zeros((4, 2)), np.array([[1, 0], [1, 1], [1, 0], [1, 1]]), "factors column 0 must take at least 2"),
        (np.zeros(4), np.array([[0], [1], [0], [1]]), "codes must be a 2-D array"),
    ],
)
def test_mig_rejects_bad_input_naming_the_field(codes: np.ndarray, factors: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mig(codes, factors)


# --- DCI -----------------------------------------------------------------------------------------------------


def direct_one_minus_entropy(weights: list[float], base: int) -> float:
    total = sum(w + 1e-11 for w in weights)
    return 1 - sum(-(w + 1e-11) / total * math.log((w + 1e-11) / total, base) for w in weights)


def direct_dci(importance: np.ndarray) -> tuple[float, float]:
    """Eastwood & Williams eq. 2-4 with loops over the (d, F) importance matrix."""
    d, f = importance.shape
    total = importance.sum()
    dis = sum(importance[i].sum() / total * direct_one_minus_entropy(list(importance[i]), f) for i in range(d))
    com = sum(importance[:, j].sum() / total * direct_one_minus_entropy(list(importance[:, j]), d) for j in range(f))
    return dis, com


def test_dci_formulas_on_hand_made_importances() -> None:
    assert disentanglement(np.eye(3))[0] == pytest.approx(1.0, abs=1e-8)
    assert completeness(np.eye(3))[0] == pytest.approx(1.0, abs=1e-8)
    # One dim splits its importance evenly over two of three factors: D_0 = 1 - log 2 / log 3, weighted 2/3.
    shared = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert disentanglement(shared)[0] == pytest.approx(2 / 3 * (1 - math.log(2) / math.log(3)) + 1 / 3, abs=1e-8)
    # Each factor is still read from a single dim, so completeness is untouched.
    assert completeness(shared)[0] == pytest.approx(1.0, abs=1e-8)
    uniform = np.ones((4, 3))
    assert disentanglement(uniform)[0] == pytest.approx(0.0, abs=1e-8)
    assert completeness(uniform)[0] == pytest.approx(0.0, abs=1e-8)


def test_dci_of_the_factors_is_perfect_and_of_a_rescaled_copy_the_same() -> None:
    sizes = (2, 3, 2)
    train, test = full_grid(sizes, repeats=20), full_grid(sizes)
    plain = dci(identity(train), train, identity(test), test, np.random.default_rng(0))
    moved = dci(permuted_affine(train), train, permuted_affine(test), test, np.random.default_rng(0))
    for result in (plain, moved):
        # Each factor is a function of its own dim and independent of the others: every split lands there.
        assert result.disentanglement == pytest.approx(1.0, abs=1e-6)
        assert result.completeness == pytest.approx(1.0, abs=1e-6)
        assert result.informativeness_test == 1.0
    assert moved.importance == pytest.approx(plain.importance[PERM], abs=1e-9)


def test_dci_penalises_one_dim_carrying_two_factors_and_noise_scores_near_zero() -> None:
    sizes = (2, 2, 2)
    train, test = full_grid(sizes, repeats=50), full_grid(sizes, repeats=5)
    tangled = dci(entangled(train), train, entangled(test), test, np.random.default_rng(0))
    assert tangled.disentanglement == pytest.approx(2 / 3 * (1 - math.log(2) / math.log(3)) + 1 / 3, abs=0.02)
    assert tangled.completeness == pytest.approx(1.0, abs=1e-6)

    source = CodeSource.from_function((2, 3, 4), noise_of(1))
    z, y = source.sample(1000, np.random.default_rng(2))
    z_test, y_test = source.sample(500, np.random.default_rng(3))
    noise = dci(z, y, z_test, y_test, np.random.default_rng(0))
    assert noise.disentanglement < 0.1 and noise.completeness < 0.1


def test_dci_matches_a_direct_computation_of_its_formula() -> None:
    source = CodeSource.from_function((2, 3, 4), noisy(4, 0.7))
    z, y = source.sample(1000, np.random.default_rng(5))
    z_test, y_test = source.sample(500, np.random.default_rng(6))
    result = dci(z, y, z_test, y_test, np.random.default_rng(0), names=["a", "b", "c"])
    dis, com = direct_dci(result.importance)
    assert result.disentanglement == pytest.approx(dis, abs=1e-12)
    assert result.completeness == pytest.approx(com, abs=1e-12)
    assert result.importance.sum(axis=0) == pytest.approx(np.ones(3))  # sklearn importances sum to 1 per tree
    out = result.as_dict()
    assert out["dci.num_train"] == 1000 and out["dci.num_test"] == 500
    assert "GradientBoostingClassifier" in str(out["dci.definition"])


# --- SAP -----------------------------------------------------------------------------------------------------


def test_sap_of_binary_factors_is_exactly_one_half_also_when_rescaled() -> None:
    """Each factor's own dim predicts it perfectly; any other dim is independent on the full grid, so whatever
    the classifier does with it, it is right on exactly half the test points: every gap is 1 - 1/2."""
    sizes = (2, 2, 2)
    train, test = full_grid(sizes, repeats=50), full_grid(sizes, repeats=3)
    for represent in (identity, permuted_affine):
        result = sap(represent(train), train, represent(test), test)
        assert result.gaps == pytest.approx([0.5, 0.5, 0.5], abs=1e-12)
        assert result.score == pytest.approx(0.5, abs=1e-12)


def test_sap_penalises_one_dim_carrying_two_factors_and_noise_scores_near_zero() -> None:
    sizes = (2, 2, 2)
    train, test = full_grid(sizes, repeats=50), full_grid(sizes, repeats=3)
    tangled = sap(entangled(train), train, entangled(test), test)
    # Factor 1 is the parity of dim 0 (0, 1, 2, 3): no threshold on one dim separates it.
    assert tangled.gaps[1] <= 0.25 + 1e-12
    assert tangled.score < 0.5 - 0.08

    source = CodeSource.from_function((2, 3, 4), noise_of(7))
    z, y = source.sample(2000, np.random.default_rng(8))
    z_test, y_test = source.sample(1000, np.random.default_rng(9))
    assert sap(z, y, z_test, y_test).score < 0.05


def test_sap_matches_a_direct_computation_of_its_formula() -> None:
    source = CodeSource.from_function((2, 3, 4), noisy(10, 0.5))
    z, y = source.sample(2000, np.random.default_rng(11))
    z_test, y_test = source.sample(1000, np.random.default_rng(12))
    result = sap(z, y, z_test, y_test, names=["a", "b", "c"])
    gaps = []
    for j in range(3):
        top, second = sorted(result.scores[:, j].tolist(), reverse=True)[:2]
        gaps.append(top - second)
    assert result.score == pytest.approx(sum(gaps) / 3, abs=1e-12)
    # Chance for an unrelated dim is 1 / (number of values); the own dim does better.
    for j, k in enumerate((2, 3, 4)):
        assert result.top_dims[j] == j
        assert result.scores[j, j] > 1 / k + 0.1
    assert result.as_dict()["sap.dim.c"] == 2


# --- FactorVAE and beta-VAE ----------------------------------------------------------------------------------


def test_factor_vae_of_the_factors_is_one_also_when_rescaled() -> None:
    """With factor k fixed, its own dim has zero variance in the batch, so it always wins the vote."""
    for represent in (identity, permuted_affine):
        source = CodeSource.from_function((3, 4, 5), represent)
        result = factor_vae_score(source, np.random.default_rng(0), num_train=500, num_eval=300)
        assert result.score == 1.0 and result.train_accuracy == 1.0
        assert result.num_active_dims == 3


def test_factor_vae_penalises_one_dim_carrying_two_factors_and_noise_scores_chance() -> None:
    tangled = factor_vae_score(
        CodeSource.from_function((2, 2, 2), entangled), np.random.default_rng(0), num_train=600, num_eval=600
    )
    # Fixing factor 0 or 1 both make dim 0 the stillest; the classifier can give dim 0 to only one of them.
    assert tangled.score < 0.75
    noise = factor_vae_score(
        CodeSource.from_function((3, 4, 5), noise_of(3)), np.random.default_rng(1), num_train=600, num_eval=600
    )
    assert noise.score == pytest.approx(1 / 3, abs=0.1)


def test_factor_vae_prunes_collapsed_dims() -> None:
    def with_collapsed(classes: np.ndarray) -> np.ndarray:
        return np.concatenate([classes.astype(np.float64), np.full((classes.shape[0], 2), 0.3)], axis=1)

    result = factor_vae_score(
        CodeSource.from_function((3, 4), with_collapsed), np.random.default_rng(0), num_train=200, num_eval=100
    )
    assert result.num_active_dims == 2
    assert result.dim_to_factor == (0, 1, -1, -1)
    assert result.score == 1.0


def direct_factor_vae(source: CodeSource, rng: np.random.Generator, batch: int, n_train: int, n_eval: int) -> float:
    """The FactorVAE procedure one vote at a time, written apart from the module under test."""
    z, _ = source.sample(10_000, rng)
    std = z.std(axis=0, ddof=1)

    def votes(n: int) -> np.ndarray:
        table = np.zeros((source.num_factors, z.shape[1]))
        for _ in range(n):
            k = rng.integers(source.num_factors)
            classes = source.sample_factors(batch, rng)
            classes[:, k] = classes[0, k]
            codes = source.codes(classes)
            table[k, np.argmin(codes.var(axis=0, ddof=1) / std**2)] += 1
        return table

    train = votes(n_train)
    evaluation = votes(n_eval)
    return sum(evaluation[np.argmax(train[:, i]), i] for i in range(z.shape[1])) / evaluation.sum()


def test_factor_vae_matches_a_direct_computation_of_its_formula() -> None:
    source = CodeSource.from_function((3, 4, 5), noisy(4, 2.0))
    result = factor_vae_score(source, np.random.default_rng(0), num_train=1500, num_eval=1500)
    direct = direct_factor_vae(source, np.random.default_rng(1), 64, 1500, 1500)
    assert 0.5 < direct < 0.9  # the noise leaves room to disagree
    # Different draws: the two agree to sampling error (about 0.016 for 1,500 votes each).
    assert result.score == pytest.approx(direct, abs=0.05)
    # The reported accuracies are the majority-vote formula applied to the reported votes.
    train, evaluation = result.train_votes, result.eval_votes
    assert result.train_accuracy == pytest.approx(train.max(axis=0).sum() / train.sum(), abs=1e-12)
    assert result.score == pytest.approx(
        sum(evaluation[result.dim_to_factor[i], i] for i in range(3)) / evaluation.sum(), abs=1e-12
    )
    out = result.as_dict()
    assert out["factor_vae.batch_size"] == 64 and out["factor_vae.prune_std"] == 0.05


def test_beta_vae_of_the_factors_is_one_also_when_rescaled_and_noise_scores_chance() -> None:
    for represent in (identity, permuted_affine):
        source = CodeSource.from_function((3, 4, 5), represent)
        assert beta_vae_score(source, np.random.default_rng(0), num_train=300, num_eval=200).score == 1.0
    noise = beta_vae_score(
        CodeSource.from_function((3, 4, 5), noise_of(5)), np.random.default_rng(0), num_train=500, num_eval=500
    )
    assert noise.score == pytest.approx(1 / 3, abs=0.1)


def test_beta_vae_matches_a_direct_computation_of_its_formula() -> None:
    from sklearn.linear_model import LogisticRegression

    source = CodeSource.from_function((3, 4, 5), noisy(6, 2.5))
    rng = np.random.default_rng(1)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        features, labels = [], []
        for _ in range(n):
            k = rng.integers(3)
            a, b = source.sample_factors(64, rng), source.sample_factors(64, rng)
            b[:, k] = a[:, k]
            features.append(np.abs(source.codes(a) - source.codes(b)).mean(axis=0))
            labels.append(k)
        return np.array(features), np.array(labels)

    x_train, y_train = points(1000)
    x_eval, y_eval = points(1000)
    direct = LogisticRegression(max_iter=1000).fit(x_train, y_train).score(x_eval, y_eval)
    result = beta_vae_score(source, np.random.default_rng(0), num_train=1000, num_eval=1000)
    assert 0.5 < direct < 0.97
    assert result.score == pytest.approx(direct, abs=0.05)
    assert result.as_dict()["beta_vae.num_eval"] == 1000


# --- everything at once, on a FactorDataset ------------------------------------------------------------------


class Bars(FactorDataset):
    """A tiny synthetic factor dataset: image (1, 1, F) whose pixel j is factor j's class scaled to [0, 1]."""

    name = "bars"

    def __init__(self) -> None:
        self._factors = [Factor("shape", ["a", "b", "c"]), Factor("size", [0.1, 0.2, 0.3, 0.4]), Factor("x", [0, 1])]
        self.image_shape = (1, 1, 3)

    @property
    def factors(self) -> list[Factor]:
        return self._factors

    def images(self, indices: np.ndarray) -> np.ndarray:
        classes = self.index_to_factors(indices)  # (B, F)
        return (classes / (self.factor_sizes - 1)).astype(np.float32)[:, None, None, :]


def test_evaluate_representation_writes_every_metric_with_its_settings() -> None:
    dataset = Bars()
    settings = EvaluationSettings(
        num_train=600,
        num_test=300,
        dci_num_train=300,
        num_votes_train=200,
        num_votes_eval=100,
        num_variance_estimate=500,
    )

    out = evaluate_representation(
        dataset, lambda images: images.reshape(len(images), -1), np.random.default_rng(0), settings
    )

    # 600 random draws, not a full grid: independent dims share a little empirical information.
    assert out["mig"] == pytest.approx(1.0, abs=0.02)
    assert out["factor_vae"] == 1.0 and out["beta_vae"] == 1.0
    assert out["dci.disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert {"mig.gap.shape", "sap.dim.size", "dci.completeness.x", "factor_vae.accuracy.x"} <= set(out)
    assert out["dci.num_train"] == 300 and out["factor_vae.num_train"] == 200
    assert all(str(out[f"{m}.definition"]).startswith("disentanglement_lib") for m in ("mig", "sap", "dci", "beta_vae"))
    TypeAdapter(dict[str, float | int | str]).validate_python(out, strict=True)


def test_a_representation_of_the_wrong_shape_is_reported() -> None:
    with pytest.raises(ValueError, match=r"must return \(\d+, d\) codes, got shape \(\d+, 3, 1\)"):
        evaluate_representation(Bars(), lambda images: images.reshape(len(images), 3, 1), np.random.default_rng(0))
