"""How well an artifact draws named factors, against what its decoder can draw at all.

    .venv/bin/python scripts/synthesis_ceiling.py models/dsprites_beta_tcvae

Prints, on 1,000 random factor combinations, the agreement with the dataset's own render of: the model's
reconstruction of that render (the ceiling), synthesis with the shipped calibration, and synthesis with its
factor groups dropped (one code per factor value, added up: the rule before groups). Where the dataset has a
factor judge (judges/), it then reads every factor of the reconstructions: asked-for synthesis cannot beat
what the decoder draws when it is given a real image's code.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from contract.images import quantise, unit_range
from training.data import get_dataset
from training.data.base import FactorDataset
from training.evaluate.artifact_eval import SYNTHESIS_SAMPLES, agreement, is_binary, synthesis_quality
from training.evaluate.judged_synthesis import find_judge
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import figure, summarise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = OnnxModel(args.artifact)
    calibration = model.manifest.calibration
    dataset = get_dataset(model.manifest.dataset.name, **model.manifest.dataset.params)
    if calibration is None or not isinstance(dataset, FactorDataset):
        raise SystemExit(f"{args.artifact}: needs a calibration and a dataset with factors")
    classes = dataset.sample_factors(SYNTHESIS_SAMPLES, np.random.default_rng(args.seed))
    truth = dataset.render(classes)
    reconstructed = model.decode(model.reconstruction_latent(truth))
    ceiling = agreement(reconstructed, truth, is_binary(truth)).mean()
    print(f"reconstruction of the render: {ceiling:.3f}")
    for label, used in (
        ("shipped calibration", calibration),
        ("without groups", calibration.model_copy(update={"groups": []})),
    ):
        quality = synthesis_quality(model, dataset, used, np.random.default_rng(args.seed), SYNTHESIS_SAMPLES)
        print(f"synthesis, {label}: {next(v for k, v in quality.items() if k.startswith('synthesis')):.3f}")
    judge = find_judge(dataset)
    if judge is not None:
        read = summarise(judge.errors(unit_range(quantise(reconstructed)), classes))
        shown = ", ".join(f"{r.name} {figure(r, read[r.name])}" for r in judge.readings)
        print(f"the judge on the reconstructions: {shown}")


if __name__ == "__main__":
    main()
