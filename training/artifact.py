"""The one export pipeline every model family's artifact goes through: ONNX export into a staging folder, the
parity check against torch, the manifest sealed with the files' hashes, the swap into place.

A family hands it an ``ExportAdapter`` (its encoder and decoder as image -> codes and codes -> image modules,
the latent layout with its prior, the latent statistics, the hyperparameters); training/export.py builds one
from a run's checkpoint through the family registry.

The export runs both ONNX files in onnxruntime against torch on a real batch and refuses to write an
artifact whose outputs differ by more than 1e-4. It writes into a temporary folder and swaps it in only
when everything passed, so an existing artifact is never left half-overwritten.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from contract.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    TRAINING_LOG_FILE,
    LatentLayout,
    LatentStat,
    Manifest,
    OnnxFile,
    TrainingInfo,
    sha256_of,
    write_manifest,
)
from contract.tensors import DECODER_OUTPUTS, IMAGE, LATENT, encoder_outputs
from training.checkpoints import LOG, final_terms
from training.data.base import ImageDataset
from training.version import code_version

PARITY_TOLERANCE = 1e-4
STATS_SAMPLES = 4096
OPSET = 17


class ExportError(RuntimeError):
    pass


@dataclass
class ExportAdapter:
    """What a family hands the pipeline. ``encoder`` maps (B, C, H, W) images to the outputs that
    ``contract.tensors.encoder_outputs`` names for the layout (mu, logvar[, probabilities]); ``decoder`` maps
    (B, d) latents to (B, C, H, W) images in [0, 1]; both in eval mode on the CPU. ``parity_latents`` gives the
    decoder's inputs for the parity check from the images; ``latent_stats`` the manifest's statistics of the
    continuous codes over sample images."""

    encoder: nn.Module
    decoder: nn.Module
    layout: LatentLayout
    parity_latents: Callable[[torch.Tensor], torch.Tensor]
    latent_stats: Callable[[np.ndarray], list[LatentStat]]
    objective: str
    architecture: str
    likelihood: str
    hyperparameters: dict[str, str | int | float | bool]
    dataset: ImageDataset


def training_info(state: dict, run_dir: Path) -> TrainingInfo:
    """The manifest's account of a run, from its checkpoint and log."""
    progress = state["progress"]
    return TrainingInfo(
        steps=progress["step"],
        images_seen=progress["images_seen"],
        wall_time_s=round(progress["wall_time_s"], 2),
        device=state["device"],
        precision=state["precision"],
        final_terms=final_terms(run_dir),
    )


def sample_images(dataset: ImageDataset, n: int, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return dataset.images(rng.integers(0, len(dataset), size=min(n, len(dataset))))  # (n, C, H, W)


def onnx_export(module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]) -> None:
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


def check_parity(adapter: ExportAdapter, folder: Path, images: np.ndarray) -> float:
    """Max abs difference between torch and onnxruntime over encoder and decoder on a real batch."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    encoder = ort.InferenceSession(str(folder / ENCODER_FILE), options, providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(folder / DECODER_FILE), options, providers=["CPUExecutionProvider"])
    batch = torch.from_numpy(images)
    with torch.no_grad():
        expected = [t.numpy() for t in adapter.encoder(batch)]
        z = adapter.parity_latents(batch)
        decoded = adapter.decoder(z).numpy()
    got = encoder.run(encoder_outputs(adapter.layout), {IMAGE: images})
    (ort_image,) = decoder.run(DECODER_OUTPUTS, {LATENT: z.numpy()})
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True)]
    return max(*diffs, float(np.abs(ort_image - decoded).max()))


def export_artifact(
    adapter: ExportAdapter, out_dir: Path, training: TrainingInfo, name: str | None = None, log: Path | None = None
) -> Manifest:
    """Write the artifact to ``out_dir`` (replacing what is there only once all checks pass)."""
    dataset = adapter.dataset
    images = sample_images(dataset, STATS_SAMPLES)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        example = torch.from_numpy(images[:2])
        with torch.no_grad():
            onnx_export(adapter.encoder, example, staging / ENCODER_FILE, [IMAGE], encoder_outputs(adapter.layout))
            z_example = adapter.parity_latents(example)
            onnx_export(adapter.decoder, z_example, staging / DECODER_FILE, [LATENT], DECODER_OUTPUTS)
        diff = check_parity(adapter, staging, images[:64])
        if not diff <= PARITY_TOLERANCE:
            raise ExportError(f"onnxruntime differs from torch by {diff:.2e} (tolerance {PARITY_TOLERANCE:.0e})")
        manifest = Manifest(
            name=name or out_dir.name,
            objective=adapter.objective,  # type: ignore[arg-type]
            architecture=adapter.architecture,  # type: ignore[arg-type]
            likelihood=adapter.likelihood,  # type: ignore[arg-type]
            hyperparameters=adapter.hyperparameters,
            dataset=dataset.info(),
            latent_dim=adapter.layout.size,
            layout=adapter.layout,
            image_shape=dataset.image_shape,
            latent_stats=adapter.latent_stats(images),
            training=training,
            files={
                "encoder": OnnxFile(path=ENCODER_FILE, sha256=sha256_of(staging / ENCODER_FILE)),
                "decoder": OnnxFile(path=DECODER_FILE, sha256=sha256_of(staging / DECODER_FILE)),
            },
            code_version=code_version(),
            metrics={"export_parity_max_abs_diff": diff},
        )
        write_manifest(staging, manifest)
        if log is not None and log.exists():  # the model card draws its training curves from it
            shutil.copyfile(log, staging / TRAINING_LOG_FILE)
        swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def export_from_run(adapter: ExportAdapter, state: dict, run_dir: Path, out_dir: Path, name: str | None) -> Manifest:
    """``export_artifact`` for a run's checkpoint ``state``, with its account and log."""
    return export_artifact(adapter, out_dir, training_info(state, run_dir), name=name, log=run_dir / LOG)


def swap_in(staging: Path, out_dir: Path) -> None:
    """Put ``staging`` where ``out_dir`` is, the old folder out of the way first (a rename each)."""
    if out_dir.exists():
        retired = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        out_dir.rename(retired)
        staging.rename(out_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out_dir)
