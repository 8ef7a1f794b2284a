"""The training loop: one config dataclass, one loop, checkpoints, a JSONL log (`fit` exports, in cli.py).

    disentangle-train fit --preset smoke                                # a small real model in under a minute
    disentangle-train fit --config configs/zoo/dsprites_beta_tcvae.toml
    disentangle-train fit --config ... --resume                         # continue from runs/NAME/checkpoint.pt
    torchrun --nproc_per_node 2 -m training.cli fit --preset smoke      # DistributedDataParallel (gloo on CPU)

Batches are rendered on the fly from a seeded generator per (seed, rank, step), so a resumed run draws the
same batches it would have drawn without the interruption.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
import typing
from collections.abc import Generator, Iterable
from contextlib import AbstractContextManager, nullcontext
from copy import deepcopy
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from training.data import get_dataset
from training.data.base import FactorDataset, ImageDataset, LabelledDataset
from training.models import VAE, EncoderNorm
from training.objectives import (
    Likelihood,
    ObjectiveConfig,
    PosteriorMemory,
    compute_loss,
    label_cross_entropy,
    label_squared_error,
    reconstruction,
)

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
PRECISIONS = ("auto", "fp32", "bf16")
MAX_LABEL_FRACTION = 0.01  # Locatello et al. 2020 use 0.01% to 1% of labels; we allow at most 1%


@dataclass
class TrainConfig:
    name: str = "model"
    # data
    dataset: str = "dsprites"
    dataset_params: dict[str, Any] = field(default_factory=dict)
    # model
    architecture: str = "conv"
    encoder_norm: str = ""  # "", "batch" or "group": normalisation after each conv of the encoder (models.py)
    latent_dim: int = 10  # continuous dims
    # categorical latent parts as NAME:CLASSES, comma-separated ("digit:10"); objective joint_vae
    categorical: str = ""
    temperature: float = 0.67  # Gumbel-softmax temperature (Dupont 2018 uses 0.67)
    # objective (see training/objectives.py)
    objective: str = "vae"
    likelihood: str = "bernoulli"
    beta: float = 1.0
    alpha: float = 1.0
    gamma: float = 1.0
    estimator: str = "mss"
    capacity_max: float = 0.0
    capacity_steps: int = 100_000
    capacity_gamma: float = 1000.0
    warmup_steps: int = 0
    beta_anneal_steps: int = 0
    tc_memory: int = 0
    disc_capacity_max: float = 0.0  # joint_vae: C_disc's maximum (capped at sum log K), capacity_max is C_cont's
    disc_capacity_steps: int = 100_000
    continuous_penalty: str = "capacity"  # joint_vae: "capacity" (Dupont 2018) or "tc" (beta_tcvae's terms)
    # few-label supervision (Locatello et al. 2020): a cross-entropy tying the categorical part named
    # label_factor (or the first part) to that ground-truth factor, on a fixed subset of label_fraction images
    label_fraction: float = 0.0
    label_factor: str = ""
    label_weight: float = 1.0
    # A label-preserving augmentation of the labelled images: each is moved by up to this many pixels in x and
    # y at every draw. Without it a 907-image digits subset was learnt by heart (its cross-entropy 0.1 nats)
    # while the code read fresh renders right 56-77% of the time.
    label_shift: int = 0
    label_batch: int = 16  # labelled images encoded at every step
    # The labelled images are also reconstructed with their true class as the part's code (VAE.sample_latent's
    # `observed`, Kingma et al. 2014's M2, eq. 6). Without it the decoder learns a class only
    # from the unlabelled images the encoder puts in it, and digits_joint_vae drew a 6 for classes 5 and 8.
    label_decode: bool = False
    # Continuous factors tied to continuous dims on the same labelled images, comma-separated, in dim order, by a
    # squared error between those dims' posterior means and the dataset's targets for the factor (Locatello et
    # al. 2020, section 3, the L2 form of R_s): its standardised value on one dim, or for dSprites' orientation
    # (cos k*theta, sin k*theta) on two (``ImageDataset.tie_targets``). digits_joint_vae's unsupervised rotation
    # shared its dims with scale and stroke, and /synthesize drew angles 12.4 degrees off. A position tied while
    # label_shift moves the images follows the move where the dataset says how (``ImageDataset.tie_shift``).
    label_continuous: str = ""
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
    batch_size: int = 64
    lr: float = 5e-4
    lr_decay_steps: int = 0  # when > 0, the last this-many steps anneal lr to zero along a half cosine
    steps: int = 10_000
    seed: int = 0
    time_limit_min: float = 0.0  # when > 0, stop (with a checkpoint) after this many minutes; resume later
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; the loss stays fp32)
    cache_on_device: bool = False  # hold the whole dataset on the device as uint8 (for GPUs)
    # bookkeeping
    log_every: int = 50
    checkpoint_every: int = 1000
    out_dir: str = "runs"
    export_dir: str = ""  # when set, `disentangle-train fit` exports the artifact there once training ends

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

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

    def continuous_labels(self) -> list[str]:
        """``label_continuous`` parsed: the factor tied to each of the first continuous dims, in dim order."""
        names = [n.strip() for n in self.label_continuous.split(",") if n.strip()]
        if len(set(names)) < len(names):
            raise ValueError(f"label_continuous: factor names must be unique, got {names}")
        return names

    def objective_config(self, dataset_size: int) -> ObjectiveConfig:
        return ObjectiveConfig(
            name=self.objective,  # type: ignore[arg-type]
            likelihood=self.likelihood,  # type: ignore[arg-type]
            beta=self.beta,
            capacity_max=self.capacity_max,
            capacity_steps=self.capacity_steps,
            capacity_gamma=self.capacity_gamma,
            alpha=self.alpha,
            gamma=self.gamma,
            estimator=self.estimator,  # type: ignore[arg-type]
            dataset_size=dataset_size,
            warmup_steps=self.warmup_steps,
            beta_anneal_steps=self.beta_anneal_steps,
            tc_memory=self.tc_memory,
            disc_capacity_max=self.disc_capacity_max,
            disc_capacity_steps=self.disc_capacity_steps,
            continuous_penalty=self.continuous_penalty,  # type: ignore[arg-type]
            categories=tuple(k for _, k in self.categorical_parts()),
        )

    def __post_init__(self) -> None:
        positive = ("batch_size", "steps", "latent_dim", "capacity_steps", "disc_capacity_steps", "log_every")
        for name in (*positive, "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        # A negative weight rewards the very term it should penalise (e.g. beta < 0 pays for a large KL).
        for name in ("beta", "alpha", "gamma", "capacity_max", "capacity_gamma", "disc_capacity_max", "time_limit_min"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):  # also NaN
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        for name in ("warmup_steps", "beta_anneal_steps", "tc_memory", "label_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.lr_decay_steps <= self.steps:
            raise ValueError(f"lr_decay_steps must be in [0, steps={self.steps}], got {self.lr_decay_steps}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.encoder_norm not in typing.get_args(EncoderNorm):
            raise ValueError(f"encoder_norm must be '', 'batch' or 'group', got {self.encoder_norm!r}")
        if self.encoder_norm and self.architecture != "conv":
            raise ValueError(f"encoder_norm needs architecture 'conv', got {self.architecture!r}")
        self.objective_config(dataset_size=1_000_000)  # validates objective, likelihood and estimator
        if not 0 <= self.label_fraction <= MAX_LABEL_FRACTION:
            raise ValueError(f"label_fraction must be in [0, {MAX_LABEL_FRACTION}], got {self.label_fraction}")
        if self.label_fraction > 0 and (self.objective != "joint_vae" or not self.label_factor):
            raise ValueError("label_fraction > 0 needs objective 'joint_vae' and a label_factor naming a factor")
        if self.label_warmup_steps and self.label_fraction == 0:
            raise ValueError("label_warmup_steps needs few-label supervision: set label_fraction > 0")
        if self.label_warmup_steps > self.steps:
            raise ValueError(f"label_warmup_steps must not exceed steps={self.steps}, got {self.label_warmup_steps}")
        if self.label_decode and self.label_fraction == 0:
            raise ValueError("label_decode needs few-label supervision: set label_fraction > 0")
        if self.label_batch < 1:
            raise ValueError(f"label_batch must be >= 1, got {self.label_batch}")
        if self.label_shift < 0:
            raise ValueError(f"label_shift must be >= 0 pixels, got {self.label_shift}")
        if self.label_weight < 0:
            raise ValueError(f"label_weight must be >= 0, got {self.label_weight}")
        if not self.label_swap_weight >= 0 or math.isinf(self.label_swap_weight):
            raise ValueError(f"label_swap_weight must be a finite number >= 0, got {self.label_swap_weight}")
        if self.label_swap_weight and self.label_fraction == 0:
            raise ValueError("label_swap_weight needs few-label supervision: set label_fraction > 0")
        if self.label_swap_weight and not self.label_warmup_steps:
            raise ValueError("label_swap_weight reads with the encoder of the warm-up's end: set label_warmup_steps")
        tied = self.continuous_labels()
        if tied and self.label_fraction == 0:
            raise ValueError("label_continuous needs few-label supervision: set label_fraction > 0")
        if self.label_tie_posterior and not tied:
            raise ValueError("label_tie_posterior ties the spread of tied dims: set label_continuous")
        if len(tied) > self.latent_dim:
            raise ValueError(f"label_continuous names {len(tied)} factors for {self.latent_dim} continuous dims")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**values)


def bf16_supported(device: torch.device) -> bool:
    """bf16 autocast pays only where the hardware has bf16 arithmetic; detect it rather than assume."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def make_optimizer(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Fused Adam where the build has it (1.6x faster for the MLP on this CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Constant lr, then a half cosine to zero over the last ``lr_decay_steps`` steps (Loshchilov & Hutter 2017).

    The decay sits at the end rather than spanning the run so that a run can be extended and annealed
    afterwards: the config with more steps and a decay draws the same steps as before up to the decay.
    """
    start = cfg.steps - cfg.lr_decay_steps
    if step < start:
        return cfg.lr
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - start) / cfg.lr_decay_steps))


def batch_indices(dataset_size: int, batch_size: int, seed: int, rank: int, step: int) -> np.ndarray:
    """The (B,) indices of one step: a pure function of (seed, rank, step), so resuming redraws them exactly."""
    return np.random.default_rng([seed, rank, step]).integers(0, dataset_size, size=batch_size)


def rendered_batches(
    dataset: ImageDataset, batch_size: int, seed: int, rank: int, start_step: int, pin: bool
) -> Generator[torch.Tensor, None, None]:
    """Yield (B, C, H, W) batches rendered on the CPU, a few batches ahead on a thread.

    An exception in the thread is handed over through the queue and raised here, in the training loop, with
    the thread's traceback: otherwise the loop would wait for a batch that never comes.
    """
    ready: queue.Queue[torch.Tensor | BaseException] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def hand_over(item: torch.Tensor | BaseException) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        step = start_step
        try:
            while not stop.is_set():
                indices = batch_indices(len(dataset), batch_size, seed, rank, step)
                batch = torch.from_numpy(dataset.images(indices))
                if pin:
                    batch = batch.pin_memory()
                hand_over(batch)
                step += 1
        except Exception as error:  # raised again in the consumer, with this traceback
            hand_over(error)

    worker = threading.Thread(target=produce, name="batch-renderer", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = ready.get(timeout=1.0)
            except queue.Empty:
                if worker.is_alive() or not ready.empty():
                    continue
                raise RuntimeError("the batch-rendering thread ended without a batch or an error") from None
            if isinstance(item, BaseException):
                raise RuntimeError(f"rendering a batch failed: {item!r}") from item
            yield item
    finally:
        # Joined, not left to die with the interpreter: a daemon thread caught inside torch's C++ code at exit
        # is unwound through noexcept frames and aborts the process ("terminate called without an active
        # exception"), which turned a finished run into a failure.
        stop.set()
        worker.join()


def cached_batches(
    dataset: ImageDataset, batch_size: int, seed: int, rank: int, start_step: int, device: torch.device
) -> Generator[torch.Tensor, None, None]:
    """Render the whole dataset once into uint8 on ``device`` (3 GB for dSprites), then gather batches there.

    On a GPU a CPU renderer cannot keep up with a model this small; the same indices are drawn as in
    ``rendered_batches``, so both paths train on the same sequence of images (up to 1/255 quantisation).
    """
    channels, height, width = dataset.image_shape
    store = torch.empty((len(dataset), channels, height, width), dtype=torch.uint8, device=device)
    chunk = 16_384
    for start in range(0, len(dataset), chunk):
        images = dataset.images(np.arange(start, min(start + chunk, len(dataset))))
        store[start : start + len(images)] = torch.from_numpy((images * 255).round().astype(np.uint8)).to(device)
    step = start_step
    while True:
        indices = torch.from_numpy(batch_indices(len(dataset), batch_size, seed, rank, step)).to(device)
        yield store[indices].float().div_(255)  # (B, C, H, W)
        step += 1


@dataclass
class Progress:
    step: int = 0
    images_seen: int = 0
    wall_time_s: float = 0.0


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """Join the process group when launched by torchrun (which sets RANK and WORLD_SIZE)."""
    if "RANK" not in os.environ:
        return Distributed()
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def save_checkpoint(
    path: Path,
    model: VAE,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    progress: Progress,
    hardware: dict,
    memory: PosteriorMemory | None,
    reader: nn.Module | None = None,
) -> None:
    state = {
        **hardware,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "config": asdict(cfg),
        "progress": asdict(progress),
        "torch_rng": torch.get_rng_state(),
    }
    if memory is not None:
        state["tc_memory"] = memory.state_dict()
    if reader is not None:
        state["swap_reader"] = reader.state_dict()
    write_checkpoint(path, state)


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a truncated checkpoint behind


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def check_ranks_agree(model: nn.Module) -> None:
    """DDP keeps replicas identical by construction; a divergence means a broken setup, so fail loudly."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {[float(g) for g in gathered]}")


