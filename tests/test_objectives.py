"""The estimator math of training/objectives.py, checked on cases small enough to compute by hand."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from training.evaluate.unsupervised import total_correlation_at
from training.objectives import (
    ObjectiveConfig,
    PosteriorMemory,
    annealed_beta,
    capacity,
    capacity_weight,
    compute_loss,
    gaussian_log_density,
    kl_per_dim,
    memory_log_weights,
    mss_log_weights,
    tc_decomposition,
)


@pytest.mark.parametrize(("batch", "dataset_size"), [(3, 10), (5, 7), (64, 737_280), (256, 1000)])
def test_every_row_of_the_mss_weights_sums_to_one(batch: int, dataset_size: int) -> None:
    weights = mss_log_weights(batch, dataset_size).exp()
    torch.testing.assert_close(weights.sum(1), torch.ones(batch, dtype=torch.float64), rtol=0, atol=1e-12)


def test_mss_puts_one_over_n_on_the_diagonal() -> None:
    n, batch = 100, 6
    weights = mss_log_weights(batch, n).exp()
    torch.testing.assert_close(weights.diagonal(), torch.full((batch,), 1 / n, dtype=torch.float64))
    # Exactly one other entry per row carries the stratum weight (N - M) / (N M), M = B - 1.
    m = batch - 1
    strat = (weights - (n - m) / (n * m)).abs() < 1e-15
    assert strat.sum(1).tolist() == [1] * batch


def test_mss_estimate_of_q_z_is_unbiased() -> None:
    """E over batches of the MSS estimate of q(z) equals the full sum (1/N) sum_n q(z|n), computed exactly.

    A dataset of N = 7 posteriors, z drawn from point 0, which sits in row 0 of every batch; the other M = 3 rows
    are every ordered draw without replacement of the remaining 6 points (120 batches, equally likely). Averaging
    the estimate over all of them is the expectation, with no sampling error."""
    gen = torch.Generator().manual_seed(0)
    n, batch, dims = 7, 4, 3
    mu = torch.randn(n, dims, generator=gen, dtype=torch.float64)
    logvar = torch.randn(n, dims, generator=gen, dtype=torch.float64) * 0.3
    z = mu[0] + torch.randn(dims, generator=gen, dtype=torch.float64) * (0.5 * logvar[0]).exp()
    q_given = gaussian_log_density(z.expand(n, dims), mu, logvar).sum(1).exp()  # (N,) q(z | n)
    exact = q_given.mean()

    weights = mss_log_weights(batch, n).exp()[0]  # row 0: the weights z's own batch gives each member
    estimates = [
        (weights * q_given[torch.tensor((0, *others))]).sum()
        for others in itertools.permutations(range(1, n), batch - 1)
    ]
    assert len(estimates) == 120
    torch.testing.assert_close(torch.stack(estimates).mean(), exact, rtol=1e-12, atol=0.0)
    # Not a property any normalised weights have: putting the stratum weight on the sample itself biases it.
    skewed = weights.clone()
    skewed[0], skewed[1] = weights[1], weights[0]
    biased = torch.stack(
        [
            (skewed * q_given[torch.tensor((0, *others))]).sum()
            for others in itertools.permutations(range(1, n), batch - 1)
        ]
    ).mean()
    assert not torch.isclose(biased, exact, rtol=1e-3)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_mi_tc_and_dimensionwise_kl_add_up_to_the_kl_term(estimator: str) -> None:
    """MI + TC + dwKL telescopes to E[log q(z|x) - log p(z)], a Monte Carlo estimate of the average KL.
    Averaged over many draws of z for a small batch it must match the closed-form KL."""
    gen = torch.Generator().manual_seed(0)
    batch, dims, draws = 16, 4, 4000
    mu = torch.randn(batch, dims, generator=gen)
    logvar = torch.randn(batch, dims, generator=gen) * 0.3 - 1
    closed_form = kl_per_dim(mu, logvar).sum()
    total = torch.zeros(())
    for _ in range(draws):
        z = mu + torch.randn(batch, dims, generator=gen) * (0.5 * logvar).exp()
        parts = tc_decomposition(z, mu, logvar, dataset_size=1000, estimator=estimator)  # type: ignore[arg-type]
        total += parts["mi"] + parts["tc"] + parts["dwkl"]
    monte_carlo = total / draws
    assert abs(float(monte_carlo - closed_form)) < 0.02 * float(closed_form)


def test_total_correlation_matches_the_gaussian_closed_form() -> None:
    """Aggregate posteriors that are Gaussian have TC = -1/2 log(1 - rho^2) in two dimensions."""
    gen = torch.Generator().manual_seed(1)
    batch, sigma = 512, 0.2
    logvar = torch.full((batch, 2), math.log(sigma**2))
    independent = torch.randn(batch, 2, generator=gen)
    shared = torch.randn(batch, 1, generator=gen)
    coupled = torch.cat([shared, shared + 0.05 * torch.randn(batch, 1, generator=gen)], 1)
    rho = 1 / math.sqrt((1 + sigma**2) * (1 + 0.05**2 + sigma**2))
    for means, expected in ((independent, 0.0), (coupled, -0.5 * math.log(1 - rho**2))):
        z = means + sigma * torch.randn(batch, 2, generator=gen)
        tc = float(tc_decomposition(z, means, logvar, batch, "mss")["tc"])
        assert abs(tc - expected) < 0.1, (tc, expected)


def test_memory_weights_give_each_point_one_over_n_and_sum_to_one() -> None:
    n, batch, remembered = 1000, 4, 60
    weights = memory_log_weights(batch, remembered, n).exp()  # (B, B + K)
    assert weights.shape == (batch, batch + remembered)
    torch.testing.assert_close(weights.sum(1), torch.ones(batch, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(weights[:, :batch].diagonal(), torch.full((batch,), 1 / n, dtype=torch.float64))
    with pytest.raises(ValueError, match="must not exceed the dataset size"):
        memory_log_weights(batch, n, n)


def test_a_posterior_memory_brings_the_tc_estimate_of_narrow_posteriors_back_to_the_truth() -> None:
    """dSprites in miniature: 3 encoded factors on a full grid of 6 values each, times 20 images per cell that
    differ only in what the encoder leaves out, so each cell's 20 posteriors coincide. The aggregate posterior is
    then exactly the product of its marginals: TC = 0. A batch of 64 out of N = 4,320 rarely holds a cell-mate
    of z_i and reports a clearly negative TC; the same batches with 4,000 remembered posteriors land near 0."""
    gen = torch.Generator().manual_seed(0)
    levels, dims, replicas, batch, sigma = 6, 3, 20, 64, 0.05
    grid = torch.cartesian_prod(*[torch.linspace(-2, 2, levels)] * dims)  # (216, 3)
    mu = grid.repeat(replicas, 1)[torch.randperm(levels**dims * replicas, generator=gen)]  # (N, 3), shuffled
    n = mu.shape[0]
    logvar = torch.full_like(mu, 2 * math.log(sigma))
    z = mu + sigma * torch.randn(mu.shape, generator=gen)
    assert abs(total_correlation_at(z.numpy(), mu.numpy(), logvar.numpy(), n)) < 1e-6  # the whole dataset: exact
    memory = (mu[-4000:], logvar[-4000:])
    batches = [slice(start, start + batch) for start in range(0, 4 * batch, batch)]
    plain = [float(tc_decomposition(z[b], mu[b], logvar[b], n, "mss")["tc"]) for b in batches]
    widened = [float(tc_decomposition(z[b], mu[b], logvar[b], n, "mss", memory)["tc"]) for b in batches]
    assert sum(plain) / len(plain) < -1.5
    assert abs(sum(widened) / len(widened)) < 0.3


def test_the_posterior_memory_keeps_the_latest_posteriors_and_round_trips_through_a_checkpoint() -> None:
    memory = PosteriorMemory(size=5, latent_dim=2)
    assert memory.contents()[0].shape == (0, 2)
    for first in (0.0, 3.0, 6.0):  # pushes of 3 rows: 0-2, 3-5, 6-8
        rows = torch.arange(first, first + 3).unsqueeze(1).repeat(1, 2)  # (3, 2)
        memory.push(rows, -rows)
    mu, logvar = memory.contents()
    assert sorted(mu[:, 0].tolist()) == [4.0, 5.0, 6.0, 7.0, 8.0]
    torch.testing.assert_close(logvar, -mu)
    copy = PosteriorMemory(size=5, latent_dim=2)
    copy.load_state_dict(memory.state_dict())
    torch.testing.assert_close(copy.contents()[0], mu)
    with pytest.raises(ValueError, match="shape"):
        PosteriorMemory(size=4, latent_dim=2).load_state_dict(memory.state_dict())


def test_a_posterior_memory_needs_the_beta_tcvae_with_mss() -> None:
    with pytest.raises(ValueError, match="tc_memory needs objective 'beta_tcvae' with estimator 'mss'"):
        ObjectiveConfig(name="beta_tcvae", estimator="mws", tc_memory=100)
    with pytest.raises(ValueError, match="tc_memory needs"):
        ObjectiveConfig(name="vae", tc_memory=100)


def test_kl_per_dim_matches_the_closed_form() -> None:
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    expected = torch.tensor([0.5, 0.5 * (4.0 - math.log(4.0) - 1)])
    torch.testing.assert_close(kl_per_dim(mu, logvar), expected)


def test_capacity_grows_linearly_to_its_maximum() -> None:
    cfg = ObjectiveConfig(name="beta_vae", capacity_max=25.0, capacity_steps=100)
    assert [capacity(s, cfg) for s in (0, 50, 100, 1000)] == [0.0, 12.5, 25.0, 25.0]


def test_annealed_beta_is_one_through_the_warm_up_then_grows_linearly_to_beta() -> None:
    cfg = ObjectiveConfig(name="beta_tcvae", beta=6.0, warmup_steps=100, beta_anneal_steps=200)
    assert [annealed_beta(s, cfg) for s in (0, 100, 200, 300, 10_000)] == [1.0, 1.0, 3.5, 6.0, 6.0]
    assert annealed_beta(0, ObjectiveConfig(name="beta_tcvae", beta=6.0)) == 6.0  # no annealing by default


def _random_batch() -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    x = torch.rand(8, 1, 64, 64).round()  # (B, C, H, W)
    mu, logvar = torch.randn(8, 10), torch.randn(8, 10) * 0.1  # (B, D)
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    logits = torch.randn(8, 1, 64, 64, requires_grad=True)
    return x, mu, logvar, z, logits


def test_capacity_weight_is_one_through_the_warm_up_then_rises_geometrically_to_gamma() -> None:
    cfg = ObjectiveConfig(name="beta_vae", capacity_max=10.0, capacity_steps=100, capacity_gamma=1000.0,
                          warmup_steps=50)  # fmt: skip
    weights = [capacity_weight(s, cfg) for s in (0, 50, 75, 100, 1000)]
    assert weights == pytest.approx([1.0, 1.0, 1000**0.5, 1000.0, 1000.0])
    batch = _random_batch()
    for step in (10, 75, 120):
        _, terms = compute_loss(cfg, *batch, step=step)
        expected = terms["recon"] + capacity_weight(step, cfg) * (terms["kl"] - capacity(step, cfg)).abs()
        torch.testing.assert_close(terms["loss"], expected)


@pytest.mark.parametrize("name", ["ae", "vae", "beta_vae", "beta_tcvae"])
def test_every_objective_returns_a_finite_loss_and_its_named_terms(name: str) -> None:
    x, mu, logvar, z, logits = _random_batch()
    cfg = ObjectiveConfig(name=name, beta=4.0, dataset_size=1000)  # type: ignore[arg-type]
    loss, terms = compute_loss(cfg, x, mu, logvar, z, logits, step=10)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None
    expected = {"ae": {"loss", "recon"}, "vae": {"loss", "recon", "kl"}, "beta_vae": {"loss", "recon", "kl"}}
    assert set(terms) == expected.get(name, {"loss", "recon", "kl", "mi", "tc", "dwkl"})
    if name == "beta_vae":
        torch.testing.assert_close(terms["loss"], terms["recon"] + 4.0 * terms["kl"])


def test_bad_objective_settings_are_rejected_with_the_valid_choices() -> None:
    with pytest.raises(ValueError, match="objective must be one of"):
        ObjectiveConfig(name="vq")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="MSS needs"):
        mss_log_weights(2, 100)
