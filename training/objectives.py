"""Training objectives of the VAE family; each returns the loss and every term by name.

  ae          recon
  vae         recon + KL                                         (Kingma & Welling 2014)
  beta_vae    recon + beta * KL                                  (Higgins et al. 2017)
              recon + gamma * |KL - C(step)|, C: 0 -> C_max      (Burgess et al. 2018, eq. 8; our weight
                                                                  starts at 1 and reaches gamma after warm-up)
  beta_tcvae  recon + alpha * MI + beta * TC + gamma * dwKL      (Chen et al. 2018, eq. 4; q(z) estimated
                                                                  over the batch, optionally widened by a
                                                                  memory of recent posteriors)
  joint_vae   recon + gamma * |KL_cont - C_cont(step)|          (Dupont 2018, eq. 7; continuous Gaussian plus
                    + gamma * |KL_disc - C_disc(step)|           relaxed categorical latents, each KL with its
                                                                  own linear capacity schedule)
              with continuous_penalty "tc", the continuous part is regularised as in beta_tcvae instead,
              and only the discrete KL follows a capacity

All terms are per image: summed over pixels or latent dimensions, averaged over the batch, in nats.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F

ObjectiveName = Literal["ae", "vae", "beta_vae", "beta_tcvae", "joint_vae"]
Likelihood = Literal["bernoulli", "gaussian"]
Estimator = Literal["mws", "mss"]
ContinuousPenalty = Literal["capacity", "tc"]
OBJECTIVES: tuple[str, ...] = ("ae", "vae", "beta_vae", "beta_tcvae", "joint_vae")
LOG_2PI = math.log(2 * math.pi)


@dataclass
class ObjectiveSettings:
    """The weights and schedules of the objectives, as a run sets them: ``TrainConfig`` holds these fields as
    they are, so each is spelt here once."""

    likelihood: Likelihood = "bernoulli"
    beta: float = 1.0
    alpha: float = 1.0  # beta_tcvae: weight of the index-code MI (beta weighs the TC) ...
    gamma: float = 1.0  # ... and of the dimension-wise KL
    estimator: Estimator = "mss"
    # beta_vae with capacity annealing (used when capacity_max > 0): gamma * |KL - C|. joint_vae: the same
    # schedule is the continuous capacity C_cont, and capacity_gamma weighs both capacity terms.
    capacity_max: float = 0.0
    capacity_steps: int = 100_000
    capacity_gamma: float = 1000.0
    # Linear warm-up of the regulariser weight from 0 to 1, against the collapse to the mean image early on
    # (capacity annealing uses it differently: see capacity_weight).
    warmup_steps: int = 0
    # When > 0, beta grows linearly from 1 to its value over this many steps after the warm-up: the model is a
    # VAE first, and the penalty then reorganises the dimensions it uses instead of closing them early on.
    beta_anneal_steps: int = 0
    # beta_tcvae with MSS: how many recent posteriors (from earlier batches, without gradient) join the batch in
    # the estimate of q(z). See PosteriorMemory for why; 0 keeps the paper's estimator.
    tc_memory: int = 0
    # joint_vae: the discrete capacity C_disc, 0 -> disc_capacity_max over disc_capacity_steps, never above
    # sum_i log K_i (the most information the categorical parts can carry).
    disc_capacity_max: float = 0.0
    disc_capacity_steps: int = 100_000
    # joint_vae: how the continuous part is regularised. "capacity" is the paper's |KL_cont - C_cont|; "tc" is
    # beta_tcvae's decomposition (alpha, beta, gamma, estimator above): the capacity runs here left the continuous
    # factors entangled (MIG 0.08 for the dSprites beta-VAE with C = 25), beta-TCVAE separates them best (0.44).
    continuous_penalty: ContinuousPenalty = "capacity"

    def check_settings(self) -> None:
        for name in ("capacity_steps", "disc_capacity_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        # A negative weight rewards the very term it should penalise (e.g. beta < 0 pays for a large KL).
        for name in ("beta", "alpha", "gamma", "capacity_max", "capacity_gamma", "disc_capacity_max"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):  # also NaN
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("warmup_steps", "beta_anneal_steps", "tc_memory"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.likelihood not in typing.get_args(Likelihood):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.estimator not in typing.get_args(Estimator):
            raise ValueError(f"estimator must be 'mws' or 'mss', got {self.estimator!r}")
        if self.continuous_penalty not in typing.get_args(ContinuousPenalty):
            raise ValueError(f"continuous_penalty must be 'capacity' or 'tc', got {self.continuous_penalty!r}")

    def objective_settings(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(ObjectiveSettings)}


@dataclass
class ObjectiveConfig(ObjectiveSettings):
    """One objective with its settings, and what it needs to know of the data and the model."""

    name: ObjectiveName = "vae"
    dataset_size: int = 737_280
    categories: tuple[int, ...] = ()  # class counts of the categorical parts (joint_vae)

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.name!r}")
        self.check_settings()
        if (self.name == "joint_vae") != bool(self.categories):
            raise ValueError(
                f"objective 'joint_vae' goes with categorical latents and only it: got {self.name!r} with "
                f"categories {list(self.categories)}"
            )
        if self.tc_memory and (self.name != "beta_tcvae" or self.estimator != "mss"):
            raise ValueError(
                "tc_memory needs objective 'beta_tcvae' with estimator 'mss', "
                f"got {self.name!r} with {self.estimator!r}"
            )


def settings_read(settings: ObjectiveSettings, name: str) -> set[str]:
    """The settings objective ``name``'s loss reads (see the table above): what a manifest records of them."""
    read = {"likelihood", "warmup_steps", "beta_anneal_steps"}
    tc = {"alpha", "beta", "gamma", "estimator", "tc_memory"}
    capacity = {"capacity_max", "capacity_steps", "capacity_gamma"}
    if name == "beta_vae":
        read |= {"beta", *capacity} if settings.capacity_max > 0 else {"beta"}
    elif name == "beta_tcvae":
        read |= tc
    elif name == "joint_vae":
        read |= {"continuous_penalty", "capacity_gamma", "disc_capacity_max", "disc_capacity_steps"}
        read |= tc if settings.continuous_penalty == "tc" else capacity
    return read


