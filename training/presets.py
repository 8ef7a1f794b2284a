"""Named starting points for ``disentangle-train fit --preset NAME``; flags and config files override them."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # A small real model in under a minute on a 2-core CPU: what tests and new users start from.
    "smoke": {
        "name": "smoke",
        "dataset": "dsprites",
        "architecture": "conv",
        "latent_dim": 10,
        "objective": "vae",
        # Small batches buy the optimiser enough steps to leave the all-background plateau (about 400 steps
        # here), and the KL weight ramps up over the whole run so the short VAE does not collapse.
        "batch_size": 16,
        "lr": 2e-3,
        "steps": 800,
        "warmup_steps": 800,
        "log_every": 50,
        "checkpoint_every": 800,
    },
}
