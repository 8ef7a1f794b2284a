"""How well a categorical latent part tracks a ground-truth factor, on the dataset's own renders.

    .venv/bin/python scripts/categorical_purity.py models/digits_joint_vae_labels        # an artifact
    .venv/bin/python scripts/categorical_purity.py runs/digits_joint_vae --factor digit  # a run's checkpoint

Renders ``--per-value`` images of every value of the factor (the other factors drawn at random), reads the
part's most probable class, and prints per value: the class the calibration would map it to (highest mean
probability), its purity (the share of that value's images whose most probable class is that class) and the
accuracy overall. A part that tracks the factor has one distinct class per value and purity near 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.data import get_dataset
from training.data.base import FactorDataset


def probabilities_from(path: Path, images: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """(N, C, H, W) -> (N, k) probabilities of every categorical part, and the parts (name, classes)."""
    if (path / "manifest.json").exists():
        from training.evaluate.onnx_model import OnnxModel

        model = OnnxModel(path, threads=1)
        return model.encode_all(images)[2], [(p.name, p.classes) for p in model.manifest.layout.categorical]
    import torch

    from training.checkpoints import CHECKPOINT, load_checkpoint
    from training.train import TrainConfig, build_model

    state = load_checkpoint(path / CHECKPOINT)
    cfg = TrainConfig.from_dict(state["config"])
    net = build_model(cfg, get_dataset(cfg.dataset, **cfg.dataset_params))
    net.load_state_dict(state["model"])
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net.encode_all(torch.from_numpy(c))[2] for c in np.array_split(images, 16)])
        return net.category_probabilities(logits).numpy(), cfg.categorical_parts()


def dataset_of(path: Path) -> str:
    if (path / "manifest.json").exists():
        return json.loads((path / "manifest.json").read_text())["dataset"]["name"]
    return json.loads((path / "config.json").read_text())["dataset"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", type=Path, help="an artifact folder or a run folder (checkpoint.pt)")
    parser.add_argument("--factor", default=None, help="default: the factor named like the first categorical part")
    parser.add_argument("--per-value", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = get_dataset(dataset_of(args.path))
    if not isinstance(dataset, FactorDataset):
        raise SystemExit(f"{dataset.name} has no factor grid to render")
    rng = np.random.default_rng(args.seed)
    names = [f.name for f in dataset.factors]
    _, parts = probabilities_from(args.path, dataset.render(dataset.sample_factors(1, rng)))
    part_names = [name for name, _ in parts]
    factor = args.factor or part_names[0]
    which = part_names.index(factor) if factor in part_names else 0
    start = sum(k for _, k in parts[:which])
    j = names.index(factor)
    values = list(dataset.factors[j].values)
    rows = []
    for v in range(len(values)):
        drawn = dataset.sample_factors(args.per_value, rng)  # (n, F)
        drawn[:, j] = v
        rows.append(drawn)
    classes = np.concatenate(rows)  # (V * n, F)
    probabilities, _ = probabilities_from(args.path, dataset.render(classes))
    part = probabilities[:, start : start + parts[which][1]]  # (N, K)
    argmax, truth = part.argmax(1), classes[:, j]
    mapped = [int(part[truth == v].mean(0).argmax()) for v in range(len(values))]
    print(f"{args.path}: part {parts[which][0]!r} against factor {factor!r}, {args.per_value} renders per value")
    print(f"{'value':>8} {'class':>5} {'purity':>7}")
    for v, value in enumerate(values):
        purity = float((argmax[truth == v] == mapped[v]).mean())
        print(f"{value!s:>8} {mapped[v]:>5} {purity:>7.3f}")
    accuracy = float((argmax == np.asarray(mapped)[truth]).mean())
    print(f"accuracy {accuracy:.3f}; distinct classes {len(set(mapped))} of {len(values)} values")


if __name__ == "__main__":
    main()
