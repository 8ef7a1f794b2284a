"""Export a training run's checkpoint as the artifact the service loads: encoder.onnx, decoder.onnx, manifest.json.

    disentangle-train export runs/smoke --out models-local/smoke

The run's family (training/families.py) builds the export adapter from the checkpoint; training/artifact.py
exports, checks parity, seals and swaps the artifact in.
"""

from __future__ import annotations

from pathlib import Path

from contract.manifest import Manifest
from training.artifact import export_from_run
from training.checkpoints import CHECKPOINT, load_checkpoint
from training.families import family_for


def export_run(run_dir: Path, out_dir: Path, name: str | None = None) -> Manifest:
    """Export the checkpoint of a training run (the model as of its last checkpoint)."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / CHECKPOINT)
    family = family_for(state["config"])
    return export_from_run(family.adapter(state, run_dir), state, run_dir, Path(out_dir), name)
