"""The VAE family's training loop: its config and its steps; the run scaffold around them is training/run.py.

    disentangle-train fit --preset smoke                                # a small real model in under a minute
    disentangle-train fit --config configs/zoo/dsprites_beta_tcvae.toml
    disentangle-train fit --config ... --resume                         # continue from runs/NAME/checkpoint.pt
    torchrun --nproc_per_node 2 -m training.cli fit --preset smoke      # DistributedDataParallel (gloo on CPU)

Batches are rendered on the fly from a seeded generator per (seed, rank, step), so a resumed run draws the
same batches it would have drawn without the interruption.
"""

from __future__ import annotations

import math
import typing
from contextlib import AbstractContextManager
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from training.batches import batches_for
from training.data import get_dataset
from training.data.base import ImageDataset
from training.labels import FewLabels, LabelledSubset
from training.models import VAE, Architecture, EncoderNorm
from training.objectives import (
    Likelihood,
    ObjectiveConfig,
    ObjectiveSettings,
    PosteriorMemory,
    compute_loss,
    label_cross_entropy,
    label_squared_error,
    reconstruction,
)
from training.run import Launch, ModelRunConfig, Run, make_optimizer


@dataclass
class TrainConfig(ModelRunConfig, FewLabels, ObjectiveSettings):
    """A run of the VAE family: the scaffold's settings (run.py), the objective's weights (objectives.py), the
    few-label settings (labels.py), and these."""

    name: str = "model"
    dataset: str = "dsprites"
    # model
    architecture: str = "conv"
    encoder_norm: str = ""  # "", "batch" or "group": normalisation after each conv of the encoder (models.py)
    latent_dim: int = 10  # continuous dims
    # categorical latent parts as NAME:CLASSES, comma-separated ("digit:10"); objective joint_vae
    categorical: str = ""
    temperature: float = 0.67  # Gumbel-softmax temperature (Dupont 2018 uses 0.67)
    objective: str = "vae"  # see training/objectives.py
    # Few-label supervision (Locatello et al. 2020) ties the categorical part named label_factor (or the first
    # part) to that factor by a cross-entropy, and the label_continuous factors to the first continuous dims by
    # a squared error between those dims' posterior means and the dataset's targets (section 3, the L2 form of
    # R_s): a standardised value on one dim, or for dSprites' orientation (cos k*theta, sin k*theta) on two
    # (``ImageDataset.tie_targets``). digits_joint_vae's unsupervised rotation shared its dims with scale and
    # stroke, and /synthesize drew angles 12.4 degrees off.
    #
    # The labelled images are also reconstructed with their true class as the part's code (VAE.sample_latent's
    # `observed`, Kingma et al. 2014's M2, eq. 6). Without it the decoder learns a class only
    # from the unlabelled images the encoder puts in it, and digits_joint_vae drew a 6 for classes 5 and 8.
    label_decode: bool = False
    # The tie as the expected squared error of a posterior sample, (mu - t)^2 + sigma^2, rather than of the mean:
    # it also keeps the tied dims' posteriors narrow. Tied on the mean alone, dsprites_joint_vae's orientation dims
    # kept a spread of 0.6 on a unit circle for squares and hearts (0.16 for ellipses), so the decoder, fed
    # samples, could not tell their angle and drew both as round blobs.
    label_tie_posterior: bool = False
    # The first this-many steps train the encoder on the labelled cross-entropy alone, before the reconstruction
    # and the continuous ties start (the objective's schedules start after them; they count in `steps`). Inside
    # the full loss from step one, dsprites_joint_vae's shape code stayed near chance (0.94 nats after 1,500
    # steps; chance 1.10). The ties are left out too: with the scale tied, the warm-up's cross-entropy was still
    # 0.84 after 5,000 steps, and 0.39 after 1,000 without it (the easy squared error steers the shared trunk).
    label_warmup_steps: int = 0
    # The labelled images decoded once more with their class swapped for another, and the swapped class read
    # back from that picture, times this weight: InfoGAN's mutual-information term (Chen et al. 2016, eq. 5, a
    # cross-entropy for a categorical code) on the categorical part of a VAE, so that a decoder drawing the
    # class from the continuous code and ignoring the part pays for it (dsprites_joint_vae's code read fresh
    # shapes right 0.998 of the time while its decoder drew one blob for every class). The reader is a frozen
    # copy of the encoder at the end of the label warm-up, which is needed: read by the encoder in training,
    # the swapped class came back at 0.005 nats while the factor judge read chance in the drawings (the two
    # had agreed on marks of their own). 0 = off.
    label_swap_weight: float = 0.0
    # optimisation
    lr: float = 5e-4
    lr_decay_steps: int = 0  # when > 0, the last this-many steps anneal lr to zero along a half cosine

    # A run can be extended and annealed afterwards (see learning_rate).
    RESUMABLE: ClassVar[frozenset[str]] = ModelRunConfig.RESUMABLE | {"lr_decay_steps"}

    def categorical_parts(self) -> list[tuple[str, int]]:
        """``categorical`` parsed: [(name, classes), ...] in layout order."""
        parts = []
        for item in filter(None, (p.strip() for p in self.categorical.split(","))):
            name, sep, count = item.partition(":")
            if not sep or not name.isidentifier() or not count.isdigit() or int(count) < 2:
                raise ValueError(f"categorical: expected NAME:CLASSES with CLASSES >= 2, got {item!r}")
            parts.append((name, int(count)))
        names = [n for n, _ in parts]
        if len(set(names)) < len(names):
            raise ValueError(f"categorical: part names must be unique, got {names}")
        return parts

    def label_part(self) -> int:
        """Index of the categorical part that few-label supervision ties to ``label_factor``."""
        names = [n for n, _ in self.categorical_parts()]
        return names.index(self.label_factor) if self.label_factor in names else 0

    def objective_config(self, dataset_size: int) -> ObjectiveConfig:
        return ObjectiveConfig(
            **self.objective_settings(),
            name=self.objective,  # type: ignore[arg-type]
            dataset_size=dataset_size,
            categories=tuple(k for _, k in self.categorical_parts()),
        )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {self.latent_dim}")
        if self.label_warmup_steps < 0:
            raise ValueError(f"label_warmup_steps must be >= 0, got {self.label_warmup_steps}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.lr_decay_steps <= self.steps:
            raise ValueError(f"lr_decay_steps must be in [0, steps={self.steps}], got {self.lr_decay_steps}")
        if self.architecture not in typing.get_args(Architecture):
            raise ValueError(f"architecture must be one of {typing.get_args(Architecture)}, got {self.architecture!r}")
        if self.encoder_norm not in typing.get_args(EncoderNorm):
            raise ValueError(f"encoder_norm must be '', 'batch' or 'group', got {self.encoder_norm!r}")
        if self.encoder_norm and self.architecture != "conv":
            raise ValueError(f"encoder_norm needs architecture 'conv', got {self.architecture!r}")
        self.objective_config(dataset_size=1_000_000)  # validates objective, likelihood and estimator
        self.check_labels()
        if self.label_fraction > 0 and (not self.categorical_parts() or not self.label_factor):
            raise ValueError("label_fraction > 0 needs objective 'joint_vae' and a label_factor naming a factor")
        needs_labels = {
            "label_warmup_steps": self.label_warmup_steps, "label_decode": self.label_decode,
            "label_swap_weight": self.label_swap_weight, "label_continuous": self.label_continuous,
        }  # fmt: skip
        for name, value in needs_labels.items():
            if value and self.label_fraction == 0:
                raise ValueError(f"{name} needs few-label supervision: set label_fraction > 0")
        if self.label_warmup_steps > self.steps:
            raise ValueError(f"label_warmup_steps must not exceed steps={self.steps}, got {self.label_warmup_steps}")
        if not self.label_swap_weight >= 0 or math.isinf(self.label_swap_weight):
            raise ValueError(f"label_swap_weight must be a finite number >= 0, got {self.label_swap_weight}")
        if self.label_swap_weight and not self.label_warmup_steps:
            raise ValueError("label_swap_weight reads with the encoder of the warm-up's end: set label_warmup_steps")
        tied = self.continuous_labels()
        if self.label_tie_posterior and not tied:
            raise ValueError("label_tie_posterior ties the spread of tied dims: set label_continuous")
        if len(tied) > self.latent_dim:
            raise ValueError(f"label_continuous names {len(tied)} factors for {self.latent_dim} continuous dims")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Constant lr, then a half cosine to zero over the last ``lr_decay_steps`` steps (Loshchilov & Hutter 2017).

    The decay sits at the end rather than spanning the run so that a run can be extended and annealed
    afterwards: the config with more steps and a decay draws the same steps as before up to the decay.
    """
    start = cfg.steps - cfg.lr_decay_steps
    if step < start:
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - start) / cfg.lr_decay_steps))


def build_model(cfg: TrainConfig, dataset: ImageDataset) -> VAE:
    channels, height, width = dataset.image_shape
    if (height, width) != (64, 64):
        raise ValueError(f"models take 64x64 images; dataset {cfg.dataset!r} gives {height}x{width}")
    return VAE(
        cfg.architecture,  # type: ignore[arg-type]
        channels,
        cfg.latent_dim,
        deterministic=cfg.objective == "ae",
        categories=tuple(k for _, k in cfg.categorical_parts()),
        temperature=cfg.temperature,
        encoder_norm=cfg.encoder_norm,  # type: ignore[arg-type]
    )


def labelled_subset(cfg: TrainConfig, dataset: ImageDataset) -> LabelledSubset:
    """The few-label subset, tied to the categorical part ``label_factor`` names (or the first)."""
    parts = cfg.categorical_parts()
    which = cfg.label_part()
    start = sum(k for _, k in parts[:which])
    name, classes = parts[which]
    subset = LabelledSubset.draw(
        dataset, cfg.label_factor, (name, classes), slice(start, start + classes), cfg.continuous_labels(),
        cfg.label_fraction, cfg.seed, cfg.label_batch, cfg.label_shift,
    )  # fmt: skip
    if subset.targets.shape[1] > cfg.latent_dim:
        raise ValueError(
            f"label_continuous: {cfg.label_continuous!r} takes {subset.targets.shape[1]} continuous dims, "
            f"the model has {cfg.latent_dim}"
        )
    return subset


def train(cfg: TrainConfig, resume: Launch | bool = False) -> Path:
    """Train to ``cfg.steps`` (``resume``: True, or a ``Launch`` saying how to start); return the run folder
    (checkpoint.pt, log.jsonl, config.json)."""
    # Everything that can reject the config runs before the run folder is touched: a failed start leaves a
    # previous run's config.json, log and checkpoint as they were.
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    objective = cfg.objective_config(len(dataset))
    if cfg.batch_size + cfg.tc_memory > len(dataset):
        raise ValueError(
            f"batch_size + tc_memory must not exceed the dataset's {len(dataset)} images, "
            f"got {cfg.batch_size} + {cfg.tc_memory}"
        )
    run = Run(cfg, resume)
    ddp, device = run.ddp, run.device
    if cfg.label_warmup_steps and ddp.world_size > 1:
        # The warm-up encodes outside the DDP wrapper's forward, whose hooks sync the gradients.
        raise ValueError("label_warmup_steps needs a single process; run the warm-up without torchrun")
    torch.manual_seed(cfg.seed + ddp.rank)
    model = build_model(cfg, dataset).to(device)
    opt = make_optimizer(model.parameters(), cfg.lr)
    memory = PosteriorMemory(cfg.tc_memory, cfg.latent_dim, device) if cfg.tc_memory else None
    labelled = labelled_subset(cfg, dataset) if cfg.label_fraction > 0 else None
    reader: nn.Module | None = None  # label_swap_weight's: the encoder as the warm-up left it
    if run.state is not None:
        model.load_state_dict(run.state["model"])
        if "optimizer" in run.state:  # slimmed checkpoints (shipped without Adam's moments) restart them
            opt.load_state_dict(run.state["optimizer"])
        if memory is not None and "tc_memory" in run.state:  # absent when a run without one is continued with one
            memory.load_state_dict(run.state["tc_memory"])
        if "swap_reader" in run.state:
            reader = frozen_copy(model.encoder)
            reader.load_state_dict(run.state["swap_reader"])
        run.restore_rng()

    net: nn.Module = model
    if ddp.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # The unlabelled batches start when the warm-up ends; each step keeps its own batch when a run is resumed.
    first = max(run.progress.step, cfg.label_warmup_steps)
    batches = batches_for(dataset, cfg.batch_size, cfg.seed, ddp.rank, first, device, cfg.cache_on_device)

    def state() -> dict:
        saved = {"model": model.state_dict(), "optimizer": opt.state_dict()}
        if memory is not None:
            saved["tc_memory"] = memory.state_dict()
        if reader is not None:
            saved["swap_reader"] = reader.state_dict()
        return saved

    model.train()
    with run.started():
        for step in run.steps():
            warming_up = step < cfg.label_warmup_steps
            if cfg.label_swap_weight and not warming_up and reader is None:
                reader = frozen_copy(model.encoder)
            loss, terms, images = torch.zeros((), device=device), dict[str, torch.Tensor](), 0
            if not warming_up:
                x = next(batches).to(device, non_blocking=True)  # (B, C, H, W)
                with run.autocast:
                    mu, logvar, category_logits, z, logits = net(x)
                objective_step = step - cfg.label_warmup_steps
                loss, terms = compute_loss(objective, x, mu, logvar, z, logits, objective_step, memory, category_logits)
                images = x.shape[0]
            if labelled is not None:
                # (Under DDP the encoder's gradients from both passes are summed before its hooks fire, so they sync.)
                supervised, supervised_terms = labelled_loss(
                    model, labelled.batch(cfg.seed, ddp.rank, step), labelled.part, cfg.label_weight,
                    objective.likelihood, device, run.autocast, tie=not warming_up,
                    decode=cfg.label_decode and not warming_up,
                    swap_weight=0.0 if warming_up else cfg.label_swap_weight, step=step, reader=reader,
                    tie_posterior=cfg.label_tie_posterior,
                )  # fmt: skip
                loss = loss + supervised
                terms.update(supervised_terms, loss=loss.detach())
                images = images or cfg.label_batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            lr = learning_rate(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
            if memory is not None and not warming_up:
                memory.push(mu, logvar)
            run.end_step(images, terms, lr=lr)
            if run.checkpoint_due:
                run.save(state())
        batches.close()
        run.leave_together(model)
    return run.run_dir


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that no optimiser step changes: its parameters need no gradient, and it runs in
    eval mode (batch norm with its running statistics, which then stay as they were)."""
    copy = deepcopy(module).eval()
    copy.requires_grad_(False)
    return copy


def labelled_loss(
    model: VAE,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    part: slice,
    weight: float,
    likelihood: Likelihood,
    device: torch.device,
    autocast: AbstractContextManager,
    tie: bool,
    decode: bool,
    swap_weight: float = 0.0,
    step: int = 0,
    reader: nn.Module | None = None,
    tie_posterior: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Few-label supervision on one labelled batch: the categorical part's cross-entropy, with ``tie`` the tied
    dims' squared error (both times ``weight``; with ``tie_posterior`` a posterior sample's expected one,
    ``TrainConfig.label_tie_posterior``), with ``decode`` the images' reconstruction from their true
    class, and with ``swap_weight`` the swapped class read back by ``reader`` (``TrainConfig.label_swap_weight``);
    each term detached in the returned dict for the log."""
    x_labelled, label_classes, targets = (t.to(device) for t in batch)  # (L, C, H, W), (L,), (L, T)
    with autocast:
        mu_l, logvar_l, logits_l = model.encode_all(x_labelled)  # (L, d), (L, d), (L, K)
    supervised = label_cross_entropy(logits_l[:, part], label_classes)
    loss = weight * supervised
    terms = {"label_ce": supervised.detach()}
    if tie and targets.shape[1]:
        m = targets.shape[1]
        tied = label_squared_error(mu_l[:, :m], targets, logvar_l[:, :m] if tie_posterior else None)
        loss = loss + weight * tied
        terms["label_mse"] = tied.detach()
    if decode:
        with autocast:
            z_l = model.sample_latent(mu_l, logvar_l, logits_l, observed=(part, label_classes))
            image_logits = model.decode(z_l)  # (L, C, H, W)
        labelled_recon = reconstruction(image_logits, x_labelled, likelihood)
        loss = loss + labelled_recon
        terms["label_recon"] = labelled_recon.detach()
    if swap_weight > 0:
        if reader is None:
            raise ValueError("the swapped classes need a reader")
        classes = part.stop - part.start
        # Every image another class, the offset turning with the step so that each class is drawn from the
        # others' codes in turn (a function of the step, so a resumed run swaps as a straight one).
        swapped = (label_classes + 1 + step % max(classes - 1, 1)) % classes  # (L,)
        with autocast:
            z_swapped = model.sample_latent(mu_l, logvar_l, logits_l, observed=(part, swapped))
            drawn = torch.sigmoid(model.decode(z_swapped))  # (L, C, H, W) in [0, 1]
            _, _, logits_read = model.split_encoding(reader(drawn))  # (L, K)
        read_back = label_cross_entropy(logits_read[:, part], swapped)
        loss = loss + swap_weight * read_back
        terms["label_swap_ce"] = read_back.detach()
    return loss, terms