def time_is_up(cfg: TrainConfig, step: int, elapsed_s: float, ddp: Distributed, device: torch.device) -> bool:
    """Checked at log steps only; under DDP all ranks agree, or one would wait for the others forever."""
    if cfg.time_limit_min <= 0 or step % cfg.log_every:
        return False
    up = elapsed_s > 60 * cfg.time_limit_min
    if ddp.world_size > 1:
        flag = torch.tensor([float(up)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        up = bool(flag.item())
    return up


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


@dataclass
class LabelledSubset:
    """The fixed few-label subset: its images rendered once (uint8) and each image's class of one factor."""

    images: torch.Tensor  # (L, C, H, W) uint8
    labels: torch.Tensor  # (L,) int64
    part: slice  # the supervised part's columns of the categorical logits
    targets: torch.Tensor  # (L, m) float32: the tied continuous factors, standardised (m = 0 when none)
    batch_size: int = 16  # images drawn at every step (cfg.label_batch)
    shift: int = 0  # each draw moves every image by up to this many pixels (cfg.label_shift)
    shift_rates: torch.Tensor | None = None  # (2, m): the targets' change per pixel moved right, down

    @classmethod
    def build(cls, cfg: TrainConfig, dataset: ImageDataset) -> LabelledSubset:
        parts = cfg.categorical_parts()
        which = cfg.label_part()
        start = sum(k for _, k in parts[:which])
        name, classes = parts[which]
        subset = cls.draw(
            dataset, cfg.label_factor, (name, classes), slice(start, start + classes), cfg.continuous_labels(),
            cfg.label_fraction, cfg.seed, cfg.label_batch, cfg.label_shift,
        )  # fmt: skip
        if subset.targets.shape[1] > cfg.latent_dim:
            raise ValueError(
                f"label_continuous: {cfg.label_continuous!r} takes {subset.targets.shape[1]} continuous dims, "
                f"the model has {cfg.latent_dim}"
            )
        return subset

    @classmethod
    def draw(
        cls,
        dataset: ImageDataset,
        factor_name: str,
        code: tuple[str, int],
        part: slice,
        continuous: list[str],
        fraction: float,
        seed: int,
        batch_size: int,
        shift: int = 0,
    ) -> LabelledSubset:
        """A fixed ``fraction`` of ``dataset``, labelled with factor ``factor_name`` for the categorical ``code``
        (its name and classes; ``part``: its columns of the logits) and with the ``continuous`` factors' targets."""
        if not isinstance(dataset, LabelledDataset | FactorDataset):
            raise ValueError(f"label_fraction needs a dataset with factors; {dataset.name!r} has none")
        names = [f.name for f in dataset.factors]
        if factor_name not in names:
            raise ValueError(f"label_factor must be one of {names}, got {factor_name!r}")
        unknown = [tied for tied in continuous if tied not in names]
        if unknown:
            raise ValueError(f"label_continuous: expected factors among {names}, got {unknown[0]!r}")
        factor = dataset.factors[names.index(factor_name)]
        if code[1] != factor.size:
            raise ValueError(
                f"label_factor {factor.name!r} has {factor.size} values; the categorical part {code[0]!r} it is "
                f"tied to has {code[1]} classes"
            )
        # Seeded apart from the batches: the same images stay labelled when a run is resumed.
        indices = dataset.labelled_indices(fraction, np.random.default_rng([seed, 7919]))
        count = len(indices)
        images = torch.from_numpy((dataset.images(indices) * 255).round().astype(np.uint8))
        classes_of = dataset.index_to_factors(indices)  # (L, F)
        labels = torch.from_numpy(classes_of[:, names.index(factor_name)].astype(np.int64))
        columns = [dataset.tie_targets(tied, classes_of) for tied in continuous]  # each (L, m)
        targets = torch.from_numpy(np.concatenate(columns, axis=1) if columns else np.zeros((count, 0))).float()
        rates = [dataset.tie_shift(tied) for tied in continuous] if shift else []  # each (2, m)
        shift_rates = torch.from_numpy(np.concatenate(rates, axis=1)).float() if rates else None
        return cls(images, labels, part, targets, batch_size, shift, shift_rates)

    def batch(self, seed: int, rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([seed, rank, step, 1])
        picked = torch.from_numpy(rng.integers(0, len(self.labels), size=self.batch_size))
        images = self.images[picked].float().div_(255)  # (L, C, H, W)
        if self.shift:
            # Pad with background and crop back at a random offset: a move of up to `shift` px, nothing wrapped.
            s = self.shift
            padded = torch.nn.functional.pad(images, (s, s, s, s))  # (L, C, H + 2s, W + 2s)
            h, w = images.shape[-2:]
            offsets = rng.integers(0, 2 * s + 1, size=(self.batch_size, 2))
            images = torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets)])
            if self.shift_rates is not None:  # tied positions follow the move: (L, 2) px right, down
                moved = torch.from_numpy(s - offsets[:, ::-1].copy()).float()
                return images, self.labels[picked], self.targets[picked] + moved @ self.shift_rates
        return images, self.labels[picked], self.targets[picked]  # (L, C, H, W), (L,), (L, m)


