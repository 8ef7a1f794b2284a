"""Shared fixtures: one real model, trained and exported by our own code once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke preset's artifact (dSprites, conv, 10 latents), as the README's first Train command makes it."""
    from training.cli import main

    root = tmp_path_factory.mktemp("smoke")
    artifact = root / "models" / "smoke"
    code = main(["fit", "--preset", "smoke", "--out-dir", str(root / "runs"), "--export-dir", str(artifact)])
    assert code == 0
    return artifact
