"""Issue 26's goals for a model of real handwriting, measured on the 1,000 held-out glyphs no zoo model trains on.

    .venv/bin/python scripts/handwriting_goals.py models/handwriting_joint_vae   # also handwriting-seven.png

- ``/encode`` of a held-out glyph on the canvas (each glyph at two random placements): the most probable class of
  the digit part, named through the calibration's class of each digit, against the glyph's label; overall and
  for the worst class.
- ``/synthesize``: 1,000 requests naming every factor (``judged_synthesis``'s deal), read by ``judges/handwriting``:
  the asked-for digit overall and for the worst asked class, and the mean rotation, position and scale errors.
- The blog's seven, ``{"digit": 7, "scale": 0.7, "posY": 0, "rotation": 30}``: judged a 7, in the top third
  (centre row 20 + 24 * posY < 64 / 3), at 25-35 degrees; its picture beside a held-out 7 placed there.
- A style code: over held-out glyphs placed upright (rotation 0, the other factors at random), the Spearman
  correlation of each continuous dim's posterior mean with the glyph's measured thickness and slant
  (``training/data/style.py``); the best dim for each.
- No memorising: reconstruction BCE of held-out against training glyphs (2,000 random placements each).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.card import grid_picture
from training.data.handwriting import Handwriting
from training.data.style import slant, thickness
from training.evaluate.artifact_eval import reconstruction_per_image
from training.evaluate.judged_synthesis import balanced_classes, judge_request, synthesize
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import SHIPPED_JUDGES, OnnxJudge

REPO = Path(__file__).resolve().parents[1]
SEVEN = {"digit": 7, "scale": 0.7, "posY": 0, "rotation": 30}
REQUESTS = 1_000


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no ties expected in continuous measurements)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def encode_figures(model: OnnxModel, heldout: Handwriting, rng: np.random.Generator) -> dict[str, float]:
    calibration = model.manifest.calibration
    assert calibration is not None
    digit = next(f for f in calibration.factors if f.name == "digit")
    if digit.part is None or digit.classes is None:
        raise ValueError("the model's digit is not calibrated onto a categorical part")
    glyphs = np.repeat(np.arange(len(heldout.labels)), 2)
    indices = heldout.placed(glyphs, rng)
    _, _, probabilities = model.encode_all(heldout.images(indices))
    where = model.manifest.layout.probability_slices()[digit.part]
    most = probabilities[:, where].argmax(1)  # (N,) class index in the part
    value_of = {c: v for v, c in reversed(list(zip(digit.values, digit.classes, strict=True)))}
    read = np.array([value_of.get(int(c), -1) for c in most])
    truth = heldout.labels[glyphs]
    per_class = [float((read[truth == d] == d).mean()) for d in range(10)]
    return {"encode.digit": float((read == truth).mean()), "encode.digit.worst": min(per_class),
            "encode.digit.worst_class": int(np.argmin(per_class))}  # fmt: skip


def synthesis_figures(model: OnnxModel, dataset: Handwriting, judge: OnnxJudge, rng: np.random.Generator) -> dict:
    calibration = model.manifest.calibration
    assert calibration is not None
    classes = balanced_classes([f.size for f in dataset.factors], REQUESTS, rng)  # (n, F)
    requests = [{f.name: f.values[c] for f, c in zip(dataset.factors, row, strict=True)} for row in classes]
    errors = judge.errors(synthesize(model, calibration, requests), classes)
    per_class = [float(errors["digit"][classes[:, 0] == d].mean()) for d in range(10)]
    return {
        "synthesize.digit": float(errors["digit"].mean()),
        "synthesize.digit.worst": min(per_class),
        "synthesize.digit.worst_class": int(np.argmin(per_class)),
        **{f"synthesize.{name}": float(errors[name].mean()) for name in ("rotation", "posX", "posY", "scale")},
    }


def seven(model: OnnxModel, heldout: Handwriting, judge: OnnxJudge, picture: Path) -> dict:
    calibration = model.manifest.calibration
    assert calibration is not None
    image, judged = judge_request(model, calibration, judge, SEVEN)
    row = 20 + 24 * float(judged["posY"])
    angle = float(judged["rotation"])
    sevens = np.flatnonzero(heldout.labels == 7)
    asked = [list(f.values).index(SEVEN.get(f.name, f.values[len(f.values) // 2])) for f in heldout.factors]
    placed = heldout.factors_to_index(np.array([asked] * 3), np.arange(3) % len(sevens))
    grid_picture(np.concatenate([heldout.images(placed), image[None]]), 1, 4, scale=3).save(picture)
    return {
        "seven.judged_digit": judged["digit"],
        "seven.centre_row": row,
        "seven.rotation": angle,
        "seven.as_asked": bool(judged["digit"] == 7 and row < 64 / 3 and 25 <= angle <= 35),
        "seven.request": json.dumps(SEVEN),
    }


def style_figures(model: OnnxModel, heldout: Handwriting, rng: np.random.Generator) -> dict:
    glyphs = np.repeat(np.arange(len(heldout.labels)), 2)
    upright = heldout.placed(glyphs, rng, fixed={"rotation": list(heldout.factors[2].values).index(0.0)})
    mu, _, _ = model.encode_all(heldout.images(upright))
    drawn = heldout.glyphs[glyphs]
    out: dict = {}
    for name, measured in (("thickness", thickness(drawn)), ("slant", slant(drawn))):
        rho = np.array([spearman(mu[:, d], measured) for d in range(mu.shape[1])])
        best = int(np.abs(rho).argmax())
        out[f"style.{name}.dim"], out[f"style.{name}.spearman"] = best, float(rho[best])
    return out


def memorising(model: OnnxModel, train: Handwriting, heldout: Handwriting, rng: np.random.Generator) -> dict:
    likelihood = model.manifest.likelihood
    bce = {}
    for name, dataset in (("train", train), ("heldout", heldout)):
        images = dataset.images(dataset.placed(rng.choice(len(dataset.labels), 2000), rng))
        bce[name] = reconstruction_per_image(images, model.decode(model.reconstruction_latent(images)), likelihood)
    return {"bce.train": bce["train"], "bce.heldout": bce["heldout"], "bce.ratio": bce["heldout"] / bce["train"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--judge", type=Path, default=SHIPPED_JUDGES / "handwriting")
    parser.add_argument("--picture", type=Path, default=REPO / "docs" / "images" / "handwriting-seven.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model, judge = OnnxModel(args.model), OnnxJudge(args.judge)
    train = Handwriting(**{k: str(v) for k, v in model.manifest.dataset.params.items()})
    heldout = train.heldout_split()
    judge.check_dataset(heldout)
    rng = np.random.default_rng(args.seed)
    figures = {
        **encode_figures(model, heldout, rng),
        **synthesis_figures(model, heldout, judge, rng),
        **seven(model, heldout, judge, args.picture),
        **style_figures(model, heldout, rng),
        **memorising(model, train, heldout, rng),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
