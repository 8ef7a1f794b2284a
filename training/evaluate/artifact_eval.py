"""Evaluate an exported artifact: disentanglement metrics, unsupervised measures, and factor calibration.

    disentangle-train eval models/dsprites_beta_tcvae          # writes metrics + calibration + card/
    disentangle-train eval models/                             # every artifact in the folder, then one table
    disentangle-train eval models/ --judge-only                # only the factor judge's asked-for figures
    disentangle-train eval models/ --calibration-only          # the calibration and every figure read through it

With a factor judge for the dataset (judges/<dataset>, ``training/judge``), the evaluation ends with the
judged synthesis (``judged_synthesis.py``): the judge reads what ``/synthesize`` draws for every factor value.

Everything runs through the artifact's ONNX files, so the numbers describe what the service serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contract.calibration import latent_for
from contract.manifest import Calibration, FactorSpec, Manifest
from training.data import get_dataset
from training.data.base import FactorDataset, ImageDataset, LabelledDataset
from training.evaluate.calibrate import calibrate, calibrate_groups
from training.evaluate.information import factor_entropies, mutual_information_matrix
from training.evaluate.judged_synthesis import find_judge, judged_synthesis, without_judged
from training.evaluate.labelled_calibration import calibrate_labelled, recovery
from training.evaluate.onnx_model import OnnxModel
from training.evaluate.source import CodeSource
from training.evaluate.suite import SUPERVISED_STAGES, EvaluationSettings, Stage, evaluate_representation, no_stage
from training.evaluate.unsupervised import active_dims, kl_per_dim, total_correlation_estimate
from training.families import family_of

UNSUPERVISED_SAMPLES = 10_000
# What `evaluate` reports through its ``stage`` callback, in order (datasets without factors stop after the first).
STAGES = ("reconstruction, KL, TC", *SUPERVISED_STAGES, "calibration", "synthesis", "judged synthesis")
SYNTHESIS_SAMPLES = 1_000
# Settings small enough for a test run of the whole pipeline; the numbers they give are only indicative.
QUICK = EvaluationSettings(
    num_train=2_000, num_test=1_000, dci_num_train=500, num_votes_train=200, num_votes_eval=100,
    num_variance_estimate=2_000,
)  # fmt: skip


@dataclass
class Evaluation:
    metrics: dict[str, float | int | str]
    calibration: Calibration | None
    mutual_information: np.ndarray | None  # (d, F), normalised by each factor's entropy
    factor_names: list[str]


def reconstruction_per_image(images: np.ndarray, decoded: np.ndarray, likelihood: str) -> float:
    """Mean over images of the negative log-likelihood summed over pixels (BCE or squared error)."""
    if likelihood == "bernoulli":
        p = np.clip(decoded.astype(np.float64), 1e-7, 1 - 1e-7)
        per_pixel = -(images * np.log(p) + (1 - images) * np.log1p(-p))
    else:
        per_pixel = (decoded.astype(np.float64) - images) ** 2
    return float(per_pixel.reshape(len(images), -1).sum(1).mean())


def is_binary(images: np.ndarray) -> bool:
    return bool(np.isin(images, (0.0, 1.0)).all())


def agreement(decoded: np.ndarray, truth: np.ndarray, binary: bool) -> np.ndarray:
    """Per image: IoU of the thresholded images for binary data, else the Pearson correlation of pixels."""
    a = decoded.reshape(len(decoded), -1)
    b = truth.reshape(len(truth), -1)
    if binary:
        a, b = a > 0.5, b > 0.5
        union = (a | b).sum(1)
        return np.where(union > 0, (a & b).sum(1) / np.maximum(union, 1), 1.0)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def synthesis_quality(
    model: OnnxModel, dataset: FactorDataset, calibration: Calibration, rng: np.random.Generator, n: int
) -> dict[str, float]:
    """Decode the calibrated latent of ``n`` random factor combinations and compare with the dataset's own
    render of the same combination; then re-encode the decoded image and read each factor back: the value
    whose calibrated latent (the other factors as requested) lies nearest on that factor's dims."""
    classes = dataset.sample_factors(n, rng)  # (n, F)
    requests = [{f.name: f.values[c] for f, c in zip(dataset.factors, row, strict=True)} for row in classes]
    latents = np.stack([latent_for(calibration, request) for request in requests])  # (n, d)
    decoded = model.decode(latents)
    truth = dataset.render(classes)
    binary = is_binary(truth)
    out = {("synthesis_iou" if binary else "synthesis_corr"): float(agreement(decoded, truth, binary).mean())}
    return {**out, **recovery(model, calibration, requests, classes, decoded)}


