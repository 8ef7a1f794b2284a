"""Judged synthesis: draw images the way ``/synthesize`` does and let the dataset's factor judge read them back.

    disentangle-train eval models/digits_vae --judge-only      # adds judged.* to the manifest and the card
    judged_synthesis(model, dataset, calibration, judge, np.random.default_rng(0))  # {"judged.digit": 0.31, ...}

Each request names every factor. Over ``REQUESTS`` requests each factor's values are dealt out evenly (a value
of a factor with V values is asked for n/V times, give or take one) and shuffled independently of the other
factors, so every value of every factor is asked for. Each request goes through the code path of
``/synthesize``: ``contract.calibration.latent_for``, the artifact's decoder in onnxruntime, and the 8-bit
pixels its PNG carries. The judge (``training/judge``) then reads every factor from the image.

Per factor the result is the asked-for accuracy (categorical: the fraction read as the asked class) or the
mean absolute error in the factor's unit (px of the 64x64 image for positions, degrees for angles, the
factor's own value for scale, px of stroke for thickness). An angle with rotational symmetry (dSprites'
square and ellipse) is compared modulo its period, taken from the asked shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from contract.calibration import latent_for
from contract.images import quantise, unit_range
from contract.manifest import Calibration, FactorValue
from training.data.base import FactorDataset
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import SHIPPED_JUDGES, OnnxJudge, summarise

REQUESTS = 1_000
MIN_REQUESTS = 200
PREFIX = "judged."
DEFINITION = (
    "the dataset's factor judge reading /synthesize images of {n} requests naming every factor, each factor's "
    "values dealt out evenly: accuracy for a categorical factor, else mean absolute error in the factor's unit"
)


def find_judge(dataset: FactorDataset, judges: Path | None = None) -> OnnxJudge | None:
    """The judge for ``dataset`` under ``judges`` (default: the shipped ones), or None when it has none."""
    folder = (judges or SHIPPED_JUDGES) / dataset.name
    if not folder.exists():
        return None
    judge = OnnxJudge(folder)
    judge.check_dataset(dataset)
    return judge


def balanced_classes(sizes: list[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, F) factor classes: each factor's values repeated evenly, shuffled independently per factor."""
    return np.stack([rng.permutation(np.resize(np.arange(size), n)) for size in sizes], axis=1)


def synthesize(model: OnnxModel, calibration: Calibration, requests: Sequence[Mapping[str, FactorValue]]) -> np.ndarray:
    """What ``/synthesize`` answers for each request, as (B, C, H, W) float32 from its 8-bit pixels."""
    latents = np.stack([latent_for(calibration, request) for request in requests])  # (B, d)
    return unit_range(quantise(model.decode(latents)))  # the 8-bit levels its PNG holds


def judged_synthesis(
    model: OnnxModel,
    dataset: FactorDataset,
    calibration: Calibration,
    judge: OnnxJudge,
    rng: np.random.Generator,
    n: int = REQUESTS,
) -> dict[str, float | int | str]:
    """``judged.<factor>`` (accuracy or mean error) and ``judged.<factor>.unit`` for every factor, over ``n``
    requests; plus the request count, the judge's identity and the definition."""
    if n < MIN_REQUESTS:
        raise ValueError(f"requests: expected at least {MIN_REQUESTS}, got {n}")
    judge.check_dataset(dataset)
    classes = balanced_classes([f.size for f in dataset.factors], n, rng)  # (n, F)
    requests = [{f.name: f.values[c] for f, c in zip(dataset.factors, row, strict=True)} for row in classes]
    figures = summarise(judge.errors(synthesize(model, calibration, requests), classes))
    out: dict[str, float | int | str] = {
        f"{PREFIX}definition": DEFINITION.format(n=n),
        f"{PREFIX}requests": n,
        f"{PREFIX}judge": f"judges/{judge.manifest.dataset} sha256 {judge.manifest.sha256[:12]}",
    }
    for reading in judge.readings:
        out[f"{PREFIX}{reading.name}"] = figures[reading.name]
        out[f"{PREFIX}{reading.name}.unit"] = reading.unit
    return out


def judged_factors(metrics: Mapping[str, object]) -> list[tuple[str, float, str]]:
    """(factor, figure, unit) of every judged factor in a manifest's metrics, in the order written."""
    out = []
    for key, value in metrics.items():
        if key.startswith(PREFIX) and f"{key}.unit" in metrics and isinstance(value, float):
            out.append((key[len(PREFIX) :], value, str(metrics[f"{key}.unit"])))
    return out


def without_judged(metrics: Mapping[str, float | int | str]) -> dict[str, float | int | str]:
    return {k: v for k, v in metrics.items() if not k.startswith(PREFIX)}


def judge_request(
    model: OnnxModel, calibration: Calibration, judge: OnnxJudge, request: Mapping[str, FactorValue]
) -> tuple[np.ndarray, dict[str, FactorValue]]:
    """One request's image (C, H, W) and every factor as the judge reads it: a categorical factor's value
    name, a continuous one's value in its own units (an angle in degrees)."""
    image = synthesize(model, calibration, [request])
    values = judge.values(image)
    judged: dict[str, FactorValue] = {}
    for reading in judge.readings:
        v = values[reading.name][0]
        if reading.kind == "categorical":
            name = reading.values[int(v)]
            judged[reading.name] = int(name) if isinstance(name, float) and name.is_integer() else name  # digit 7
        else:
            judged[reading.name] = float(np.degrees(v)) if reading.kind == "periodic" else float(v)
    return image[0], judged
