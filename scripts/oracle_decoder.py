"""How many images does the zoo's conv decoder need to draw dSprites' shape when its input names every factor
exactly? Trains only the decoder, on renders of random factors, from the code a perfect JointVAE encoder would
give (scale, posX, posY standardised on dims 0-2 as ``label_continuous`` ties them, the orientation as its
cosine and sine on dims 3-4, the shape one-hot after the 8 continuous dims), and lets the factor judge read
what it draws as it goes.

    .venv/bin/python scripts/oracle_decoder.py --minutes 30

No encoder, prior or KL: what the decoder of any model of this layout needs at the least. If this one draws
the asked-for shape only after millions of images, a JointVAE whose code already names the shape is not
short of a better code but of decoder training.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from contract.images import quantise, unit_range
from training.data import get_dataset
from training.evaluate.judged_synthesis import balanced_classes, find_judge
from training.judge.artifact import summarise
from training.models import ConvDecoder

CONTINUOUS, SHAPES = 8, 3


def oracle_code(classes: np.ndarray, sizes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(B, 5) dSprites classes (shape, scale, orientation, posX, posY) -> (B, 11) float32 code."""
    code = np.zeros((len(classes), CONTINUOUS + SHAPES), np.float32)
    for dim, factor in enumerate((1, 3, 4)):  # scale, posX, posY: uniform grids standardised to mean 0, std 1
        grid = classes[:, factor] / (sizes[factor] - 1)
        code[:, dim] = (grid - 0.5) / np.sqrt(1 / 12)
    angle = angles[classes[:, 2]]  # radians
    code[:, 3], code[:, 4] = np.cos(angle), np.sin(angle)
    code[np.arange(len(classes)), CONTINUOUS + classes[:, 0]] = 1.0
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=500, help="steps between judged readings")
    parser.add_argument("--requests", type=int, default=600, help="judged draws per reading")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    dataset = get_dataset("dsprites")
    judge = find_judge(dataset)
    assert judge is not None, "judges/dsprites is missing"
    sizes = dataset.factor_sizes
    angles = np.asarray(dataset.factors[2].values, dtype=np.float64)
    decoder = ConvDecoder(1, CONTINUOUS + SHAPES)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    asked = balanced_classes([int(s) for s in sizes], args.requests, np.random.default_rng(1))  # fixed draws
    asked_code = torch.from_numpy(oracle_code(asked, sizes, angles))

    def reading(step: int, bce: float, start: float) -> None:
        decoder.eval()
        with torch.no_grad():
            drawn = unit_range(quantise(torch.sigmoid(decoder(asked_code)).numpy()))  # as a PNG carries it
        decoder.train()
        judged = summarise(judge.errors(drawn, asked))
        print(
            f"step {step:6d}  images {step * args.batch_size:9,d}  {time.monotonic() - start:6.0f} s  "
            f"BCE {bce:7.1f}  shape {judged['shape']:.3f}  scale {judged['scale']:.3f}  "
            f"orientation {judged['orientation']:5.1f} deg  posX {judged['posX']:.2f} px  posY {judged['posY']:.2f} px",
            flush=True,
        )

    start = time.monotonic()
    step, losses = 0, []
    while time.monotonic() - start < args.minutes * 60:
        classes = dataset.sample_factors(args.batch_size, rng)  # (B, 5)
        images = torch.from_numpy(dataset.render(classes))  # (B, 1, 64, 64)
        logits = decoder(torch.from_numpy(oracle_code(classes, sizes, angles)))
        loss = F.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)  # per image
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        if step % args.every == 0:
            reading(step, float(np.mean(losses)), start)
            losses = []
    if losses:
        reading(step, float(np.mean(losses)), start)


if __name__ == "__main__":
    main()