def evaluate(
    model: OnnxModel,
    dataset: ImageDataset,
    settings: EvaluationSettings,
    rng: np.random.Generator,
    stage: Stage = no_stage,
) -> Evaluation:
    manifest = model.manifest
    stage(STAGES[0])
    n = min(UNSUPERVISED_SAMPLES, len(dataset))
    images = dataset.images(rng.choice(len(dataset), size=n, replace=False))
    mu, logvar = model.encode(images)
    metrics: dict[str, float | int | str] = {
        f"recon_{'bce' if manifest.likelihood == 'bernoulli' else 'mse'}": reconstruction_per_image(
            images, model.decode(model.reconstruction_latent(images)), manifest.likelihood
        ),
        "eval_samples": n,
    }
    if not family_of(manifest.objective).posterior:
        # e.g. InfoGAN's Q is no posterior held against a prior: KL, active dims by KL and the TC of q(z) do not apply.
        metrics["active_dims"] = "n/a"
    else:
        kl = kl_per_dim(mu, logvar)
        metrics["kl_total"] = float(kl.sum())
        metrics["active_dims"] = int(active_dims(kl).sum())
        metrics["tc_estimate"] = total_correlation_estimate(mu, logvar, len(dataset), rng)
    if isinstance(dataset, LabelledDataset) and dataset.factors:  # labels only: calibrated, no grid metrics
        found = calibrate_artifact(model, dataset, settings, rng, stage)
        return Evaluation({**metrics, **found.metrics}, found.calibration, found.mutual_information, found.factor_names)
    if not isinstance(dataset, FactorDataset):
        return Evaluation(metrics, None, None, [])

    metrics.update(evaluate_representation(dataset, model.mean, rng, settings, stage))
    found = calibrate_artifact(model, dataset, settings, rng, stage)
    return Evaluation({**metrics, **found.metrics}, found.calibration, found.mutual_information, found.factor_names)


def calibrate_artifact(
    model: OnnxModel,
    dataset: FactorDataset | LabelledDataset,
    settings: EvaluationSettings,
    rng: np.random.Generator,
    stage: Stage,
) -> Evaluation:
    """The factor calibration, and the synthesis figures read through it (IoU, agreement, recovery); for a
    labelled data set that renders no chosen values, the recovery alone (``labelled_calibration``)."""
    stage("calibration")
    if not isinstance(dataset, FactorDataset):
        calibration, information, found = calibrate_labelled(model, dataset, settings, rng)
        return Evaluation(dict(found), calibration, information, [f.name for f in dataset.factors])
    classes = dataset.sample_factors(settings.num_train, rng)
    codes = model.mean(dataset.render(classes))
    information = mutual_information_matrix(codes, classes, settings.bins) / factor_entropies(classes)[None, :]
    specs = [FactorSpec(name=f.name, values=list(f.values)) for f in dataset.factors]
    calibration = calibrate(codes, classes, specs, settings.bins, layout=model.manifest.layout)
    calibration = calibrate_groups(calibration, CodeSource.from_dataset(dataset, model.mean), rng)
    stage("synthesis")
    quality = synthesis_quality(model, dataset, calibration, rng, SYNTHESIS_SAMPLES)
    calibration = calibration.model_copy(
        update={
            "agreement": {k: v for k, v in quality.items() if k.startswith("synthesis")},
            "recovery": {k.split(".", 1)[1]: v for k, v in quality.items() if k.startswith("recovery.")},
        }
    )
    return Evaluation(dict(quality), calibration, information, [f.name for f in dataset.factors])