def reconstruction(logits: torch.Tensor, x: torch.Tensor, likelihood: Likelihood) -> torch.Tensor:
    """Negative log-likelihood per image. Bernoulli: BCE with logits. Gaussian: squared error of the mean
    (unit variance, constants dropped), the mean being sigmoid(logits) so decoded images stay in [0, 1]."""
    logits = logits.float()  # the loss stays in fp32 under bf16 autocast
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - x).pow(2)
    return per_pixel.flatten(1).sum(1).mean()


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension, averaged over the batch: (B, d) -> (d,).
    Kingma & Welling 2014, appendix B."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(0)


def categorical_kl(category_logits: torch.Tensor, categories: tuple[int, ...]) -> torch.Tensor:
    """KL(q(c|x) || Uniform(K)) of each categorical part, averaged over the batch: (B, sum K) -> (parts,).

    Dupont 2018, section 3: KL(q || U(K)) = sum_k q_k log q_k + log K, i.e. log K minus the entropy of q,
    the prior being uniform over the K classes. At most log K nats per part.
    """
    kls = []
    for part in category_logits.float().split(list(categories), dim=1):  # (B, K_i) each
        log_q = torch.log_softmax(part, dim=1)
        kls.append((log_q.exp() * log_q).sum(1).mean() + math.log(part.shape[1]))
    return torch.stack(kls)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar))."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


