"""Calibration for a data set whose factors are labels of its images, not a grid it can render (plain ``mnist``:
the digit): ``/synthesize {"digit": 3}`` then works on a model trained on real digits.

    disentangle-train eval models/mnist_joint_vae --calibration-only

The calibration is fitted as for a grid (``training.evaluate.calibrate.calibrate``) on the codes of sampled images and
their labels; no value can be rendered on demand, so there are no joint groups and no agreement with a
ground-truth render. What is measured instead is the recovery: the image drawn for each value, re-encoded,
lies nearest that value's calibrated code (``recovery.<factor>``), each value asked for equally often.
"""

from __future__ import annotations

import numpy as np

from contract.calibration import latent_for
from contract.manifest import Calibration, FactorSpec, FactorValue
from training.data.base import LabelledDataset
from training.evaluate.calibrate import calibrate
from training.evaluate.information import factor_entropies, mutual_information_matrix
from training.evaluate.onnx_model import OnnxModel
from training.evaluate.suite import EvaluationSettings

RECOVERY_REQUESTS = 1_000


def recovery(
    model: OnnxModel,
    calibration: Calibration,
    requests: list[dict[str, FactorValue]],
    classes: np.ndarray,
    decoded: np.ndarray,
) -> dict[str, float]:
    """Per factor, how often the image ``decoded`` for ``requests`` (classes (n, F)), re-encoded, lies nearest
    the asked value's calibrated code on that factor's dims (the other factors as requested)."""
    mu = model.mean(decoded)  # (n, d)
    out = {}
    for j, factor in enumerate(calibration.factors):
        candidates = np.stack(
            [
                [latent_for(calibration, {**request, factor.name: v})[factor.dims] for v in factor.values]
                for request in requests
            ]
        )  # (n, V, k)
        distance = ((mu[:, None, factor.dims] - candidates) ** 2).sum(2)  # (n, V)
        out[f"recovery.{factor.name}"] = float((distance.argmin(1) == classes[:, j]).mean())
    return out


def calibrate_labelled(
    model: OnnxModel, dataset: LabelledDataset, settings: EvaluationSettings, rng: np.random.Generator
) -> tuple[Calibration, np.ndarray, dict[str, float]]:
    """The calibration from ``settings.num_train`` sampled images (all, when fewer), the (d, F) mutual
    information normalised per factor, and the recovery figures."""
    indices = rng.choice(len(dataset), size=min(settings.num_train, len(dataset)), replace=False)
    classes = dataset.index_to_factors(indices)  # (N, F)
    codes = model.mean(dataset.images(indices))  # (N, d)
    information = mutual_information_matrix(codes, classes, settings.bins) / factor_entropies(classes)[None, :]
    specs = [FactorSpec(name=f.name, values=list(f.values)) for f in dataset.factors]
    calibration = calibrate(codes, classes, specs, settings.bins, layout=model.manifest.layout)
    asked = np.stack([rng.permutation(np.resize(np.arange(f.size), RECOVERY_REQUESTS)) for f in dataset.factors], 1)
    requests = [{f.name: f.values[c] for f, c in zip(dataset.factors, row, strict=True)} for row in asked]
    decoded = model.decode(np.stack([latent_for(calibration, request) for request in requests]))
    found = recovery(model, calibration, requests, asked, decoded)
    calibration = calibration.model_copy(update={"recovery": {k.split(".", 1)[1]: v for k, v in found.items()}})
    return calibration, information, found