def judged_metrics(
    model: OnnxModel, dataset: ImageDataset, calibration: Calibration | None, judges: Path | None, seed: int
) -> dict[str, float | int | str]:
    """The judge's asked-for figures (``judged.*``), or nothing without a calibration or a judge."""
    if calibration is None or not isinstance(dataset, FactorDataset):
        return {}
    judge = find_judge(dataset, judges)
    if judge is None:
        return {}
    # A generator of its own: judging adds figures without moving the draws of any other metric.
    return judged_synthesis(model, dataset, calibration, judge, np.random.default_rng(seed))


def evaluation_dataset(manifest: Manifest) -> ImageDataset:
    """The data an artifact is measured on: its training source's held-out images where it has them (the real
    glyphs' fixed 1,000, which no zoo model trains on), else the source itself."""
    dataset = get_dataset(manifest.dataset.name, **manifest.dataset.params)
    return dataset.heldout_split() or dataset


def evaluate_artifact(
    folder: Path, quick: bool = False, seed: int = 0, stage: Stage = no_stage, judges: Path | None = None
) -> tuple[Manifest, Evaluation]:
    """Evaluate ``folder``'s artifact; return its manifest with metrics and calibration filled in."""
    model = OnnxModel(folder)
    manifest = model.manifest
    dataset = evaluation_dataset(manifest)
    settings = QUICK if quick else EvaluationSettings()
    result = evaluate(model, dataset, settings, np.random.default_rng(seed), stage)
    result.metrics["eval_settings"] = "quick" if quick else "disentanglement_lib"
    stage("judged synthesis")
    result.metrics.update(judged_metrics(model, dataset, result.calibration, judges, seed))
    metrics = {**without_judged(manifest.metrics), **result.metrics}
    updated = manifest.model_copy(update={"metrics": metrics, "calibration": result.calibration})
    return Manifest.model_validate(updated.model_dump()), result


def recalibrate_artifact(
    folder: Path, quick: bool = False, seed: int = 0, judges: Path | None = None
) -> tuple[Manifest, Evaluation]:
    """Only the calibration of ``folder``'s artifact and what reads it (synthesis IoU and recovery, the judged
    figures); the representation metrics (MIG, DCI, ...) stay as they are, since the calibration moves none
    of them. For a change of the calibration rules, without the minutes of a full evaluation."""
    model = OnnxModel(folder)
    manifest = model.manifest
    dataset = evaluation_dataset(manifest)
    settings = QUICK if quick else EvaluationSettings()
    if not isinstance(dataset, FactorDataset | LabelledDataset) or not dataset.factors:
        raise ValueError(f"{folder}: dataset {manifest.dataset.name!r} has no factors to calibrate")
    result = calibrate_artifact(model, dataset, settings, np.random.default_rng(seed), no_stage)
    result.metrics.update(judged_metrics(model, dataset, result.calibration, judges, seed))
    kept = {k: v for k, v in without_judged(manifest.metrics).items() if k not in result.metrics}
    updated = manifest.model_copy(update={"metrics": {**kept, **result.metrics}, "calibration": result.calibration})
    return Manifest.model_validate(updated.model_dump()), result


def judge_artifact(folder: Path, judges: Path | None = None, seed: int = 0) -> Manifest:
    """Only the judged synthesis of ``folder``'s artifact, with the calibration it already has; every other
    figure of its manifest stays as it is."""
    model = OnnxModel(folder)
    manifest = model.manifest
    if manifest.calibration is None:
        raise ValueError(f"{folder}: the manifest has no calibration to synthesise from; run `disentangle-train eval`")
    dataset = evaluation_dataset(manifest)
    if not isinstance(dataset, FactorDataset) or find_judge(dataset, judges) is None:
        raise ValueError(f"{folder}: no factor judge for dataset {manifest.dataset.name!r} in {judges or 'judges/'}")
    judged = judged_metrics(model, dataset, manifest.calibration, judges, seed)
    metrics = {**without_judged(manifest.metrics), **judged}
    return Manifest.model_validate(manifest.model_copy(update={"metrics": metrics}).model_dump())
