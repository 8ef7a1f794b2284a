"""Shared fixtures: one real model, trained and exported by our own code once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Libraries keep files under the XDG folders of the user's home: onnxruntime its telemetry store as soon as it
    is imported, Chromium its crash reports, matplotlib its font list. A test run, and the servers and browsers it
    starts, keep them in a temporary folder of their own instead, so that `make test` writes nothing outside the
    clone but the temporary files it removes."""
    scratch = Path(tempfile.mkdtemp(prefix="disentangle-tests-"))
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        os.environ[name] = str(scratch / name.lower())
    config.add_cleanup(lambda: shutil.rmtree(scratch, ignore_errors=True))


@pytest.fixture(scope="session")
def smoke_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke preset's artifact (dSprites, conv, 10 latents), as the README's first Train command makes it."""
    from training.cli import main

    root = tmp_path_factory.mktemp("smoke")
    artifact = root / "models" / "smoke"
    code = main(["fit", "--preset", "smoke", "--out-dir", str(root / "runs"), "--export-dir", str(artifact)])
    assert code == 0
    return artifact


@pytest.fixture(scope="session")
def joint_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JointVAE artifact (dSprites, 4 continuous dims and a 3-class ``shape`` part), trained and exported by
    the smoke_joint preset, then calibrated on 2,000 renders so /synthesize can serve it."""
    import numpy as np

    from contract.manifest import FactorSpec, read_manifest, write_manifest
    from training.cli import main
    from training.data import get_dataset
    from training.evaluate.calibrate import calibrate
    from training.evaluate.onnx_model import OnnxModel

    root = tmp_path_factory.mktemp("smoke_joint")
    artifact = root / "models" / "smoke_joint"
    code = main(["fit", "--preset", "smoke_joint", "--out-dir", str(root / "runs"), "--export-dir", str(artifact)])
    assert code == 0
    model = OnnxModel(artifact, threads=1)
    dataset = get_dataset("dsprites")
    classes = dataset.sample_factors(2000, np.random.default_rng(0))  # (N, F)
    specs = [FactorSpec(name=f.name, values=list(f.values)) for f in dataset.factors]
    calibration = calibrate(model.mean(dataset.render(classes)), classes, specs, layout=model.manifest.layout)
    write_manifest(artifact, model.manifest.model_copy(update={"calibration": calibration}))
    assert read_manifest(artifact).calibration is not None
    return artifact


# A tiny InfoGAN: digits, 1 categorical code of 10 classes, 2 continuous codes, 4 noise dims, narrow networks.
INFOGAN_SMOKE = [
    "fit", "--objective", "infogan", "--name", "infogan_smoke", "--dataset", "digits", "--steps", "30",
    "--batch-size", "16", "--width", "4", "--q-hidden", "16", "--continuous-codes", "2", "--categorical-codes",
    "10", "--noise-dim", "4", "--log-every", "10", "--checkpoint-every", "30", "--sample-every", "30",
    "--precision", "fp32",
]  # fmt: skip


@pytest.fixture(scope="session")
def infogan_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny InfoGAN trained and exported by our own code (a few seconds), as a served model folder."""
    from training.cli import main

    root = tmp_path_factory.mktemp("infogan")
    artifact = root / "models" / "infogan_smoke"
    code = main([*INFOGAN_SMOKE, "--out-dir", str(root / "runs"), "--export-dir", str(artifact)])
    assert code == 0
    return artifact


@pytest.fixture(scope="session")
def digits_joint_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder for /edit and the drawing pad: the shipped digits JointVAE (calibrated on the digits'
    factors) and a copy of it without its calibration, named ``uncalibrated``."""
    from service_harness import REPO, copy_artifact

    root = tmp_path_factory.mktemp("digits-joint") / "models"
    copy_artifact(REPO / "models" / "digits_joint_vae", root, "digits_joint_vae")
    copy_artifact(REPO / "models" / "digits_joint_vae", root, "uncalibrated", lambda m: m.update(calibration=None))
    return root


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's Chromium, which the page tests drive (scripts/install-test-tools.sh installs it)."""
    from page_harness import CHROMIUM, chromium

    path = chromium()
    if path is None:
        pytest.skip(f"{CHROMIUM} is missing and scripts/install-test-tools.sh could not install it (needs root, apt)")
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: Path) -> Iterator[Any]:
    """One headless Chromium per test module; each test opens its own context (page_harness.tab_without_errors)."""
    from page_harness import launched

    with launched(chromium_path) as launched_browser:
        yield launched_browser
