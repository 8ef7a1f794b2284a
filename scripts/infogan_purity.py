"""Does an InfoGAN's categorical code pick the digit? Each class of the code, drawn with random noise and
continuous codes from their priors, read by the dataset's factor judge.

    .venv/bin/python scripts/infogan_purity.py models/digits_infogan --judge judges/digits

Prints, per class of the first categorical part: the digit the judge reads most often and how often (purity).
Then the accuracy of the best one-to-one pairing of classes with digits, the figure /synthesize can reach at
best when each asked-for digit maps to one class. Everything runs through the artifact's ONNX decoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from training.data import get_dataset
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import OnnxJudge


def class_latents(model: OnnxModel, part: int, k: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, d) layout vectors with class ``k`` of categorical ``part``, the rest drawn from InfoGAN's priors."""
    layout = model.manifest.layout
    continuous = rng.uniform(-1, 1, size=(count, layout.continuous))
    probabilities = np.zeros((count, layout.classes))
    for i, where in enumerate(layout.part_slices().values()):
        size = where.stop - where.start
        picked = np.full(count, k) if i == part else rng.integers(0, size, count)
        probabilities[np.arange(count), where.start - layout.continuous + picked] = 1.0
    z = layout.flat(continuous, probabilities)
    z[:, layout.noise_slice] = rng.standard_normal((count, layout.noise))
    return z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--factor", default="digit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = OnnxModel(args.artifact)
    layout = model.manifest.layout
    if not layout.categorical:
        raise SystemExit(f"{args.artifact} has no categorical latent part")
    judge = OnnxJudge(args.judge)
    dataset = get_dataset(model.manifest.dataset.name, **model.manifest.dataset.params)
    judge.check_dataset(dataset)  # type: ignore[arg-type]
    values = next(f.values for f in dataset.factors if f.name == args.factor)

    rng = np.random.default_rng(args.seed)
    classes = layout.categorical[0].classes
    counts = np.zeros((classes, len(values)), dtype=np.int64)  # (class, judged value)
    for k in range(classes):
        images = model.decode(class_latents(model, 0, k, args.per_class, rng))
        judged = judge.values(images)[args.factor]
        counts[k] = np.bincount(judged, minlength=len(values))
    part = layout.categorical[0].name
    print(f"{args.artifact.name}: {args.per_class} images per class of {part}, judged by {args.judge}")
    print(f"{'class':>5} {args.factor:>8} {'purity':>7}")
    for k in range(classes):
        top = int(counts[k].argmax())
        print(f"{k:>5} {values[top]!s:>8} {counts[k, top] / args.per_class:>7.3f}")
    print(f"mean purity {np.mean(counts.max(1) / args.per_class):.3f}")
    rows, cols = linear_sum_assignment(-counts)
    matched = counts[rows, cols].sum() / counts.sum()
    print(f"one-to-one class -> {args.factor} pairing accuracy {matched:.3f} ({len(rows)} pairs)")


if __name__ == "__main__":
    main()
