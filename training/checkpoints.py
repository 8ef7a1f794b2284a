"""The files of a run folder: config.json, log.jsonl and checkpoint.pt, written atomically and read back.

A checkpoint is written to a temporary file, flushed to disk, then renamed over the old one (and the folder's
entry synced), so a kill at any moment leaves either the old checkpoint or the new one, whole.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CONFIG = "config.json"
# Keys of a log record that are bookkeeping, not a loss term (the manifest's final terms leave them out).
PROGRESS_KEYS = frozenset({"step", "images_seen", "wall_time_s", "images_per_s", "lr", "event"})


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically: written to a temporary file, flushed to disk, then renamed over the old one, so a kill at any
    moment leaves either the old checkpoint or the new one, whole."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """The rename itself reaches the disk only once the folder's entry does."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def final_terms(run_dir: Path, last: int = 5) -> dict[str, float]:
    """Mean of each term over the last few log records: the numbers a manifest reports as 'final'."""
    records = [r for r in read_log(run_dir / LOG) if "event" not in r][-last:]
    keys = {k for r in records for k in r} - PROGRESS_KEYS
    return {k: sum(r[k] for r in records if k in r) / len(records) for k in sorted(keys)}


def holds_run(folder: Path) -> bool:
    return any((folder / name).exists() for name in (CONFIG, LOG, CHECKPOINT))
