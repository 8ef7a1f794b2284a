"""Train a factor judge on a dataset's ground truth and write it as judges/NAME/ (judge.onnx, judge.json, card.md).

    disentangle-train judge --dataset digits                            # judges-local/digits, about 10 min on one core
    disentangle-train judge --config configs/judge/dsprites.toml --overwrite   # the shipped judges/dsprites again

A judge is written into ``out`` (judges-local/DATASET by default, which git ignores) only once it is trained,
exported and measured; a folder that already holds a judge (the shipped judges/ among them) is replaced only with
``--overwrite``. While it trains, its run folder (checkpoints and log) sits beside ``out`` as ``.NAME.run``: a
stopped judge continues with ``--resume`` and the folder goes once the judge is written.

The judge is the project's own measure of whether ``/synthesize`` drew what it was asked for: a supervised CNN
(``model.JudgeNet``) that reads every factor of the dataset from an image (``readings``). A fixed held-out
split of the dataset's indices is never trained on; the written figures are the exported ONNX judge's on it,
on the clean renders and on the same renders blurred (a decoder's output is blurrier than the ground truth).

Augmentation, so that the judge reads a decoder's soft images as it reads the renders: a Gaussian blur of
random width on part of each batch, a random contrast, and a little pixel noise. None moves a shape, so no
target changes.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from contract.manifest import sha256_of
from contract.tensors import IMAGE
from training.artifact import onnx_export
from training.checkpoints import LOG
from training.data import get_dataset
from training.data.base import FactorDataset
from training.judge.artifact import (
    JUDGE_CARD,
    JUDGE_JSON,
    JUDGE_ONNX,
    JudgeManifest,
    OnnxJudge,
    figure,
    heldout_indices,
    summarise,
)
from training.judge.model import JudgeNet
from training.judge.readings import JUDGED_DATASETS, Reading, condition_of, readings_for
from training.run import Launch, Run, RunConfig
from training.version import code_version

PARITY_TOLERANCE = 1e-3  # on logits and normalised values, of order 1
HELDOUT_BLUR = 1.0  # px, sigma of the blurred held-out split
BLUR_RADIUS = 4  # px: the kernel spans 9 px, 2.5 sigma at the widest blur
TRAINING_LOG = "training_log.jsonl"


@dataclass
class JudgeConfig(RunConfig):
    """A judge's run: the scaffold's settings (run.py) and these."""

    dataset: str = "digits"
    out: str = ""  # default: judges-local/<dataset>
    steps: int = 4000
    lr: float = 2e-3  # peak of a linear warm-up over 200 steps and a half-cosine decay to 0
    width: int = 24  # channels of the first convolutions
    hidden: int = 128
    heldout: int = 5000  # images never trained on; the figures are measured on them
    blur_fraction: float = 0.5  # of each batch, blurred with sigma ~ U(0.4, 1.6) px
    threads: int = 1  # torch threads: the machine is shared
    device: str = "cpu"
    log_every: int = 100

    DEFAULT_OUT: ClassVar[str] = "judges-local"
    RESUMABLE: ClassVar[frozenset[str]] = RunConfig.RESUMABLE | {"threads"}

    def __post_init__(self) -> None:
        if self.dataset not in JUDGED_DATASETS:
            raise ValueError(f"dataset: expected one with factors to judge, one of {', '.join(JUDGED_DATASETS)}, "
                             f"got {self.dataset!r}")  # fmt: skip
        super().__post_init__()
        for name in ("width", "hidden", "heldout", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: expected a number > 0, got {self.lr}")
        if not 0 <= self.blur_fraction <= 1:
            raise ValueError(f"blur_fraction: expected a number in [0, 1], got {self.blur_fraction}")
        if not self.out:
            self.out = f"{self.DEFAULT_OUT}/{self.dataset}"

    @classmethod
    def scope(cls) -> str:
        return " for the judge"

    @property
    def label(self) -> str:
        return f"judge {self.dataset}"

    @property
    def run_dir(self) -> Path:
        out = Path(self.out)
        return out.parent / f".{out.name}.run"


def blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with a width per image: (B, C, H, W), sigma (B,) px -> (B, C, H, W)."""
    b, c, h, w = images.shape
    offsets = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=images.dtype)  # (K,)
    line = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))  # (B, K)
    line = line / line.sum(1, keepdim=True)
    kernel = (line[:, :, None] * line[:, None, :]).repeat_interleave(c, 0)[:, None]  # (B*C, 1, K, K)
    out = F.conv2d(images.reshape(1, b * c, h, w), kernel, padding=BLUR_RADIUS, groups=b * c)
    return out.reshape(b, c, h, w)


