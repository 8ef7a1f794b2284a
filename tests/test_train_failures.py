"""How training fails: promptly, with the cause, and before it writes anything a user could lose."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import objectives
from training import train as train_module
from training.batches import rendered_batches
from training.cli import main
from training.data import DATASETS
from training.data.dsprites import DSprites
from training.train import TrainConfig, train


class BreaksAfter(DSprites):
    """dSprites whose renderer raises on its ``good + 1``-th batch, as a corrupt source would."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.left = good

    def images(self, indices: np.ndarray) -> np.ndarray:
        if self.left == 0:
            raise OSError("disk went away while rendering")
        self.left -= 1
        return super().images(indices)


@pytest.mark.timeout(60)
def test_a_renderer_that_dies_raises_its_error_in_the_consumer_with_its_traceback() -> None:
    batches = rendered_batches(BreaksAfter(good=2), batch_size=4, seed=0, rank=0, start_step=0, pin=False)
    assert next(batches).shape == (4, 1, 64, 64)
    assert next(batches).shape == (4, 1, 64, 64)
    with pytest.raises(RuntimeError, match="rendering a batch failed") as caught:
        next(batches)
    cause = caught.value.__cause__
    assert isinstance(cause, OSError) and "disk went away" in str(cause)
    frames = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert "images" in frames, f"the renderer's own frames are lost: {frames}"


@pytest.mark.timeout(120)
def test_training_stops_promptly_when_its_batch_thread_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "get_dataset", lambda name, **params: BreaksAfter(good=3))
    cfg = TrainConfig(name="broken", steps=50, batch_size=8, precision="fp32", out_dir=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="disk went away"):
        train(cfg)
    assert time.monotonic() - started < 60


TINY = ["--steps", "5", "--batch-size", "8", "--log-every", "5", "--architecture", "mlp", "--precision", "fp32"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("flags", "field", "received"),
    [
        (["--objective", "beta_vae", "--beta", "-1"], "beta", "-1.0"),
        (["--objective", "beta_tcvae", "--beta", "-1"], "beta", "-1.0"),
        (["--objective", "beta_tcvae", "--alpha", "-0.5"], "alpha", "-0.5"),
        (["--objective", "beta_tcvae", "--gamma", "-2"], "gamma", "-2.0"),
        (["--objective", "beta_vae", "--capacity-max", "-25"], "capacity_max", "-25.0"),
        (["--objective", "beta_vae", "--beta", "nan"], "beta", "nan"),
        (["--lr", "0"], "lr", "0.0"),
        (["--lr", "-0.001"], "lr", "-0.001"),
        (["--batch-size", "0"], "batch_size", "0"),
        (["--batch-size", "-8"], "batch_size", "-8"),
        (["--warmup-steps", "-1"], "warmup_steps", "-1"),
    ],
)
def test_fit_rejects_nonsensical_hyperparameters_naming_field_expected_and_received(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], field: str, received: str
) -> None:
    assert main(["fit", "--name", "bad", "--out-dir", str(tmp_path), *TINY, *flags]) == 2
    error = capsys.readouterr().err
    assert f"error: {field} must be" in error and f"got {received}" in error, error
    assert ">= 0" in error or "positive" in error or "(0, 1)" in error, error
    assert not (tmp_path / "bad").exists(), "a rejected config started a run folder"


def test_a_failed_start_leaves_the_previous_run_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--name", "kept", "--out-dir", str(tmp_path), *TINY]) == 0
    before = snapshot(tmp_path / "kept")
    assert {"config.json", "log.jsonl", "checkpoint.pt"} <= set(before)

    # A folder without its root, and a model size that does not fit the dataset: both fail at the start.
    assert main(["fit", "--name", "kept", "--out-dir", str(tmp_path), *TINY, "--dataset", "folder"]) == 2
    assert "missing parameter(s) root" in capsys.readouterr().err
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(10):
        Image.new("L", (32, 32), color=i).save(folder / f"{i}.png")
    odd = ["--dataset", "folder", "--dataset-param", f"root={folder}", "--dataset-param", "size=32"]
    assert main(["fit", "--name", "kept", "--out-dir", str(tmp_path), *TINY, *odd]) == 2
    assert "models take 64x64 images" in capsys.readouterr().err
    assert main(["fit", "--name", "fresh", "--out-dir", str(tmp_path), *TINY, "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err

    assert snapshot(tmp_path / "kept") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "kept"]


def test_fit_help_lists_the_valid_values_from_the_registries(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objectives, "OBJECTIVES", (*objectives.OBJECTIVES, "brand_new"))
    with pytest.raises(SystemExit) as done:
        main(["fit", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--objective {ae,vae,beta_vae,beta_tcvae,joint_vae,brand_new,infogan}" in text
    assert f"--dataset {{{','.join(DATASETS)}}}" in text and "mnist" in DATASETS
    assert "--estimator {mws,mss}" in text
    with pytest.raises(SystemExit):
        main(["fit", "--objective", "beta-vae"])
    assert "invalid choice: 'beta-vae'" in capsys.readouterr().err


def test_fit_with_export_dir_says_where_the_artifact_went(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = tmp_path / "artifacts" / "tiny"
    run = ["fit", "--name", "tiny", "--out-dir", str(tmp_path / "runs"), "--export-dir", str(artifact)]
    assert main([*run, *TINY]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"exported tiny to {artifact} (run folder: {tmp_path / 'runs' / 'tiny'})"
    assert (artifact / "manifest.json").is_file()


def test_resume_if_present_starts_a_new_run_and_continues_an_interrupted_one(tmp_path: Path) -> None:
    """What a retried Kubernetes Job runs: the same command before and after a failure."""
    run = ["fit", "--name", "job", "--out-dir", str(tmp_path), "--resume-if-present", *TINY]
    assert main(run) == 0
    assert main([*run, "--steps", "10"]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "job" / "log.jsonl").open()]
    assert steps == [5, 10], "the second start did not continue from the first one's checkpoint"
