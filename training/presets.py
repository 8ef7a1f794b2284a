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
    # The same size for JointVAE: 4 continuous dims and shape as a 3-class categorical code, for tests that
    # serve categorical latents (a real model, not a good one).
    "smoke_joint": {
        "name": "smoke_joint",
        "dataset": "dsprites",
        "architecture": "conv",
        "latent_dim": 4,
        "categorical": "shape:3",
        "objective": "joint_vae",
        "capacity_max": 10.0,
        "capacity_steps": 300,
        "disc_capacity_max": 1.1,
        "disc_capacity_steps": 300,
        "capacity_gamma": 30.0,
        "batch_size": 16,
        "lr": 2e-3,
        "steps": 300,
        "log_every": 50,
        "checkpoint_every": 300,
    },
}
