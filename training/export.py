"""Export a trained model to the artifact the service loads: encoder.onnx, decoder.onnx, manifest.json.

    disentangle-train export runs/smoke --out models-local/smoke

The export runs both ONNX files in onnxruntime against torch on a real batch and refuses to write an
artifact whose outputs differ by more than 1e-4. It writes into a temporary folder and swaps it in only
when everything passed, so an existing artifact is never left half-overwritten.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib.metadata import PackageNotFoundError, version
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
    OnnxFile,
    TrainingInfo,
    sha256_of,
    write_manifest,
)
from training.data import get_dataset
from training.data.base import ImageDataset
from training.evaluate.unsupervised import ACTIVE_KL_NATS
from training.models import VAE
from training.objectives import kl_per_dim
from training.train import CHECKPOINT, LOG, TrainConfig, build_model, final_terms, load_checkpoint

PARITY_TOLERANCE = 1e-4
TRAINING_LOG = "training_log.jsonl"
NOTES = "notes.md"  # the recipe: what was tried and what it scored (the zoo copies it in; the card shows it)
STATS_SAMPLES = 4096
OPSET = 17


class ExportError(RuntimeError):
    pass


class _Encoder(nn.Module):
    """image -> (mu, logvar), plus the categorical parts' probabilities (B, K) when the model has them."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mu, logvar, category_logits = self.model.encode_all(image)
        if not self.model.categories:
            return mu, logvar
        return mu, logvar, self.model.category_probabilities(category_logits)


def encoder_outputs(model: VAE) -> list[str]:
    return ["mu", "logvar", "probabilities"] if model.categories else ["mu", "logvar"]


def layout_of(cfg: TrainConfig) -> LatentLayout:
    parts = [CategoricalPart(name=name, classes=k) for name, k in cfg.categorical_parts()]
    return LatentLayout(continuous=cfg.latent_dim, categorical=parts)


@torch.no_grad()
def flat_codes(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, d + K): mu, then each part's one-hot of its most probable class (for a model in eval
    mode, as export holds it)."""
    mu, _, category_logits = model.encode_all(images)
    if not model.categories:
        return mu
    return torch.cat([mu, model.category_codes(category_logits)], dim=1)


class _Decoder(nn.Module):
    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model.decode(z))


def code_version() -> str:
    try:
        base = version("disentangle")
    except PackageNotFoundError:
        base = "0+unknown"
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parent, timeout=5,
        ).stdout.strip()  # fmt: skip
        return f"{base}+g{sha}"
    except (OSError, subprocess.SubprocessError):
        return base


def sample_images(dataset: ImageDataset, n: int, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return dataset.images(rng.integers(0, len(dataset), size=min(n, len(dataset))))  # (n, C, H, W)


@torch.no_grad()
def latent_stats(model: VAE, images: np.ndarray, chunk: int = 512) -> list[LatentStat]:
    mus, logvars = [], []
    for start in range(0, len(images), chunk):
        mu, logvar = model.encode(torch.from_numpy(images[start : start + chunk]))
        mus.append(mu)
        logvars.append(logvar)
    mu, logvar = torch.cat(mus), torch.cat(logvars)  # (N, d)
    kl = kl_per_dim(mu, logvar)
    return [
        LatentStat(
            index=j,
            mean=float(mu[:, j].mean()),
            std=float(mu[:, j].std()),
            kl=float(kl[j]),
            # An AE reports logvar = 0, so its "KL" is E[mu^2] / 2: the same rule then ranks dims by spread.
            active=bool(kl[j] > ACTIVE_KL_NATS),
        )
        for j in range(mu.shape[1])
    ]


def _onnx_export(module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]) -> None:
    dynamic = {name: {0: "batch"} for name in inputs + outputs}
    # The exporter puts the module in eval mode and afterwards back in the mode it found it in, all its
    # submodules with it: a wrapper made in training mode would leave the model training (batch norm then
    # reads batch statistics, and the parity check fails).
    module.eval()
    # The TorchScript exporter needs only the `onnx` package; the dynamo exporter would add onnxscript.
    torch.onnx.export(
        module, (example,), str(path), input_names=inputs, output_names=outputs,
        dynamic_axes=dynamic, opset_version=OPSET, dynamo=False,
    )  # fmt: skip


def check_parity(model: VAE, folder: Path, images: np.ndarray) -> float:
    """Max abs difference between torch and onnxruntime over encoder and decoder on a real batch."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=["CPUExecutionProvider"])
    batch = torch.from_numpy(images)
    with torch.no_grad():
        expected = [t.numpy() for t in _Encoder(model)(batch)]
        z = flat_codes(model, batch)
        decoded = torch.sigmoid(model.decode(z))
    got = encoder.run(encoder_outputs(model), {"image": images})
    (ort_image,) = decoder.run(["image"], {"z": z.numpy()})
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True)]
    return max(*diffs, float(np.abs(ort_image - decoded.numpy()).max()))


