"""Can a JointVAE's encoder read a categorical factor from the few-label subset alone? Trains only the encoder
(trunk and categorical head) on the labelled subset's cross-entropy, with no reconstruction, and prints the
cross-entropy and the held-out accuracy on fresh renders as it goes.

    .venv/bin/python scripts/labelled_code_only.py \
        --config configs/experiments/dsprites_joint_vae_first.toml --steps 500

The subset and its draws are the ones ``disentangle-train fit`` would use for that config (``labelled_subset``):
if the code is not learnt here, it is not the reconstruction that crowds it out.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import numpy as np
import torch

from training.data import get_dataset
from training.train import TrainConfig, build_model, labelled_subset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a JointVAE config with label_fraction > 0")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=100, help="steps between held-out readings")
    parser.add_argument("--heldout", type=int, default=2_000, help="fresh renders to read")
    parser.add_argument("--encoder-norm", choices=["", "batch", "group"], help="override the config's encoder_norm")
    args = parser.parse_args()
    with args.config.open("rb") as f:
        raw = tomllib.load(f)
    if args.encoder_norm is not None:
        raw["encoder_norm"] = args.encoder_norm
    cfg = TrainConfig.from_dict(raw)
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    subset = labelled_subset(cfg, dataset)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, dataset)
    optimizer = torch.optim.Adam(model.encoder.parameters(), cfg.lr)
    indices = np.random.default_rng([cfg.seed, 1]).choice(len(dataset), size=args.heldout, replace=False)
    names = [f.name for f in dataset.factors]
    x_test = torch.from_numpy(dataset.images(indices)).float()  # (N, C, H, W)
    y_test = torch.from_numpy(dataset.index_to_factors(indices)[:, names.index(cfg.label_factor)])  # (N,)
    for step in range(1, args.steps + 1):
        model.train()
        images, labels, _ = subset.batch(cfg.seed, 0, step)
        loss = torch.nn.functional.cross_entropy(model.encode_all(images)[2][:, subset.part], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            model.eval()  # a normalised encoder (encoder_norm = "batch") reads with its running statistics
            with torch.no_grad():
                accuracy = (model.encode_all(x_test)[2][:, subset.part].argmax(1) == y_test).float().mean()
            print(f"step {step}: cross-entropy {loss.item():.3f} nats, held-out accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
