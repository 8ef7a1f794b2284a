"""Export an InfoGAN run as an artifact: the generator is the decoder, the Q head the encoder.

    disentangle-train export runs/zoo/digits_infogan --out models/digits_infogan

decoder.onnx maps the layout vector (continuous codes, each categorical code one-hot, noise) to an image.
encoder.onnx is Q (Chen et al. 2016): an image -> ``mu`` and ``logvar`` (B, c) of Q's factored Gaussian over the
continuous codes, and ``probabilities`` (B, k) over each categorical code's classes; Q does not read the noise.
The parity check and the swap-in are the VAE export's.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from contract.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    CategoricalPart,
    LatentLayout,
    LatentStat,
    Manifest,
    TrainingInfo,
)
from training.data import get_dataset
from training.data.base import ImageDataset
from training.export import (
    STATS_SAMPLES,
    _onnx_export,
    sample_images,
    seal_artifact,
)
from training.gan import InfoGAN, fold_spectral_norm
from training.infogan import InfoGANConfig, build_infogan
from training.train import LOG, final_terms

ENCODER_OUTPUTS = ["mu", "logvar", "probabilities"]


class _QEncoder(nn.Module):
    """image (B, C, H, W) -> Q's mean (B, c) and log variance (B, c) of the continuous codes, and the class
    probabilities (B, k) of the categorical codes, one part after another."""

    def __init__(self, model: InfoGAN) -> None:
        super().__init__()
        self.model = model
        # The exporter puts the wrapper back in its own mode afterwards, children included: a wrapper left in
        # training mode would switch the networks' batch norm back to batch statistics.
        self.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        discriminator = self.model.discriminator
        logits, mean, logvar = discriminator.split_q(discriminator.q(image))
        probabilities = torch.cat([torch.softmax(part, dim=1) for part in logits], dim=1)
        return mean, logvar, probabilities


class _GDecoder(nn.Module):
    def __init__(self, model: InfoGAN) -> None:
        super().__init__()
        self.model = model
        # The exporter puts the wrapper back in its own mode afterwards, children included: a wrapper left in
        # training mode would switch G's batch norm back to batch statistics.
        self.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.generator(z))


def check_parity(model: InfoGAN, folder: Path, images: np.ndarray, z: np.ndarray) -> float:
    """Max abs difference between torch and onnxruntime over Q and G, on real images and prior draws."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = [t.numpy() for t in _QEncoder(model)(torch.from_numpy(images))]
        image = _GDecoder(model)(torch.from_numpy(z)).numpy()
    got = encoder.run(ENCODER_OUTPUTS, {"image": images})
    (ort_image,) = decoder.run(["image"], {"z": z})
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True)]
    return max(*diffs, float(np.abs(ort_image - image).max()))


def layout_of(model: InfoGAN) -> LatentLayout:
    layout = model.layout
    parts = [CategoricalPart(name=f"cat{i}", classes=k) for i, k in enumerate(layout.categorical)]
    return LatentLayout(continuous=layout.continuous, categorical=parts, noise=layout.noise)


@torch.no_grad()
def latent_stats(model: InfoGAN, images: np.ndarray) -> list[LatentStat]:
    """Spread of Q's mean over real images, per continuous code. A GAN has no posterior to hold a KL against
    the prior: ``kl`` is 0, and every code is ``active``, since G was trained to make Q read it back."""
    mean, _, _ = _QEncoder(model)(torch.from_numpy(images))  # (N, c)
    return [
        LatentStat(index=j, mean=float(mean[:, j].mean()), std=float(mean[:, j].std()), kl=0.0, active=True)
        for j in range(mean.shape[1])
    ]


def hyperparameters(cfg: InfoGANConfig) -> dict[str, str | int | float | bool]:
    keys = [
        "continuous_codes", "noise_dim", "width", "q_hidden", "d_norm", "lambda_cat", "lambda_cont", "batch_size",
        "lr_d", "lr_g", "beta1", "beta2", "steps", "seed",
    ]  # fmt: skip
    if cfg.instance_noise > 0:
        keys += ["instance_noise", "instance_noise_steps"]
    if cfg.label_fraction > 0:
        keys += [
            "label_fraction",
            "label_factor",
            "label_continuous",
            "label_weight",
            "label_batch",
            "label_shift",
            "label_real_only",
        ]
    return {k: getattr(cfg, k) for k in keys}


def export_infogan(
    model: InfoGAN,
    cfg: InfoGANConfig,
    dataset: ImageDataset,
    out_dir: Path,
    training: TrainingInfo,
    name: str | None = None,
    log: Path | None = None,
) -> Manifest:
    """Write the artifact for ``model`` to ``out_dir`` (replacing what is there only once all checks pass)."""
    model = fold_spectral_norm(copy.deepcopy(model).to("cpu").float().eval())
    images = sample_images(dataset, STATS_SAMPLES)
    z = model.layout.sample(64, torch.Generator().manual_seed(0))[0].numpy()  # (64, d)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        with torch.no_grad():
            _onnx_export(
                _QEncoder(model), torch.from_numpy(images[:2]), staging / ENCODER_FILE, ["image"], ENCODER_OUTPUTS
            )
            _onnx_export(_GDecoder(model), torch.from_numpy(z[:2]), staging / DECODER_FILE, ["z"], ["image"])
        diff = check_parity(model, staging, images[:64], z)
        manifest = seal_artifact(
            staging,
            out_dir,
            diff,
            log,
            name=name or out_dir.name,
            objective="infogan",
            architecture="conv",
            likelihood="bernoulli",
            hyperparameters=hyperparameters(cfg),
            dataset=dataset.info(),
            latent_dim=model.layout.size,
            layout=layout_of(model),
            image_shape=dataset.image_shape,
            latent_stats=latent_stats(model, images),
            training=training,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def export_infogan_run(run_dir: Path, state: dict[str, Any], out_dir: Path, name: str | None = None) -> Manifest:
    """Export an InfoGAN run's loaded checkpoint ``state``."""
    cfg = InfoGANConfig.from_dict(state["config"])
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    model = build_infogan(cfg, dataset)
    model.load_state_dict(state["model"])
    progress = state["progress"]
    training = TrainingInfo(
        steps=progress["step"],
        images_seen=progress["images_seen"],
        wall_time_s=round(progress["wall_time_s"], 2),
        device=state["device"],
        precision=state["precision"],
        final_terms=final_terms(run_dir),
    )
    log = run_dir / LOG
    return export_infogan(model, cfg, dataset, out_dir, training, name=name, log=log if log.exists() else None)