# Cached: the same few shapes recur every training step. Callers must not modify the returned tensor in place.
@functools.lru_cache(maxsize=16)
def mss_log_weights(batch_size: int, dataset_size: int) -> torch.Tensor:
    """Log importance weights of minibatch stratified sampling, Chen et al. 2018, appendix C.2.

    For the sample z_i drawn from x_i, q(z_i) = (1/N) sum_n q(z_i|n) is estimated from the batch: x_i itself
    has weight 1/N, and the other M = B - 1 points stand for the remaining N - 1 images: M - 1 of them with
    weight 1/M and one with (N - M) / (N M). Every row sums to 1 exactly. (The matrix copied across popular
    repositories puts 1/N on column 0 instead of the diagonal, and one of its rows sums to about 1 + 1/M.)
    """
    n, m = dataset_size, batch_size - 1
    if m < 2 or n <= m:
        raise ValueError(f"MSS needs 3 <= batch_size <= dataset_size, got batch {batch_size}, N {dataset_size}")
    weights = torch.full((batch_size, batch_size), 1.0 / m, dtype=torch.float64)
    rows = torch.arange(batch_size)
    weights[rows, rows] = 1.0 / n
    weights[rows, (rows + 1) % batch_size] = (n - m) / (n * m)
    return weights.log()


@functools.lru_cache(maxsize=16)
def memory_log_weights(batch_size: int, others: int, dataset_size: int) -> torch.Tensor:
    """(B, B + K) log weights when K remembered posteriors join the batch: z_i's own posterior has weight 1/N
    and each of the B + K - 1 others stands for (N - 1) / (B + K - 1) images of the dataset (rows sum to 1)."""
    total = batch_size + others
    if dataset_size < total:
        raise ValueError(f"batch + memory ({total}) must not exceed the dataset size ({dataset_size})")
    weights = torch.full((batch_size, total), (dataset_size - 1) / (dataset_size * (total - 1)), dtype=torch.float64)
    rows = torch.arange(batch_size)
    weights[rows, rows] = 1.0 / dataset_size
    return weights.log()


