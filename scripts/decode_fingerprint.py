"""The sha256 of every /decode answer (JSON with PNGs, JSON with arrays) of every model under a folder, for a
fixed set of latents: two commits that print the same lines answer /decode byte for byte alike.

    .venv/bin/python scripts/decode_fingerprint.py                       # the app in process, on models/
    .venv/bin/python scripts/decode_fingerprint.py --model-dir some/dir
    .venv/bin/python scripts/decode_fingerprint.py --url http://127.0.0.1:8000   # a running server

The latents come from each manifest's raw JSON and a seed of the model's name, not from the contract's code,
so that the same file runs on any commit (copy it into an older checkout) and asks the same questions there:
8 rows of continuous codes at the dims' mean + std * N(0, 1) (kept within [-20, 20], which every version of
the service accepts), each categorical part at one class per row and an even mix on the last, N(0, 1) noise.
It prints one line per model and format (status, sha256 of the body), then the sha256 of all of them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROWS = 8
REACH = 20.0  # the bound every version of the service accepts for a model with a N(0, 1) prior
FORMATS = ("png", "array")


def latents(manifest: dict[str, Any]) -> list[list[float]]:
    """The fixed (ROWS, d) latents of a model, from its manifest alone."""
    seed = int.from_bytes(hashlib.sha256(manifest["name"].encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    layout = manifest.get("layout") or {"continuous": manifest["latent_dim"]}  # a version 1 manifest
    stats = sorted(manifest["latent_stats"], key=lambda s: s["index"])
    mean = np.array([s["mean"] for s in stats])
    std = np.array([s["std"] for s in stats])
    parts = [np.clip(mean + std * rng.standard_normal((ROWS, layout["continuous"])), -REACH, REACH)]
    for part in layout.get("categorical", []):
        classes = part["classes"]
        probabilities = np.eye(classes)[np.arange(ROWS) % classes]
        probabilities[-1] = 1.0 / classes
        parts.append(probabilities)
    parts.append(rng.standard_normal((ROWS, layout.get("noise", 0))))
    rows: list[list[float]] = np.concatenate(parts, axis=1).astype(np.float32).tolist()
    return rows


def fingerprint(client: httpx.Client, model_dir: Path) -> list[str]:
    lines = []
    for manifest_path in sorted(model_dir.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        rows = latents(manifest)
        for fmt in FORMATS:
            reply = client.post("/decode", json={"model": manifest["name"], "latents": rows, "format": fmt})
            lines.append(f"{manifest['name']} {fmt} {reply.status_code} {hashlib.sha256(reply.content).hexdigest()}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--url", help="a running server's base URL, serving --model-dir; default: the app in process")
    args = parser.parse_args()
    if args.url:
        with httpx.Client(base_url=args.url, timeout=120) as client:
            lines = fingerprint(client, args.model_dir)
    else:
        from fastapi.testclient import TestClient

        from service.app import create_app
        from service.settings import Settings

        # The host the service trusts by default; TestClient would send "testserver".
        with TestClient(create_app(Settings(model_dir=args.model_dir)), base_url="http://127.0.0.1") as client:
            lines = fingerprint(client, args.model_dir)
    print("\n".join(lines))
    print("all", hashlib.sha256("\n".join(lines).encode()).hexdigest())


if __name__ == "__main__":
    main()