def seal_artifact(staging: Path, out_dir: Path, diff: float, log: Path | None, **fields: Any) -> Manifest:
    """Refuse a parity ``diff`` over tolerance, else write the manifest (``fields`` plus the ONNX files' hashes)
    and the training log into ``staging`` and swap it in as ``out_dir``. Shared by every model family's export."""
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime differs from torch by {diff:.2e} (tolerance {PARITY_TOLERANCE:.0e})")
    manifest = Manifest(
        **fields,
        files={
            "encoder": OnnxFile(path=ENCODER_FILE, sha256=sha256_of(staging / ENCODER_FILE)),
            "decoder": OnnxFile(path=DECODER_FILE, sha256=sha256_of(staging / DECODER_FILE)),
        },
        code_version=code_version(),
        metrics={"export_parity_max_abs_diff": diff},
    )
    write_manifest(staging, manifest)
    if log is not None:  # the model card draws its training curves from it
        shutil.copyfile(log, staging / TRAINING_LOG)
    _swap_in(staging, out_dir)
    return manifest


def export_model(
    model: VAE,
    cfg: TrainConfig,
    dataset: ImageDataset,
    out_dir: Path,
    training: TrainingInfo,
    name: str | None = None,
    log: Path | None = None,
) -> Manifest:
    """Write the artifact for ``model`` to ``out_dir`` (replacing what is there only once all checks pass)."""
    model = model.to("cpu").float().eval()
    images = sample_images(dataset, STATS_SAMPLES)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        example = torch.from_numpy(images[:2])
        with torch.no_grad():
            _onnx_export(_Encoder(model), example, staging / ENCODER_FILE, ["image"], encoder_outputs(model))
            z_example = torch.zeros(2, model.flat_dim)
            _onnx_export(_Decoder(model), z_example, staging / DECODER_FILE, ["z"], ["image"])
        diff = check_parity(model, staging, images[:64])
        manifest = seal_artifact(
            staging,
            out_dir,
            diff,
            log,
            name=name or out_dir.name,
            objective=cfg.objective,
            architecture=cfg.architecture,
            likelihood=cfg.likelihood,
            hyperparameters=hyperparameters(cfg),
            dataset=dataset.info(),
            latent_dim=model.flat_dim,
            layout=layout_of(cfg),
            image_shape=dataset.image_shape,
            latent_stats=latent_stats(model, images),
            training=training,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _swap_in(staging: Path, out_dir: Path) -> None:
    if out_dir.exists():
        retired = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)


TC_KEYS = ["alpha", "beta", "gamma", "estimator"]  # beta-TCVAE's weights, and a JointVAE's with its "tc" penalty


def hyperparameters(cfg: TrainConfig) -> dict[str, str | int | float | bool]:
    keys = ["architecture", "latent_dim", "likelihood", "batch_size", "lr", "steps", "seed", "warmup_steps"]
    if cfg.encoder_norm:
        keys.append("encoder_norm")
    if cfg.objective == "beta_vae":
        keys += ["beta", "capacity_max", "capacity_steps", "capacity_gamma"] if cfg.capacity_max > 0 else ["beta"]
    elif cfg.objective == "beta_tcvae":
        keys += TC_KEYS
    elif cfg.objective == "joint_vae":
        keys += ["categorical", "temperature", "continuous_penalty"]
        if cfg.continuous_penalty == "tc":
            keys += TC_KEYS
        else:
            keys += ["capacity_max", "capacity_steps"]
        keys += ["capacity_gamma", "disc_capacity_max", "disc_capacity_steps"]
        if cfg.label_fraction > 0:
            keys += ["label_fraction", "label_factor", "label_weight", "label_batch", "label_shift", "label_decode"]
            if cfg.label_continuous:
                keys.append("label_continuous")
            if cfg.label_tie_posterior:
                keys.append("label_tie_posterior")
            if cfg.label_warmup_steps:
                keys.append("label_warmup_steps")
            if cfg.label_swap_weight:
                keys.append("label_swap_weight")
    if cfg.lr_decay_steps > 0:
        keys.append("lr_decay_steps")
    if cfg.beta_anneal_steps > 0:
        keys.append("beta_anneal_steps")
    if cfg.tc_memory > 0:
        keys.append("tc_memory")
    return {k: getattr(cfg, k) for k in keys}


def export_run(run_dir: Path, out_dir: Path, name: str | None = None) -> Manifest:
    """Export the checkpoint of a training run (the model as of its last checkpoint)."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    if state["config"].get("objective") == "infogan":
        from training.infogan_export import export_infogan_run

        return export_infogan_run(Path(run_dir), state, Path(out_dir), name=name)
    cfg = TrainConfig.from_dict(state["config"])
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    model = build_model(cfg, dataset)
    model.load_state_dict(state["model"])
    progress = state["progress"]
    training = TrainingInfo(
        steps=progress["step"],
        images_seen=progress["images_seen"],
        wall_time_s=round(progress["wall_time_s"], 2),
        device=state["device"],
        precision=state["precision"],
        final_terms=final_terms(Path(run_dir)),
    )
    log = Path(run_dir) / LOG
    return export_model(model, cfg, dataset, out_dir, training, name=name, log=log if log.exists() else None)
