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
        "batch_size": 64,
        "lr": 1e-3,
        "steps": 300,
        "log_every": 25,
        "checkpoint_every": 300,
    },
}
