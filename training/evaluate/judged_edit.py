"""Judged edits: encode a render, replace some of its factors the way ``/edit`` does, and let the dataset's
factor judge read the result; compared with setting the named factors' dims to their codes instead.

    python -m training.evaluate.judged_edit models/digits_joint_vae [--bases 300] [--seed 0]

Each base is a render of the dataset at random factors, encoded as ``/edit`` encodes it (mu, each categorical
part's most probable class). Two requests per base: the blog's edit ("small, at the top, rotated 30 degrees":
the smallest scale, posY 0, rotation 30) and one naming 1 to 3 random factors at random grid values. Each
request is made two ways: ``shift`` (``contract.editing.edited``, what the service does) and ``set`` (each
named factor's dims set to its code, a group's dims to base + its offset). The decoded 8-bit pictures are
read by the judge: named factors against the asked values, the others against the base's own (the judge's
reading of the base picture, so its own bias cancels). The model's reading (``factors_of`` of the re-encoded
edit) is reported too. Figures: per factor, accuracy or mean absolute error in the judge's units.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from contract.calibration import _group_offset, _weights
from contract.editing import edited, factors_of, group_dims
from contract.images import quantise, unit_range
from contract.manifest import Calibration, FactorValue
from training.data import get_dataset
from training.data.base import FactorDataset
from training.evaluate.judged_synthesis import find_judge
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import OnnxJudge

BLOG_EDIT = {"scale", "posY", "rotation"}
Editor = Callable[[Calibration, np.ndarray, Mapping[str, FactorValue]], np.ndarray]


def set_edited(calibration: Calibration, z: np.ndarray, request: Mapping[str, FactorValue]) -> np.ndarray:
    """The alternative to ``edited``: each named factor's dims take its code for the asked value outright."""
    z = np.asarray(z, dtype=np.float64).copy()
    base = np.asarray(calibration.base, dtype=np.float64)
    by_name = {f.name: f for f in calibration.factors}
    grouped = {name for group in calibration.groups for name in group.factors}
    for name, value in request.items():
        factor = by_name[name]
        if factor.dims and (factor.part is not None or name not in grouped):
            codes = np.asarray(factor.codes, dtype=np.float64)
            z[np.asarray(factor.dims)] = _weights(factor, value) @ codes
    read = factors_of(calibration, z)
    for group in calibration.groups:
        asked = {name: request[name] for name in group.factors if name in request}
        if asked:
            moved = group_dims(group, by_name)
            offset = _group_offset(group, by_name, {**{n: read[n] for n in group.factors}, **asked})
            z[moved] = base[moved] + offset[moved]
    return z.astype(np.float32)


def requests_for(dataset: FactorDataset, n: int, rng: np.random.Generator) -> list[dict[str, int]]:
    """Per base, the blog's edit and a random one, as factor classes (indices into each factor's values)."""
    names = [f.name for f in dataset.factors]
    out: list[dict[str, int]] = []
    for _ in range(n):
        if BLOG_EDIT <= set(names):  # small, at the top, rotated 30 degrees
            out.append({"scale": 0, "posY": 0, "rotation": dataset.factors[names.index("rotation")].values.index(30.0)})
        else:
            out.append(random_request(dataset, rng))
        out.append(random_request(dataset, rng))
    return out


def random_request(dataset: FactorDataset, rng: np.random.Generator) -> dict[str, int]:
    """1 to 3 factors at random grid values, as classes."""
    chosen = rng.choice(len(dataset.factors), size=int(rng.integers(1, 4)), replace=False)
    return {dataset.factors[j].name: int(rng.integers(dataset.factors[j].size)) for j in chosen}


def judged_edits(
    model: OnnxModel, dataset: FactorDataset, judge: OnnxJudge, editor: Editor, bases: int, seed: int
) -> dict[str, dict[str, float]]:
    """{"named": {factor: figure}, "kept": {factor: figure}, "model named": ..., "model kept": ...}."""
    calibration = model.manifest.calibration
    if calibration is None:
        raise ValueError(f"{model.folder} has no calibration: run `disentangle-train eval` on it first")
    rng = np.random.default_rng(seed)
    classes = dataset.sample_factors(bases, rng)  # (N, F)
    images = dataset.render(classes)
    base_z = model.reconstruction_latent(images)  # (N, d)
    judged_base = judge.values(images)
    requests = requests_for(dataset, bases, rng)  # two per base
    base_of = np.repeat(np.arange(bases), 2)
    names = [f.name for f in dataset.factors]
    asked_values = [{k: dataset.factors[names.index(k)].values[c] for k, c in r.items()} for r in requests]
    latents = np.stack([editor(calibration, base_z[i], asked) for i, asked in zip(base_of, asked_values, strict=True)])
    pictures = unit_range(quantise(model.decode(latents)))
    judged = judge.values(pictures)
    reread = [factors_of(calibration, z) for z in model.reconstruction_latent(pictures)]
    base_read = [factors_of(calibration, z) for z in base_z]
    out: dict[str, dict[str, list[float]]] = {"named": {}, "kept": {}, "model named": {}, "model kept": {}}
    for j, reading in enumerate(judge.readings):
        name, grid, categorical = reading.name, dataset.factors[j].values, reading.kind == "categorical"
        scale = 1.0 if categorical else reading.per_unit
        for row, request in enumerate(requests):
            named = name in request
            got, base = judged[name][row], judged_base[name][base_of[row]]
            if categorical:
                error = float(got == (request[name] if named else base))
            else:
                error = abs(float(got) - (float(grid[request[name]]) if named else float(base))) * scale
            out["named" if named else "kept"].setdefault(name, []).append(error)
            if name in reread[row]:  # the model's own reading, against what was asked or what the base read
                mine = reread[row][name]
                theirs = asked_values[row][name] if named else base_read[base_of[row]][name]
                same = float(mine == theirs) if categorical else abs(float(mine) - float(theirs)) * scale
                out["model named" if named else "model kept"].setdefault(name, []).append(same)
    return {kind: {name: float(np.mean(v)) for name, v in figures.items()} for kind, figures in out.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--bases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = OnnxModel(args.model, threads=1)
    dataset = get_dataset(model.manifest.dataset.name, **model.manifest.dataset.params)
    judge = find_judge(dataset) if isinstance(dataset, FactorDataset) else None
    if judge is None or not isinstance(dataset, FactorDataset):
        raise SystemExit(f"no judge for {dataset.name} under judges/")
    units = {r.name: r.unit for r in judge.readings}
    for label, editor in (("shift", edited), ("set", set_edited)):
        figures = judged_edits(model, dataset, judge, editor, args.bases, args.seed)
        print(f"## {label}: {2 * args.bases} edits of {args.model.name}")
        for kind, by_factor in figures.items():
            print(f"{kind:12s}", "  ".join(f"{k} {v:.3f} {units[k]}" for k, v in by_factor.items()))


if __name__ == "__main__":
    main()