class PosteriorMemory:
    """The last ``size`` posteriors (mu, logvar) of training, kept without gradient, to widen the estimate of q(z).

    Why: once the encoder's posteriors are narrow, a batch of B images out of N rarely holds a neighbour of z_i,
    so the batch estimate of log q(z_i) falls to the point's own term, log q(z_i|x_i) - log N. The index-code MI
    then sits at its ceiling, log N, and gives no gradient, the TC estimate turns negative (a true TC never is)
    and beta * TC acts as a penalty of weight beta on each dimension's information, as in a beta-VAE
    (scripts/estimator_bias.py measures it on a trained model). More points make neighbours likely again; they
    come from the last few batches, as the negatives of MoCo's queue do (He et al. 2020), so they lag the encoder
    by at most size / B steps.
    """

    def __init__(self, size: int, latent_dim: int, device: torch.device | str = "cpu") -> None:
        self.mu = torch.zeros(size, latent_dim, device=device)  # (K, d)
        self.logvar = torch.zeros(size, latent_dim, device=device)  # (K, d)
        self.filled = 0
        self.next = 0

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu[: self.filled], self.logvar[: self.filled]

    def push(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        size = self.mu.shape[0]
        count = min(mu.shape[0], size)
        rows = (self.next + torch.arange(count, device=self.mu.device)) % size  # (count,)
        self.mu[rows] = mu[-count:].detach().float()
        self.logvar[rows] = logvar[-count:].detach().float()
        self.next = (self.next + count) % size
        self.filled = min(size, self.filled + count)

    def state_dict(self) -> dict[str, Any]:
        return {"mu": self.mu.cpu(), "logvar": self.logvar.cpu(), "filled": self.filled, "next": self.next}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["mu"].shape != self.mu.shape:
            raise ValueError(
                f"the checkpoint's posterior memory has shape {tuple(state['mu'].shape)}, "
                f"the config asks for {tuple(self.mu.shape)}"
            )
        self.mu.copy_(state["mu"])
        self.logvar.copy_(state["logvar"])
        self.filled, self.next = int(state["filled"]), int(state["next"])


def tc_decomposition(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
    estimator: Estimator,
    memory: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Index-code MI, total correlation and dimension-wise KL, Chen et al. 2018, eq. 2-4.

    With log q(z) and log q(z_j) estimated over the minibatch (plus ``memory``'s (K, d) mu and logvar, with
    MSS), the three terms telescope to E[log q(z|x) - log p(z)], a Monte Carlo estimate of the KL term.
    """
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    batch = z.shape[0]
    log_qz_given_x = gaussian_log_density(z, mu, logvar).sum(1)  # (B,)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)  # (B,)
    mu_all, logvar_all, remembered = mu, logvar, 0
    if memory is not None and memory[0].shape[0]:
        mu_all, logvar_all = torch.cat([mu, memory[0]]), torch.cat([logvar, memory[1]])  # (B + K, d)
        remembered = memory[0].shape[0]
    # log q(z_i,j | x_k) for every pair (i, k) and dimension j.
    pairwise = gaussian_log_density(z.unsqueeze(1), mu_all.unsqueeze(0), logvar_all.unsqueeze(0))  # (B, B+K, d)
    if estimator == "mws":
        if remembered:
            raise ValueError("a posterior memory works with the MSS estimator only")
        # Minibatch weighted sampling, Chen et al. 2018, eq. S6: weight 1 / (N M) on every pair.
        log_w = torch.full((batch, batch), -math.log(dataset_size * batch), device=z.device)
    elif remembered:
        log_w = memory_log_weights(batch, remembered, dataset_size).to(device=z.device, dtype=z.dtype)
    else:
        log_w = mss_log_weights(batch, dataset_size).to(device=z.device, dtype=z.dtype)
    log_qz = torch.logsumexp(log_w + pairwise.sum(2), dim=1)  # (B,)
    log_qz_marginals = torch.logsumexp(log_w.unsqueeze(2) + pairwise, dim=1).sum(1)  # (B,)
    return {
        "mi": (log_qz_given_x - log_qz).mean(),
        "tc": (log_qz - log_qz_marginals).mean(),
        "dwkl": (log_qz_marginals - log_pz).mean(),
    }


def label_cross_entropy(part_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Few-label supervision (Locatello et al. 2020, "Disentangling Factors of Variation Using Few Labels",
    eq. 2 with a cross-entropy for a categorical factor): (L, K) logits of one categorical part and the (L,)
    true classes of the labelled images -> the mean cross-entropy, in nats."""
    return F.cross_entropy(part_logits.float(), labels)


def label_squared_error(mu: torch.Tensor, targets: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """Few-label supervision of continuous factors (Locatello et al. 2020, section 3, R_s as an L2 loss): (L, m)
    posterior means of the tied dims and the (L, m) targets -> the squared error summed over the m dims,
    averaged over the labelled images. With the (L, m) ``logvar`` it is the expected squared error of a sample
    of the posterior, E_q[(z - t)^2] = (mu - t)^2 + sigma^2, which also ties the posterior's spread."""
    error = (mu.float() - targets).pow(2)
    if logvar is not None:
        error = error + logvar.float().exp()
    return error.sum(1).mean()


def warmup_factor(step: int, warmup_steps: int) -> float:
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)


def annealed_beta(step: int, cfg: ObjectiveConfig) -> float:
    """beta at this step: 1 until the warm-up ends, then linearly to cfg.beta over beta_anneal_steps."""
    if cfg.beta_anneal_steps <= 0:
        return cfg.beta
    progress = min(1.0, max(0, step - cfg.warmup_steps) / cfg.beta_anneal_steps)
    return 1.0 + (cfg.beta - 1.0) * progress


def capacity(step: int, cfg: ObjectiveConfig) -> float:
    """Burgess et al. 2018, section 5: the KL target C grows linearly from 0 to C_max."""
    return cfg.capacity_max * min(1.0, step / max(1, cfg.capacity_steps))


def discrete_capacity(step: int, cfg: ObjectiveConfig) -> float:
    """Dupont 2018, section 3.1: C_disc grows linearly from 0 to its maximum, and is capped at sum_i log K_i,
    since a target above what the categorical parts can hold would only keep the penalty from reaching zero."""
    reachable = sum(math.log(k) for k in cfg.categories)
    linear = cfg.disc_capacity_max * min(1.0, step / max(1, cfg.disc_capacity_steps))
    return min(linear, reachable)


def capacity_weight(step: int, cfg: ObjectiveConfig) -> float:
    """The weight on |KL - C|: 1 through the warm-up, then geometrically up to gamma over as many steps again.

    Pinned to C near 0 from the first step, the KL is met by shrinking the posterior variance, which carries
    no information, and the decoder never learns to read z: our first run stayed at the mean image for 30,000
    steps while its KL followed C to 19 nats. With weight 1 (a VAE, as long as KL > C) the decoder learns to
    read z first; jumping straight to 1000 then crushed the 16 nats it carried to C within a few hundred steps
    and the collapse came back, so the weight rises as beta would in a sweep, and the information is rationed
    gradually.
    """
    if cfg.warmup_steps <= 0:
        return cfg.capacity_gamma
    progress = min(1.0, max(0, step - cfg.warmup_steps) / cfg.warmup_steps)
    return float(cfg.capacity_gamma**progress)


def compute_loss(
    cfg: ObjectiveConfig,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    z: torch.Tensor,
    logits: torch.Tensor,
    step: int,
    memory: PosteriorMemory | None = None,
    category_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss for one batch and its named terms, detached (converting them to floats here would make the
    GPU wait on every step; the loop converts them only when it logs). ``category_logits`` (B, sum K) are
    the encoder's categorical logits, needed by joint_vae."""
    recon = reconstruction(logits, x, cfg.likelihood)
    if cfg.name == "ae":
        return recon, {"loss": recon.detach(), "recon": recon.detach()}

    kl = kl_per_dim(mu.float(), logvar.float()).sum()
    ramp = warmup_factor(step, cfg.warmup_steps)
    terms: dict[str, torch.Tensor] = {"recon": recon, "kl": kl}
    if cfg.name == "vae":
        loss = recon + ramp * kl
    elif cfg.name == "beta_vae" and cfg.capacity_max > 0:
        target = capacity(step, cfg)
        terms["capacity"] = torch.tensor(target)
        loss = recon + capacity_weight(step, cfg) * (kl - target).abs()
    elif cfg.name == "beta_vae":
        loss = recon + ramp * annealed_beta(step, cfg) * kl
    elif cfg.name == "joint_vae":
        if category_logits is None:
            raise ValueError("joint_vae needs the encoder's categorical logits")
        # Dupont 2018, eq. 7: each KL is pulled towards its own capacity, so the continuous code cannot take
        # the information the categorical code should carry (and the other way round).
        kl_disc = categorical_kl(category_logits, cfg.categories).sum()
        target_disc = discrete_capacity(step, cfg)
        weight = capacity_weight(step, cfg)
        terms.update(kl_disc=kl_disc, disc_capacity=torch.tensor(target_disc))
        loss = recon + weight * (kl_disc - target_disc).abs()
        if cfg.continuous_penalty == "tc":
            continuous = z[:, : mu.shape[1]]  # (B, d): the Gaussian sample, without the categorical codes
            parts = tc_decomposition(continuous, mu, logvar, cfg.dataset_size, cfg.estimator)
            terms.update(parts)
            beta = annealed_beta(step, cfg)
            loss = loss + ramp * (cfg.alpha * parts["mi"] + beta * parts["tc"] + cfg.gamma * parts["dwkl"])
        else:
            target_cont = capacity(step, cfg)
            terms["capacity"] = torch.tensor(target_cont)
            loss = loss + weight * (kl - target_cont).abs()
    else:
        beta = annealed_beta(step, cfg)
        remembered = None if memory is None else memory.contents()
        parts = tc_decomposition(z, mu, logvar, cfg.dataset_size, cfg.estimator, remembered)
        terms.update(parts)
        loss = recon + ramp * (cfg.alpha * parts["mi"] + beta * parts["tc"] + cfg.gamma * parts["dwkl"])
    terms["loss"] = loss
    return loss, {k: v.detach() for k, v in terms.items()}
