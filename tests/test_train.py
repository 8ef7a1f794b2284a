"""The training loop, checkpoints, resume, export and DDP, run for real on small configurations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.manifest import read_manifest, sha256_of
from training import artifact as export_module
from training.artifact import ExportError
from training.checkpoints import CHECKPOINT, LOG, load_checkpoint
from training.cli import main
from training.evaluate.table import row as table_row
from training.export import export_run
from training.presets import PRESETS
from training.train import TrainConfig, train


def tiny(tmp_path: Path, **overrides: object) -> TrainConfig:
    values: dict = {
        "name": "tiny", "steps": 20, "batch_size": 16, "log_every": 5, "checkpoint_every": 10,
        "precision": "fp32", "out_dir": str(tmp_path / "runs"),
    }  # fmt: skip
    values.update(overrides)
    return TrainConfig.from_dict(values)


def test_smoke_artifact_loads_in_onnxruntime_and_matches_its_manifest(smoke_artifact: Path) -> None:
    manifest = read_manifest(smoke_artifact)
    assert manifest.latent_dim == 10 and manifest.image_shape == (1, 64, 64)
    assert manifest.dataset.name == "dsprites"
    assert [f.name for f in manifest.dataset.factors] == ["shape", "scale", "orientation", "posX", "posY"]
    for role, file in manifest.files.items():
        assert sha256_of(smoke_artifact / file.path) == file.sha256, role
    assert manifest.metrics["export_parity_max_abs_diff"] <= 1e-4
    smoke = PRESETS["smoke"]
    assert manifest.training.steps == smoke["steps"]
    assert manifest.training.images_seen == smoke["steps"] * smoke["batch_size"]
    assert {"recon", "kl", "loss"} <= set(manifest.training.final_terms)

    encoder = ort.InferenceSession(str(smoke_artifact / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(smoke_artifact / "decoder.onnx"), providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    mu, logvar = encoder.run(None, {"image": images})
    assert mu.shape == logvar.shape == (3, 10)
    (decoded,) = decoder.run(None, {"z": mu})
    assert decoded.shape == (3, 1, 64, 64)
    assert 0.0 <= decoded.min() and decoded.max() <= 1.0


def test_smoke_training_learned_something(smoke_artifact: Path) -> None:
    """The smoke run must leave the all-background plateau (about 570 nats) and use its latents."""
    records = [json.loads(line) for line in (smoke_artifact.parent.parent / "runs/smoke" / LOG).open()]
    first, last = records[0]["recon"], records[-1]["recon"]
    assert last < 0.5 * first
    assert len(read_manifest(smoke_artifact).active_dims) >= 3, "the latents carry almost no information"


@pytest.mark.parametrize(
    "objective", [{}, {"objective": "beta_tcvae", "tc_memory": 40}], ids=["vae", "beta_tcvae_with_memory"]
)
def test_resume_continues_exactly_where_the_interrupted_run_stopped(tmp_path: Path, objective: dict) -> None:
    straight = train(tiny(tmp_path, name="straight", **objective))
    train(tiny(tmp_path, name="interrupted", steps=10, **objective))
    resumed = train(tiny(tmp_path, name="interrupted", **objective), resume=True)
    a = load_checkpoint(straight / CHECKPOINT)
    b = load_checkpoint(resumed / CHECKPOINT)
    assert b["progress"]["step"] == 20 and b["progress"]["images_seen"] == 20 * 16
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=0, msg=key)
    steps = [json.loads(line)["step"] for line in (resumed / LOG).open()]
    assert steps == [5, 10, 15, 20]


def test_lr_decay_anneals_only_the_last_steps_so_a_run_can_be_extended_then_annealed(tmp_path: Path) -> None:
    straight = train(tiny(tmp_path, name="straight", steps=20, lr_decay_steps=10))
    lrs = {r["step"]: r["lr"] for r in map(json.loads, (straight / LOG).open())}
    lr = tiny(tmp_path).lr
    assert lrs[5] == lrs[10] == lr, "steps before the decay run at the constant rate"
    assert lr > lrs[15] > lrs[20] > 0 and lrs[20] < 0.05 * lr

    train(tiny(tmp_path, name="extended", steps=10))
    extended = train(tiny(tmp_path, name="extended", steps=20, lr_decay_steps=10), resume=True)
    a, b = load_checkpoint(straight / CHECKPOINT), load_checkpoint(extended / CHECKPOINT)
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=0, msg=key)
    assert export_run(extended, tmp_path / "artifact").hyperparameters["lr_decay_steps"] == 10
    with pytest.raises(ValueError, match=r"lr_decay_steps must be in \[0, steps=20\], got 30"):
        tiny(tmp_path, lr_decay_steps=30)


@pytest.mark.parametrize("objective", ["ae", "beta_vae", "beta_tcvae"])
def test_each_objective_trains_and_exports(tmp_path: Path, objective: str) -> None:
    run = train(tiny(tmp_path, objective=objective, beta=4.0, steps=10, architecture="mlp"))
    manifest = export_run(run, tmp_path / "artifact")
    assert manifest.objective == objective and manifest.architecture == "mlp"
    assert manifest.metrics["export_parity_max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_a_normalised_encoder_trains_exports_and_is_recorded(tmp_path: Path, norm: str) -> None:
    # Batch norm reads with its running statistics once exported: the parity check compares eval mode to ONNX.
    run = train(tiny(tmp_path, encoder_norm=norm, steps=10))
    manifest = export_run(run, tmp_path / "artifact")
    assert manifest.hyperparameters["encoder_norm"] == norm
    assert manifest.metrics["export_parity_max_abs_diff"] <= 1e-4
    with pytest.raises(ValueError, match="encoder_norm must be '', 'batch' or 'group', got 'layer'"):
        tiny(tmp_path, encoder_norm="layer")
    with pytest.raises(ValueError, match="encoder_norm needs architecture 'conv', got 'mlp'"):
        tiny(tmp_path, encoder_norm=norm, architecture="mlp")


def test_a_posterior_memory_is_recorded_in_the_manifest_and_named_in_the_table(tmp_path: Path) -> None:
    run = train(tiny(tmp_path, objective="beta_tcvae", beta=6.0, tc_memory=40, steps=10, architecture="mlp"))
    manifest = export_run(run, tmp_path / "artifact")
    assert manifest.hyperparameters["tc_memory"] == 40
    assert table_row(manifest)[1] == "beta_tcvae (mss, memory 40)"
    with pytest.raises(ValueError, match=r"must not exceed the dataset's 737280 images, got 16 \+ 737280"):
        train(tiny(tmp_path, objective="beta_tcvae", tc_memory=737_280))


def test_export_refuses_an_artifact_that_fails_parity_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = train(tiny(tmp_path, steps=5))
    target = tmp_path / "models" / "tiny"
    export_run(run, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # any difference now fails
    with pytest.raises(ExportError, match="differs from torch"):
        export_run(run, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"], "staging folders left behind"


def test_cli_rejects_unknown_config_keys_and_names_the_valid_ones(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('objective = "vae"\nlearning_rate = 0.1\n')
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "lr" in err


def test_two_process_ddp_run_trains_one_model(tmp_path: Path) -> None:
    """torchrun with 2 CPU processes (gloo): both ranks' batches count, and the ranks stay in sync."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "training.cli", "fit", "--preset", "smoke", "--steps", "6", "--batch-size", "8",
        "--log-every", "3", "--precision", "fp32", "--out-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "runs" / "smoke" / CHECKPOINT)
    assert state["progress"]["images_seen"] == 6 * 8 * 2
    records = [json.loads(line) for line in (tmp_path / "runs" / "smoke" / LOG).open()]
    assert [r["step"] for r in records] == [3, 6]


def test_the_training_loops_do_not_import_the_export() -> None:
    """export.py imports train.py (and, for a GAN, infogan.py): `fit` trains, then exports, so neither loop
    imports the export back."""
    probe = (
        "import sys, training.train, training.infogan\n"
        "print(sorted(m for m in sys.modules if m.startswith('training.') and 'export' in m))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