def augment(images: torch.Tensor, cfg: JudgeConfig, generator: torch.Generator) -> torch.Tensor:
    """Blur part of the batch, scale contrast, add a little noise: (B, C, H, W) -> (B, C, H, W) in [0, 1]."""
    b = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator)

    blurred = torch.rand(b, generator=generator) < cfg.blur_fraction
    sigma = torch.where(blurred, uniform(0.4, 1.6), torch.full((b,), 0.05))  # 0.05 px: the identity
    out = blur(images, sigma)
    contrast = torch.where(torch.rand(b, generator=generator) < 0.5, uniform(0.6, 1.0), torch.ones(b))
    noise = torch.where(torch.rand(b, generator=generator) < 0.3, uniform(0.0, 0.05), torch.zeros(b))
    out = out * contrast[:, None, None, None]
    out = out + noise[:, None, None, None] * torch.randn(out.shape, generator=generator)
    return out.clamp(0.0, 1.0)


def targets(readings: list[Reading], classes: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each reading's (target, mask), (B, outputs) each, for (B, F) factor classes."""
    out = []
    for j, r in enumerate(readings):
        target, mask = r.target(classes[:, j], condition_of(readings, r, classes))
        out.append((torch.from_numpy(target), torch.from_numpy(mask)))
    return out


def judge_loss(readings: list[Reading], outputs: tuple[torch.Tensor, ...], truth: list) -> torch.Tensor:
    """Cross-entropy per categorical reading plus L1 per continuous one (normalised units), summed."""
    loss = torch.zeros((), device=outputs[0].device)
    for r, out, (target, mask) in zip(readings, outputs, truth, strict=True):
        out = out.float()
        if r.kind == "categorical":
            loss = loss + F.cross_entropy(out, target[:, 0].long())
        else:
            loss = loss + ((out - target).abs() * mask).sum(1).mean()
    return loss


def learning_rate(cfg: JudgeConfig, step: int) -> float:
    warmup = min(200, cfg.steps // 10)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(cfg.steps - warmup, 1)))


def heldout_figures(judge: OnnxJudge, dataset: FactorDataset, indices: np.ndarray) -> dict[str, dict[str, float]]:
    """The exported judge's figures on the held-out renders, clean and blurred by ``HELDOUT_BLUR`` px."""
    images = dataset.images(indices)
    classes = dataset.index_to_factors(indices)
    blurred = blur(torch.from_numpy(images), torch.full((len(images),), HELDOUT_BLUR)).numpy()
    return {
        "clean": summarise(judge.errors(images, classes)),
        f"blurred {HELDOUT_BLUR:g} px": summarise(judge.errors(blurred, classes)),
    }


def card_text(manifest: JudgeManifest) -> str:
    splits = list(manifest.heldout)
    lines = [
        f"# Factor judge: {manifest.dataset}",
        "",
        f"A CNN that reads every factor of `{manifest.dataset}` from a 64x64 image; `disentangle-train eval` "
        "uses it to score what `/synthesize` draws (asked-for accuracy per factor).",
        "",
        f"Trained by `{manifest.command}`: {manifest.steps:,} steps, {manifest.images_seen:,} images, "
        f"{manifest.wall_time_s / 60:.1f} min ({manifest.config['threads']} thread(s), "
        f"{manifest.config.get('precision_used', manifest.config['precision'])}). Code {manifest.code_version}.",
        "",
        f"Held-out ground truth: {manifest.heldout_images:,} renders never trained on (a fixed split, seed "
        f"{manifest.config['seed']}). Categorical factors: accuracy; the others: mean absolute error.",
        "",
        "| factor | read as | " + " | ".join(splits) + " |",
        "| --- | --- | " + " | ".join("---" for _ in splits) + " |",
    ]
    for r in manifest.readings:
        how = {"categorical": "class", "linear": "value", "periodic": f"angle mod 360/k, k by {r.symmetry_of}"}
        cells = [figure(r, manifest.heldout[split][r.name]) for split in splits]
        lines.append(f"| {r.name} | {how[r.kind]} | " + " | ".join(cells) + " |")
    periodic = [r for r in manifest.readings if r.kind == "periodic"]
    for r in periodic:
        assert r.symmetry_of is not None
        classes = next(x.values for x in manifest.readings if x.name == r.symmetry_of)
        orders = ", ".join(f"{c} {k}" for c, k in zip(classes, r.symmetry, strict=True))
        lines += ["", f"`{r.name}` is read as (cos k·θ, sin k·θ) for the {r.symmetry_of}'s rotational symmetry "
                  f"k ({orders}); its error is the angle difference modulo 360/k degrees."]  # fmt: skip
    return "\n".join(lines) + "\n"


def train_judge(cfg: JudgeConfig, launch: Launch | bool = False, command: str = "") -> JudgeManifest | None:
    """Train, export, measure on the held-out split; write ``cfg.out`` only once all of it succeeded. None when
    the time limit stopped the run first (its checkpoint waits for ``--resume``)."""
    launch = Launch.of(launch)
    out_dir = Path(cfg.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out: expected a folder, {out_dir} is a file")
    if (out_dir / JUDGE_JSON).exists() and not launch.overwrite:
        raise ValueError(f"out: {out_dir} already holds a judge; write this one elsewhere (--out) or replace it "
                         "with --overwrite")  # fmt: skip
    dataset = get_dataset(cfg.dataset)
    assert isinstance(dataset, FactorDataset)
    readings = readings_for(dataset)
    # A source with held-out images (the real glyphs) is measured on them and trains on all of its own.
    measured = dataset.heldout_split() or dataset
    pool: np.ndarray | None
    if measured is dataset:
        heldout, pool = heldout_indices(len(dataset), cfg.heldout, cfg.seed)
    else:
        assert isinstance(measured, FactorDataset)
        heldout, pool = np.sort(np.random.default_rng(cfg.seed).choice(len(measured), cfg.heldout, replace=False)), None
    torch.set_num_threads(cfg.threads)
    # --overwrite replaces the judge in `out`; a resumed run keeps its own folder.
    run = Run(cfg, replace(launch, overwrite=launch.overwrite and not launch.resume), distributed=False)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    net = JudgeNet(dataset.image_shape[0], {r.name: r.outputs for r in readings}, cfg.width, cfg.hidden).to(run.device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    if run.state is not None:
        net.load_state_dict(run.state["model"])
        opt.load_state_dict(run.state["optimizer"])
        generator.set_state(run.state["augment_rng"])
        rng.bit_generator.state = json.loads(run.state["batch_rng"])
        run.restore_rng()

    with run.started():
        net.train()
        for step in run.steps():
            indices = (
                rng.choice(pool, size=cfg.batch_size)
                if pool is not None
                else rng.integers(0, len(dataset), cfg.batch_size)
            )
            classes = dataset.index_to_factors(indices)  # (B, F)
            x = augment(torch.from_numpy(dataset.images(indices)), cfg, generator)  # (B, C, 64, 64)
            with run.autocast:
                outputs = net(x.to(run.device))
            truth = [(t.to(run.device), m.to(run.device)) for t, m in targets(readings, classes)]
            loss = judge_loss(readings, outputs, truth)
            lr = learning_rate(cfg, step)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.end_step(cfg.batch_size, {"loss": loss.detach()}, lr=lr)
            if run.checkpoint_due:
                run.save({
                    "model": net.state_dict(), "optimizer": opt.state_dict(), "augment_rng": generator.get_state(),
                    "batch_rng": json.dumps(rng.bit_generator.state),
                })  # fmt: skip
    if run.progress.step < cfg.steps:
        return None
    manifest = _write_judge(net.cpu().float(), cfg, run, measured, readings, heldout, command)
    shutil.rmtree(run.run_dir, ignore_errors=True)  # the judge holds the log now; nothing is left to resume
    return manifest


def _write_judge(
    net: JudgeNet, cfg: JudgeConfig, run: Run, dataset: FactorDataset, readings: list[Reading],
    heldout: np.ndarray, command: str,
) -> JudgeManifest:  # fmt: skip
    """Export the trained ``net``, check its parity, measure it on the held-out split and swap it in as ``out``."""
    out_dir = Path(cfg.out)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".judge-", dir=out_dir.parent))  # beside out: the swap is a rename
    try:
        shutil.copyfile(run.run_dir / LOG, staging / TRAINING_LOG)
        net.eval()
        example = torch.from_numpy(dataset.images(heldout[:64]))
        onnx_export(net, example[:2], staging / JUDGE_ONNX, [IMAGE], [r.name for r in readings])
        with torch.no_grad():
            expected = [o.numpy() for o in net(example)]
        config: dict[str, str | int | float | bool] = {**asdict(cfg), "precision_used": run.hardware["precision"]}
        provisional = JudgeManifest(
            dataset=dataset.name, image_shape=dataset.image_shape, readings=readings,
            sha256=sha256_of(staging / JUDGE_ONNX), config=config, command=command, steps=run.progress.step,
            images_seen=run.progress.images_seen, wall_time_s=round(run.progress.wall_time_s, 1),
            heldout_images=len(heldout), heldout={}, code_version=code_version(),
        )  # fmt: skip
        (staging / JUDGE_JSON).write_text(provisional.model_dump_json(indent=2) + "\n")
        judge = OnnxJudge(staging)
        got = judge.raw(example.numpy())
        diff = max(float(np.abs(got[r.name] - e).max()) for r, e in zip(readings, expected, strict=True))
        if not diff <= PARITY_TOLERANCE:
            raise RuntimeError(f"the ONNX judge differs from torch by {diff:.2e} (tolerance {PARITY_TOLERANCE:.0e})")
        manifest = provisional.model_copy(update={"heldout": heldout_figures(judge, dataset, heldout)})
        manifest = JudgeManifest.model_validate(manifest.model_dump())
        (staging / JUDGE_JSON).write_text(manifest.model_dump_json(indent=2) + "\n")
        (staging / JUDGE_CARD).write_text(card_text(manifest))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.replace(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest
