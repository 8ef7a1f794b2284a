"""InfoGAN's training loop: D and G+Q take turns; checkpoints, a JSONL log and sample grids as the run goes.

    disentangle-train fit --config configs/zoo/digits_infogan.toml                 # runs/digits_infogan/
    disentangle-train fit --config configs/zoo/digits_infogan.toml --resume --time-limit-min 30
    disentangle-train fit --objective infogan --dataset digits --steps 200         # any field is a flag

The objective (Chen et al. 2016, eq. 6): min_{G,Q} max_D V(D, G) - lambda L_I(G, Q), where L_I is the
variational lower bound on the mutual information I(c; G(z, c)). Up to constants, -L_I is Q's negative
log-likelihood of the codes that made a generated image: cross-entropy for a categorical code (weight
``lambda_cat``, 1 in the paper) and a factored Gaussian's NLL for the continuous codes (``lambda_cont``, the
paper's "smaller lambda" for continuous codes, 0.1). G uses the non-saturating loss -log D(G(z)) (Goodfellow
et al. 2014, section 3). As in the paper, Q shares D's conv trunk; the trunk is trained by D's loss alone
and Q's head by L_I, with G's optimiser (Adam, lr 1e-3 for G and Q, 2e-4 for D, betas (0.5, 0.999)).

With ``label_fraction`` > 0 the run is semi-supervised (ss-InfoGAN, Spurr et al. 2017, "Guiding InfoGAN with
Semi-Supervision"): on a fixed few-label subset of real images (at most 1%, as in Locatello et al. 2020), Q's
first categorical code is trained to read ``label_factor`` (a cross-entropy) and its first continuous codes
the ``label_continuous`` factors (the Gaussian NLL of L_I). D's trunk learns from those terms in D's update,
Q's head in G's. L_I then makes G draw, for class k, an image that Q reads as a real k: the code means the
factor rather than whatever mode the unsupervised game settles on. With ``label_real_only`` (the shipped
recipe) L_I on generated images trains G alone for the labelled codes (``supervised_columns``).

Batches come from the same renderer and per-step seeding as ``training/train.py``, so a resumed run draws the
same real images it would have drawn without the interruption.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from contract.grid import CARD_BACKGROUND, GAP, tile
from training.batches import batches_for
from training.data import get_dataset
from training.data.base import ImageDataset
from training.gan import CODE_HIGH, CODE_LOW, CodeLayout, InfoGAN
from training.labels import FewLabels, LabelledSubset
from training.run import Launch, ModelRunConfig, Run, make_optimizer

SAMPLES_DIR = "samples"
SAMPLE_COLUMNS = 10
LOG_2PI = math.log(2 * math.pi)
# A continuous code is U(-1, 1), standard deviation 1/sqrt(3); tied factors' targets are standardised (sd 1),
# so they are scaled by this to span the codes' range.
CODE_SD = 1 / math.sqrt(3)


@dataclass
class InfoGANConfig(ModelRunConfig, FewLabels):
    """An InfoGAN run: the scaffold's settings (run.py), the few-label settings (labels.py), and these."""

    name: str = "infogan"
    objective: str = "infogan"
    dataset: str = "digits"
    # the generator's input: continuous codes ~ U(-1, 1), categorical codes (classes of each), noise ~ N(0, 1)
    continuous_codes: int = 5
    categorical_codes: list[int] = field(default_factory=lambda: [10])
    noise_dim: int = 32
    width: int = 16  # G's channels are 8w, 4w, 2w, w; D's trunk mirrors them
    q_hidden: int = 64
    d_norm: str = "spectral"  # spectral (Miyato et al. 2018) | batch (DCGAN)
    # objective
    lambda_cat: float = 1.0
    lambda_cont: float = 0.1
    instance_noise: float = 0.0  # std of Gaussian noise on D's inputs at step 0 (Sonderby et al. 2017) ...
    instance_noise_steps: int = 0  # ... falling linearly to 0 over this many steps
    # few-label supervision (see the module docstring and labels.py)
    label_batch: int = 32
    # Q's head learns the labelled codes from the labelled real images only: L_I on generated images then
    # trains G alone for them (see supervised_columns)
    label_real_only: bool = False
    # optimisation
    lr_d: float = 2e-4
    lr_g: float = 1e-3
    beta1: float = 0.5
    beta2: float = 0.999
    sample_every: int = 1000  # a grid of generated images in samples/ (0: never)

    RESUMABLE: ClassVar[frozenset[str]] = ModelRunConfig.RESUMABLE | {"sample_every"}

    @property
    def layout(self) -> CodeLayout:
        return CodeLayout(self.continuous_codes, tuple(self.categorical_codes), self.noise_dim)

    @classmethod
    def scope(cls) -> str:
        return " for objective 'infogan'"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.objective != "infogan":
            raise ValueError(f"InfoGANConfig is for objective 'infogan', got {self.objective!r}")
        if isinstance(self.categorical_codes, str):  # from a flag: "10" or "10,3"
            self.categorical_codes = [int(part) for part in self.categorical_codes.split(",") if part.strip()]
        if any(n < 2 for n in self.categorical_codes):
            raise ValueError(f"each categorical code needs at least 2 classes, got {self.categorical_codes}")
        if min(self.continuous_codes, self.noise_dim) < 0 or self.layout.size < 1:
            raise ValueError("continuous_codes and noise_dim must be >= 0, and the layout must not be empty")
        if self.batch_size < 2 or self.width < 1:
            raise ValueError("batch_size must be >= 2 (batch norm), width positive")
        for name in ("lr_d", "lr_g"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        self.check_labels()
        if self.label_fraction > 0 and (not self.label_factor or not self.categorical_codes):
            raise ValueError("label_fraction > 0 needs a label_factor and a categorical code for it to name")
        if self.label_fraction == 0 and (self.label_factor or self.label_continuous or self.label_real_only):
            raise ValueError(
                "label_factor, label_continuous and label_real_only need few-label supervision: set label_fraction > 0"
            )


def build_infogan(cfg: InfoGANConfig, dataset: ImageDataset) -> InfoGAN:
    channels, height, width = dataset.image_shape
    if (height, width) != (64, 64):
        raise ValueError(f"models take 64x64 images; dataset {cfg.dataset!r} gives {height}x{width}")
    model = InfoGAN(cfg.layout, channels, cfg.width, cfg.q_hidden, cfg.d_norm)  # type: ignore[arg-type]
    sample = dataset.images(np.random.default_rng(cfg.seed).integers(0, len(dataset), size=256))
    model.generator.start_at(float(sample.mean()))
    return model


def gaussian_nll(c: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(c; mean, exp(logvar)) = 0.5 (log 2 pi + logvar + (c - mean)^2 / exp(logvar)), summed over the
    (B, k) codes and averaged over the batch."""
    return (0.5 * (LOG_2PI + logvar + (c - mean) ** 2 * torch.exp(-logvar))).sum(1).mean()


def info_loss(
    model: InfoGAN, q: torch.Tensor, continuous: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q's NLL of the codes: (summed cross-entropy of the categorical codes, Gaussian NLL of the continuous
    ones summed over codes, accuracy of Q's argmax on the first categorical code), each a batch mean."""
    logits, mean, logvar = model.discriminator.split_q(q.float())
    cat = sum((nn.functional.cross_entropy(part, classes[:, i]) for i, part in enumerate(logits)), torch.zeros(()))
    cont = gaussian_nll(continuous, mean, logvar)
    accuracy = (logits[0].argmax(1) == classes[:, 0]).float().mean() if logits else torch.zeros(())
    return cat, cont, accuracy


def label_loss(
    model: InfoGAN, q: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Q's NLL of the labelled real images' factors: (cross-entropy of the first categorical code against the
    (L,) labels, Gaussian NLL of the first m continuous codes against the (L, m) targets, accuracy)."""
    logits, mean, logvar = model.discriminator.split_q(q.float())
    m = targets.shape[1]
    cat = nn.functional.cross_entropy(logits[0], labels)
    cont = gaussian_nll(targets, mean[:, :m], logvar[:, :m]) if m else torch.zeros((), device=q.device)
    return cat, cont, (logits[0].argmax(1) == labels).float().mean()


def labelled_subset(cfg: InfoGANConfig, dataset: ImageDataset) -> LabelledSubset:
    """The few-label subset, its continuous targets scaled to the codes' range."""
    classes = cfg.categorical_codes[0]
    subset = LabelledSubset.draw(
        dataset, cfg.label_factor, ("the first categorical code", classes), slice(0, classes),
        cfg.continuous_labels(), cfg.label_fraction, cfg.seed, cfg.label_batch, cfg.label_shift,
    )  # fmt: skip
    if subset.targets.shape[1] > cfg.continuous_codes:
        raise ValueError(
            f"label_continuous: {cfg.label_continuous!r} takes {subset.targets.shape[1]} continuous codes, "
            f"the model has {cfg.continuous_codes}"
        )
    rates = None if subset.shift_rates is None else subset.shift_rates * CODE_SD
    return replace(subset, targets=subset.targets * CODE_SD, shift_rates=rates)


def supervised_columns(cfg: InfoGANConfig) -> torch.Tensor:
    """(Q's output width,) bool: the columns of Q's output that the labels supervise, the first categorical code's
    logits and the tied continuous codes' means and log variances.

    With ``label_real_only`` those columns come from a copy of Q's head that no gradient updates when L_I is
    computed on generated images. Otherwise L_I teaches Q to read whatever G draws for class k as k, and a G
    that draws some other digit for k (one Q, trained on 1% of labels, sometimes reads as k) is confirmed rather
    than corrected: in the run without it, class 2 drew 0s (configs/zoo/digits_infogan.md)."""
    layout = cfg.layout
    k, m = layout.continuous, len(cfg.continuous_labels())
    columns = torch.zeros(layout.categorical_dim + 2 * k, dtype=torch.bool)
    columns[: cfg.categorical_codes[0]] = True
    columns[layout.categorical_dim : layout.categorical_dim + m] = True  # means
    columns[layout.categorical_dim + k : layout.categorical_dim + k + m] = True  # log variances
    return columns


def instance_noise_std(cfg: InfoGANConfig, step: int) -> float:
    if cfg.instance_noise <= 0 or step >= cfg.instance_noise_steps:
        return 0.0
    return cfg.instance_noise * (1 - step / cfg.instance_noise_steps)


def parameter_groups(model: InfoGAN) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(D's trunk and real/fake head, G and Q's head): the paper's two players, Q on G's side."""
    d = [*model.discriminator.trunk.parameters(), *model.discriminator.d_head.parameters()]
    g = [*model.generator.parameters(), *model.discriminator.q_head.parameters()]
    return d, g


def sample_layouts(layout: CodeLayout, columns: int = SAMPLE_COLUMNS, seed: int = 0) -> torch.Tensor:
    """Layout vectors for a sample grid: a row per class of the first categorical code (the other codes and
    noise fixed per column), then a row per continuous code swept over [-1, 1] from -1 to 1, the rest of
    that row's input fixed (row j takes column j's draw)."""
    generator = torch.Generator().manual_seed(seed)
    _, continuous, classes = layout.sample(columns, generator)
    noise = torch.randn(columns, layout.noise, generator=generator)
    rows = []
    for k in range(layout.categorical[0] if layout.categorical else 0):
        fixed = classes.clone()
        fixed[:, 0] = k
        rows.append(layout.assemble(continuous, fixed, noise))
    sweep = torch.linspace(CODE_LOW, CODE_HIGH, columns)
    for j in range(layout.continuous):
        varied = torch.zeros(columns, layout.continuous)
        varied[:, j] = sweep
        pick = torch.full((columns,), j % columns)
        rows.append(layout.assemble(varied, classes[pick], noise[pick]))
    return torch.cat(rows)  # (rows * columns, size)


@torch.no_grad()
def save_samples(model: InfoGAN, path: Path, columns: int = SAMPLE_COLUMNS) -> None:
    """The generator in eval mode (batch norm's running statistics), as the exported decoder will draw."""
    was_training = model.training
    model.eval()
    z = sample_layouts(model.layout, columns).to(next(model.parameters()).device)
    images = torch.sigmoid(model.generator(z)).float().cpu().numpy()
    model.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = len(images) // columns
    grid = tile(images.reshape(rows, columns, *images.shape[1:]), background=CARD_BACKGROUND, margin=GAP)
    Image.fromarray(grid).save(path)


def adversarial_step(
    cfg: InfoGANConfig,
    model: InfoGAN,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    real: torch.Tensor,
    step: int,
    autocast: AbstractContextManager,
    labelled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One update of D, then one of G and Q, on a (B, C, H, W) batch of real images and, when given, a batch
    of labelled real images ((L, C, H, W), (L,) classes, (L, m) continuous targets); return the terms."""
    z, continuous, classes = (t.to(real.device) for t in model.layout.sample(real.shape[0]))
    sigma = instance_noise_std(cfg, step)
    terms: dict[str, torch.Tensor] = {}

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    with autocast:
        fake = torch.sigmoid(model.generator(z))  # (B, C, H, W)
        # D: real -> 1, fake -> 0, as log-sigmoid losses: -log D(x) - log(1 - D(G(z))).
        d_real, _ = model.discriminator(noisy(real))
        d_fake, _ = model.discriminator(noisy(fake.detach()))
    loss_d = nn.functional.softplus(-d_real.float()).mean() + nn.functional.softplus(d_fake.float()).mean()
    supervised = torch.zeros((), device=real.device)
    if labelled is not None:
        images, labels, targets = labelled
        with autocast:
            features = model.discriminator.trunk(images)  # (L, 8w * 16)
            q_labelled = model.discriminator.q_head(features)
        # D's trunk learns to read the factors here; Q's head, whose gradients opt_g drops, in G's update below.
        label_cat, label_cont, label_accuracy = label_loss(model, q_labelled, labels, targets)
        supervised = cfg.label_weight * (label_cat + label_cont)
        terms |= {"label_cat": label_cat.detach(), "label_cont": label_cont.detach(), "label_accuracy": label_accuracy}
    opt_d.zero_grad(set_to_none=True)
    (loss_d + supervised).backward()
    opt_d.step()

    with autocast:
        hidden = model.discriminator.trunk(noisy(fake))  # (B, 8w * 16)
        d_gen, q = model.discriminator.d_head(hidden).squeeze(1), model.discriminator.q_head(hidden)
        if labelled is not None and cfg.label_real_only:
            head = model.discriminator.q_head
            still = {name: p.detach() for name, p in head.named_parameters()}
            q_still = torch.func.functional_call(head, still, (hidden,))
            q = torch.where(supervised_columns(cfg).to(q.device), q_still, q)
    loss_g = nn.functional.softplus(-d_gen.float()).mean()  # non-saturating: -log D(G(z))
    info_cat, info_cont, q_accuracy = info_loss(model, q, continuous, classes)
    loss = loss_g + cfg.lambda_cat * info_cat + cfg.lambda_cont * info_cont
    if labelled is not None:
        with autocast:
            q_labelled = model.discriminator.q_head(features.detach())
        label_cat, label_cont, _ = label_loss(model, q_labelled, labels, targets)
        loss = loss + cfg.label_weight * (label_cat + label_cont)
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return terms | {
        "loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "info_cat": info_cat.detach(),
        "info_cont": info_cont.detach(), "q_accuracy": q_accuracy.detach(),
        "d_real": torch.sigmoid(d_real.detach().float()).mean(),
        "d_fake": torch.sigmoid(d_fake.detach().float()).mean(), "instance_noise": torch.tensor(sigma),
    }  # fmt: skip


def train_infogan(cfg: InfoGANConfig, resume: Launch | bool = False) -> Path:
    """Train to ``cfg.steps`` (``resume``: True, or a ``Launch`` saying how to start); return the run folder
    (checkpoint.pt, log.jsonl, config.json, samples/)."""
    # What can reject the config runs before the run folder is touched, so a failed start leaves a previous
    # run's files as they were.
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    labelled = labelled_subset(cfg, dataset) if cfg.label_fraction > 0 else None
    run = Run(cfg, resume, distributed=False)
    device = run.device
    torch.manual_seed(cfg.seed)
    model = build_infogan(cfg, dataset).to(device)
    d_params, g_params = parameter_groups(model)
    opt_d = make_optimizer(d_params, cfg.lr_d, (cfg.beta1, cfg.beta2))
    opt_g = make_optimizer(g_params, cfg.lr_g, (cfg.beta1, cfg.beta2))
    if run.state is not None:
        model.load_state_dict(run.state["model"])
        opt_d.load_state_dict(run.state["opt_d"])
        opt_g.load_state_dict(run.state["opt_g"])
        run.restore_rng()
    batches = batches_for(dataset, cfg.batch_size, cfg.seed, 0, run.progress.step, device, cfg.cache_on_device)

    model.train()
    with run.started():
        for step in run.steps():
            real = next(batches).to(device, non_blocking=True)  # (B, C, H, W)
            supervision = None
            if labelled is not None:
                images, labels, targets = labelled.batch(cfg.seed, 0, step)  # (L, C, H, W), (L,), (L, m)
                supervision = images.to(device), labels.to(device), targets.to(device)
            terms = adversarial_step(cfg, model, opt_d, opt_g, real, step, run.autocast, supervision)
            run.end_step(real.shape[0], terms)
            done = run.progress.step
            if run.checkpoint_due:
                run.save({"model": model.state_dict(), "opt_d": opt_d.state_dict(), "opt_g": opt_g.state_dict()})
            if cfg.sample_every and (done % cfg.sample_every == 0 or done == cfg.steps or run.stop_reason):
                save_samples(model, run.run_dir / SAMPLES_DIR / f"step_{done:07d}.png")
        batches.close()
    return run.run_dir
