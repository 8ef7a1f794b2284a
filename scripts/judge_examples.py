"""The two examples the project is judged by, drawn by every model of their dataset and read by its factor judge.

    .venv/bin/python scripts/judge_examples.py            # prints a table; writes docs/images/judged-*.png

- the seed's ``{"digit": 7, "scale": 0.7, "posY": 0, "rotation": 30}`` on every digits model: is it judged a 7,
  in the top half (centre above row 32 of 64), rotated between 15 and 45 degrees?
- the README's ``{"shape": "heart", "scale": 0.6, "posX": 0.1, "posY": 0.1}`` on every dSprites model: which
  shape is it judged?

Each picture shows the dataset's own render first (the nearest grid values; a factor left out of the request at
its first value), then each model's ``/synthesize`` image (the same code path: ``judged_synthesis.synthesize``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from training.card import grid_picture
from training.data import get_dataset
from training.data.base import FactorDataset
from training.evaluate.judged_synthesis import judge_request
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import SHIPPED_JUDGES, OnnxJudge

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {
    "digits": ("seven", {"digit": 7, "scale": 0.7, "posY": 0, "rotation": 30}),
    "dsprites": ("heart", {"shape": "heart", "scale": 0.6, "posX": 0.1, "posY": 0.1}),
}


def nearest_render(dataset: FactorDataset, request: dict) -> np.ndarray:
    """(C, H, W) the dataset's render of the grid values nearest the request."""
    classes = []
    for factor in dataset.factors:
        value = request.get(factor.name, factor.values[0])
        if isinstance(value, str):
            classes.append(list(factor.values).index(value))
        else:
            classes.append(int(np.abs(np.array(factor.values, dtype=float) - value).argmin()))
    return dataset.render(np.array([classes]))[0]


def verdict(dataset: str, judged: dict) -> str:
    if dataset == "digits":
        row = 20 + 24 * float(judged["posY"])  # the glyph's centre row (training/data/digits.py)
        checks = [judged["digit"] == 7, row < 32, 15 <= float(judged["rotation"]) <= 45]
        return "yes" if all(checks) else "no (" + ", ".join(
            what for what, ok in zip(["not a 7", "not in the top half", "angle outside 15-45"], checks, strict=True)
            if not ok
        ) + ")"  # fmt: skip
    return "yes" if judged["shape"] == "heart" else f"no (a {judged['shape']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--images", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    print("| example | model | judged | as asked |")
    print("| --- | --- | --- | --- |")
    for name, (label, request) in EXAMPLES.items():
        dataset = get_dataset(name)
        assert isinstance(dataset, FactorDataset)
        judge = OnnxJudge(SHIPPED_JUDGES / name)
        pictures = [nearest_render(dataset, request)]
        for folder in sorted(args.models.glob("*/manifest.json")):
            model = OnnxModel(folder.parent)
            calibration = model.manifest.calibration
            if model.manifest.dataset.name != name or calibration is None:
                continue
            image, judged = judge_request(model, calibration, judge, request)
            pictures.append(image)
            shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in judged.items())
            print(f"| {label} | {model.manifest.name} | {shown} | {verdict(name, judged)} |")
        path = args.images / f"judged-{label}.png"
        grid_picture(np.stack(pictures), 1, len(pictures), scale=3).save(path)
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
