"""How the minibatch total-correlation estimate of a trained model depends on the batch it is computed over.

    .venv/bin/python scripts/estimator_bias.py models/dsprites_beta_tcvae models/dsprites_beta_vae

The true total correlation is a KL divergence, never negative. beta-TCVAE (Chen et al. 2018, Sec. 4.1)
estimates log q(z) from the minibatch: once the encoder's posteriors are much narrower than the spread of the
codes, a batch of M images out of N rarely holds a neighbour of z_i, so log q(z_i) collapses to the point's
own term, log q(z_i|x_i) - log N, and is underestimated by about the log of the number of neighbours it
misses; the one-dimensional marginals are estimated well. The estimate of TC is then negative by that much,
and shrinks towards the truth only as M grows. The script encodes one uniform sample of the dataset, draws
z ~ q(z|x) once, and prints the mean estimate over disjoint batches of each size, with the same weights as
training (``total_correlation_at`` gives the point's own posterior weight 1/N).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from training.data import get_dataset
from training.evaluate.onnx_model import OnnxModel
from training.evaluate.unsupervised import kl_per_dim, total_correlation_at

BATCH_SIZES = (64, 256, 512, 2048, 8192)


def print_tc_by_batch_size(folder: Path, samples: int, seed: int) -> None:
    model = OnnxModel(folder)
    dataset = get_dataset(model.manifest.dataset.name, **model.manifest.dataset.params)
    rng = np.random.default_rng(seed)
    mu, logvar = model.encode(dataset.images(rng.choice(len(dataset), size=samples, replace=False)))  # (S, d)
    z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)  # (S, d)
    print(f"{folder.name}: KL {kl_per_dim(mu, logvar).sum():.2f} nats, log N = {math.log(len(dataset)):.2f}")
    for m in (b for b in BATCH_SIZES if b <= samples):
        batches = [slice(start, start + m) for start in range(0, samples - m + 1, m)]
        estimate = np.mean([total_correlation_at(z[b], mu[b], logvar[b], len(dataset)) for b in batches])
        print(f"  batch {m:>5}: TC estimate {estimate:+.2f} nats ({len(batches)} batches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="+", type=Path)
    parser.add_argument("--samples", type=int, default=8192, help="images encoded per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for folder in args.artifacts:
        print_tc_by_batch_size(folder, args.samples, args.seed)


if __name__ == "__main__":
    main()