def train(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train to ``cfg.steps``; return the run folder (checkpoint.pt, log.jsonl, config.json)."""
    ddp = setup_distributed(cfg.device)
    device = resolve_device(cfg.device, ddp.local_rank)
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and bf16_supported(device))
    run_dir = cfg.run_dir

    # Everything that can reject the config runs before the run folder is touched: a failed start leaves a
    # previous run's config.json, log and checkpoint as they were.
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    objective = cfg.objective_config(len(dataset))
    if cfg.batch_size + cfg.tc_memory > len(dataset):
        raise ValueError(
            f"batch_size + tc_memory must not exceed the dataset's {len(dataset)} images, "
            f"got {cfg.batch_size} + {cfg.tc_memory}"
        )
    torch.manual_seed(cfg.seed + ddp.rank)
    model = build_model(cfg, dataset).to(device)
    opt = make_optimizer(model.parameters(), cfg.lr)
    memory = PosteriorMemory(cfg.tc_memory, cfg.latent_dim, device) if cfg.tc_memory else None
    labelled = LabelledSubset.build(cfg, dataset) if cfg.label_fraction > 0 else None

    hardware = {"device": str(device), "precision": "bf16" if use_bf16 else "fp32"}
    progress = Progress()
    reader: nn.Module | None = None  # label_swap_weight's: the encoder as the warm-up left it
    checkpoint_path = run_dir / CHECKPOINT
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # slimmed checkpoints (shipped without Adam's moments) restart them
            opt.load_state_dict(state["optimizer"])
        progress = Progress(**state["progress"])
        if memory is not None and "tc_memory" in state:  # absent when a run without one is continued with one
            memory.load_state_dict(state["tc_memory"])
        if "swap_reader" in state:
            reader = frozen_copy(model.encoder)
            reader.load_state_dict(state["swap_reader"])
        if ddp.world_size == 1:
            torch.set_rng_state(state["torch_rng"])
    elif resume:
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint_path}")
    if cfg.label_warmup_steps and ddp.world_size > 1:
        # The warm-up encodes outside the DDP wrapper's forward, whose hooks sync the gradients.
        raise ValueError("label_warmup_steps needs a single process; run the warm-up without torchrun")
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    net: nn.Module = model
    if ddp.world_size > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    autocast: AbstractContextManager = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
    # The unlabelled batches start when the warm-up ends; each step keeps its own batch when a run is resumed.
    first = max(progress.step, cfg.label_warmup_steps)
    if cfg.cache_on_device:
        batches = cached_batches(dataset, cfg.batch_size, cfg.seed, ddp.rank, first, device)
    else:
        batches = rendered_batches(dataset, cfg.batch_size, cfg.seed, ddp.rank, first, device.type == "cuda")
    log_file = (run_dir / LOG).open("a") if ddp.main else None
    bar = tqdm(total=cfg.steps, initial=progress.step, disable=not ddp.main, desc=cfg.name, mininterval=1.0)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}  # per term: a window across the end of a label warm-up logs some terms only after it
    window_start, window_images = time.perf_counter(), 0
    run_start_wall = progress.wall_time_s
    session_start = time.perf_counter()

    model.train()
    for step in range(progress.step, cfg.steps):
        warming_up = step < cfg.label_warmup_steps
        if cfg.label_swap_weight and not warming_up and reader is None:
            reader = frozen_copy(model.encoder)
        loss, terms, images = torch.zeros((), device=device), dict[str, torch.Tensor](), 0
        if not warming_up:
            x = next(batches).to(device, non_blocking=True)  # (B, C, H, W)
            with autocast:
                mu, logvar, category_logits, z, logits = net(x)
            objective_step = step - cfg.label_warmup_steps
            loss, terms = compute_loss(objective, x, mu, logvar, z, logits, objective_step, memory, category_logits)
            images = x.shape[0]
        if labelled is not None:
            # (Under DDP the encoder's gradients from both passes are summed before its hooks fire, so they sync.)
            supervised, supervised_terms = labelled_loss(
                model, labelled.batch(cfg.seed, ddp.rank, step), labelled.part, cfg.label_weight,
                objective.likelihood, device, autocast, tie=not warming_up, decode=cfg.label_decode and not warming_up,
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

        for key, value in terms.items():
            sums[key] = sums.get(key, 0) + value
            counts[key] = counts.get(key, 0) + 1
        window_images += images * ddp.world_size
        done = step + 1
        progress = Progress(
            step=done,
            images_seen=progress.images_seen + images * ddp.world_size,
            wall_time_s=run_start_wall + time.perf_counter() - session_start,
        )
        out_of_time = time_is_up(cfg, done, time.perf_counter() - session_start, ddp, device)
        last = done == cfg.steps or out_of_time
        if done % cfg.log_every == 0 or last:
            means = {k: float(v) / counts[k] for k, v in sums.items()}
            if not math.isfinite(means["loss"]):
                # Checked per log window, not per step: a per-step check would make a GPU wait every step.
                raise FloatingPointError(f"loss is {means['loss']} before step {done}; lower lr or check the data")
            rate = window_images / max(time.perf_counter() - window_start, 1e-9)
            sums, counts, window_start, window_images = {}, {}, time.perf_counter(), 0
            if log_file is not None:
                record = {**asdict(progress), "images_per_s": round(rate, 1), "lr": lr, **means}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            shown = {k: f"{v:.4g}" for k, v in means.items() if k not in ("capacity", "disc_capacity")}
            bar.set_postfix(**shown, img_s=f"{rate:.0f}")
        bar.update(1)
        if ddp.main and (done % cfg.checkpoint_every == 0 or last):
            save_checkpoint(checkpoint_path, model, opt, cfg, progress, hardware, memory, reader)
        if out_of_time:
            break

    bar.close()
    batches.close()
    if log_file is not None:
        log_file.close()
    if ddp.world_size > 1:
        check_ranks_agree(model)
        # Both ranks leave together: a rank that tore its gloo group down while the other still finished the
        # last collective aborted the other ("terminate called without an active exception") in 1 of 6 runs
        # on this 2-core machine under load; with the barrier, 0 of 30.
        dist.barrier()
        dist.destroy_process_group()
    return run_dir


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


def final_terms(run_dir: Path, last: int = 5) -> dict[str, float]:
    """Mean of each term over the last few log records: the numbers a manifest reports as 'final'."""
    path = run_dir / LOG
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][-last:]
    keys = {k for r in records for k in r} - {"step", "images_seen", "wall_time_s", "images_per_s", "lr"}
    return {k: sum(r[k] for r in records if k in r) / len(records) for k in sorted(keys)}
