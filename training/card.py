"""The model card: pictures and a short card.md beside an artifact, written by ``disentangle-train eval``.

card/traversal.png        rows = continuous dims by KL (most informative first), columns = values of that dim;
                          then one row per categorical part, a column per class
card/reconstructions.png  inputs (top) over their reconstructions (bottom)
card/mutual_information.png  normalised MI between each latent dim and each factor
card/training_curves.png  the loss terms over training, from the artifact's training log
card/card.md              the numbers and the pictures, then the recipe notes (NOTES_FILE, beside the artifact) if any
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # the object API: no pyplot, no display backend to pick
from PIL import Image

from contract.grid import CARD_BACKGROUND, GAP, tile
from contract.manifest import CARD_DIR, NOTES_FILE, TRAINING_LOG_FILE, Manifest
from contract.ranges import dim_range
from training.data.base import ImageDataset
from training.evaluate.artifact_eval import Evaluation
from training.evaluate.judged_synthesis import judged_factors
from training.evaluate.onnx_model import OnnxModel

TRAVERSAL_STEPS = 9


def grid_picture(images: np.ndarray, rows: int, cols: int, scale: int = 2) -> Image.Image:
    """(rows*cols, C, H, W) in [0, 1] -> the contract's grid on the card's light grey, with a border, each
    pixel drawn ``scale`` x ``scale`` so that 64 px tiles read on a page."""
    grid = tile(images.reshape(rows, cols, *images.shape[1:]), background=CARD_BACKGROUND, margin=GAP)
    picture = Image.fromarray(grid)
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def traversal_values(manifest: Manifest, dim: int, steps: int = TRAVERSAL_STEPS) -> np.ndarray:
    """``steps`` values over the dim's range: the one /traverse walks and the page's sliders span."""
    return np.linspace(*dim_range(manifest, dim), steps)


def traversal_span(manifest: Manifest) -> str:
    """What the traversal's columns walk, by the continuous codes' prior (``contract.ranges`` states the rule)."""
    prior = manifest.layout.prior
    if prior.kind == "uniform":
        return f"over the prior U({prior.low:g}, {prior.high:g})"
    if prior.kind == "none":
        return "over mean ± 3 sd of the encodings"
    return "over [-3, 3] and mean ± 3 sd"


def traversal_grid(model: OnnxModel) -> Image.Image:
    """Rows: continuous dims by KL, each walked over its spread; then each categorical part through its classes
    (the other parts at class 0, continuous dims at their means, a GAN's noise at 0). Columns: steps or classes.
    """
    manifest = model.manifest
    layout = manifest.layout
    parts = list(layout.part_slices().values())
    columns = max([TRAVERSAL_STEPS, *(where.stop - where.start for where in parts)])
    first_classes = np.zeros((1, layout.classes), dtype=np.float32)
    for where in parts:
        first_classes[0, where.start - layout.continuous] = 1.0
    means = np.array([[s.mean for s in manifest.latent_stats]], dtype=np.float32)  # (1, c)
    base = layout.flat(means, first_classes if layout.classes else None)[0]  # (d,)
    order = sorted(range(layout.continuous), key=lambda j: -manifest.latent_stats[j].kl)
    latents, blank = [], []
    for dim in order:
        for value in traversal_values(manifest, dim, columns):
            z = base.copy()
            z[dim] = value
            latents.append(z)
    for where in parts:
        for k in range(columns):
            z = base.copy()
            z[where] = 0.0
            z[where.start + min(k, where.stop - where.start - 1)] = 1.0
            blank.append(k >= where.stop - where.start)  # a part with fewer classes than columns
            latents.append(z)
    images = model.decode(np.stack(latents))
    images[len(order) * columns :][np.array(blank, dtype=bool)] = 0.0
    return grid_picture(images, len(order) + len(parts), columns)


def reconstructions(model: OnnxModel, dataset: ImageDataset, n: int = 10) -> Image.Image:
    images = dataset.images(np.random.default_rng(7).choice(len(dataset), size=n, replace=False))
    return grid_picture(np.concatenate([images, model.decode(model.reconstruction_latent(images))]), 2, n)


def latent_labels(manifest: Manifest) -> list[str]:
    """A name per dim of the flat latent: z0.. for continuous dims, part=class for categorical entries, noise."""
    layout = manifest.layout
    labels = [f"z{j}" for j in range(layout.continuous)]
    for part in layout.categorical:
        labels += [f"{part.name}={k}" for k in range(part.classes)]
    return labels + [f"noise{j}" for j in range(layout.noise)]


def mutual_information_heatmap(
    information: np.ndarray, factor_names: list[str], path: Path, labels: list[str] | None = None
) -> None:
    fig = Figure(figsize=(1.2 + 0.9 * len(factor_names), 0.9 + 0.4 * information.shape[0]))
    ax = fig.subplots()
    ax.imshow(information, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(factor_names)), factor_names)
    ax.set_yticks(range(information.shape[0]), labels or [f"z{j}" for j in range(information.shape[0])])
    for (row, col), value in np.ndenumerate(information):
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.5 else "black")
    ax.set_title("mutual information / factor entropy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def training_curves(log: Path, path: Path) -> bool:
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not records:
        return False
    known = ("recon", "kl", "mi", "tc", "dwkl", "capacity", "loss_d", "loss_g", "info_cat", "info_cont", "q_accuracy")
    # Any record's terms, not the first's: a label warm-up logs its cross-entropy alone before the rest start.
    terms = [k for k in known if any(k in r for r in records)]
    if not terms:
        return False
    fig = Figure(figsize=(3.2 * len(terms), 2.8))
    axes = fig.subplots(1, len(terms), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        logged = [r for r in records if term in r]
        ax.plot([r["images_seen"] for r in logged], [r[term] for r in logged], linewidth=1)
        ax.set_title(term)
        ax.set_xlabel("images seen")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def _stopped_early(manifest: Manifest) -> list[str]:
    """A run cut by its time limit reports the configured ``steps``; say that it stopped short of them."""
    planned = manifest.hyperparameters.get("steps")
    if isinstance(planned, int) and manifest.training.steps < planned:
        return [f"(`steps` is the configured budget; the run was stopped at {manifest.training.steps:,}.)"]
    return []


def _metric_rows(metrics: dict[str, float | int | str]) -> list[str]:
    shown = [
        ("MIG", "mig"), ("FactorVAE score", "factor_vae"), ("beta-VAE score", "beta_vae"),
        ("DCI disentanglement", "dci.disentanglement"), ("DCI completeness", "dci.completeness"),
        ("DCI informativeness (test accuracy)", "dci.informativeness_test"), ("SAP", "sap"),
        ("reconstruction (BCE per image)", "recon_bce"), ("reconstruction (squared error per image)", "recon_mse"),
        ("KL (nats)", "kl_total"), ("active dims", "active_dims"), ("total correlation (nats)", "tc_estimate"),
        ("synthesis IoU vs. ground truth", "synthesis_iou"), ("synthesis correlation", "synthesis_corr"),
    ]  # fmt: skip
    rows = []
    for label, key in shown:
        if key in metrics:
            value = metrics[key]
            rows.append(f"| {label} | {value:.3f} |" if isinstance(value, float) else f"| {label} | {value} |")
    return rows


PICTURES = (
    ("Latent traversals (rows: dims by KL; columns: {over})", "traversal.png"),
    ("Inputs (top) and reconstructions (bottom)", "reconstructions.png"),
    ("Mutual information between latent dims and factors", "mutual_information.png"),
    ("Training curves", "training_curves.png"),
)


def _judged_rows(manifest: Manifest) -> list[str]:
    """The factor judge's asked-for figures, when the evaluation had a judge for the dataset."""
    judged = judged_factors(manifest.metrics)
    if not judged:
        return []
    m = manifest.metrics
    lines = [
        "",
        f"Asked-for accuracy: the factor judge ({m.get('judged.judge', '?')}) reads what `/synthesize` draws for "
        f"{m.get('judged.requests', '?')} requests naming every factor, each factor's values dealt out evenly "
        "(`training/evaluate/judged_synthesis.py`):",
        "",
        "| factor | asked-for accuracy, or mean error |",
        "| --- | --- |",
    ]
    for name, value, unit in judged:
        lines.append(f"| {name} | {value:.3f} |" if unit == "accuracy" else f"| {name} | {value:.2f} {unit} |")
    return lines


def write_card(
    folder: Path, model: OnnxModel, manifest: Manifest, dataset: ImageDataset, evaluation: Evaluation
) -> Path:
    card = folder / CARD_DIR
    card.mkdir(exist_ok=True)
    traversal_grid(model).save(card / "traversal.png")
    reconstructions(model, dataset).save(card / "reconstructions.png")
    if evaluation.mutual_information is not None:
        heatmap = card / "mutual_information.png"
        labels = latent_labels(manifest)[: evaluation.mutual_information.shape[0]]
        mutual_information_heatmap(evaluation.mutual_information, evaluation.factor_names, heatmap, labels)
    log = folder / TRAINING_LOG_FILE
    if log.exists():
        training_curves(log, card / "training_curves.png")
    return write_card_text(folder, manifest)


def write_card_text(folder: Path, manifest: Manifest) -> Path:
    """card.md from the manifest and the pictures in card/ (``write_card`` draws them first)."""
    card = folder / CARD_DIR
    card.mkdir(exist_ok=True)
    over = traversal_span(manifest)
    pictures = [(caption.format(over=over), file) for caption, file in PICTURES if (card / file).exists()]
    metrics = manifest.metrics
    t = manifest.training
    lines = [
        f"# {manifest.name}",
        "",
        f"{manifest.objective} ({manifest.architecture}, {manifest.latent_dim} latents, {manifest.likelihood}) "
        f"on {manifest.dataset.name}; {t.steps:,} steps, {t.images_seen:,} images, {t.wall_time_s / 60:.1f} min "
        f"on {t.device} ({t.precision}). Code {manifest.code_version}.",
        "",
        "Hyperparameters: " + ", ".join(f"`{k}={v}`" for k, v in manifest.hyperparameters.items()),
        *_stopped_early(manifest),
        "",
        f"Evaluated with `disentangle-train eval` ({metrics.get('eval_settings', '?')} settings; "
        f"MIG: {metrics.get('mig.definition', 'n/a')}).",
        "",
        "| metric | value |",
        "| --- | --- |",
        *_metric_rows(metrics),
        *_judged_rows(manifest),
    ]
    if manifest.calibration is not None:
        lines += ["", "Factor calibration (dims carrying each factor; how often re-encoding recovers it):", ""]
        lines += ["| factor | dims | recovered |", "| --- | --- | --- |"]
        for factor in manifest.calibration.factors:
            recovered = manifest.calibration.recovery.get(factor.name, float("nan"))
            dims = f"part `{factor.part}`, classes {factor.classes}" if factor.part else str(factor.dims)
            lines.append(f"| {factor.name} | {dims} | {recovered:.2f} |")
        for group in manifest.calibration.groups:
            lines += [
                "",
                f"Looked up jointly (factors that share dims, with those a small table takes in): "
                f"{', '.join(group.factors)} ({len(group.offsets):,} combinations).",
            ]
    for caption, file in pictures:
        lines += ["", f"**{caption}**", "", f"![{caption}]({file})"]
    notes = folder / NOTES_FILE
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    (card / "card.md").write_text("\n".join(lines) + "\n")
    return card
