"""The family seam: a family the project has never seen, registered here in one line, trains through the run
scaffold, exports through the artifact pipeline and serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from service_harness import serve
from torch import nn

from contract.manifest import ContinuousPrior, LatentLayout, LatentStat, read_manifest
from training import families
from training.artifact import ExportAdapter
from training.batches import batches_for
from training.cli import main
from training.data import get_dataset
from training.run import Launch, ModelRunConfig, Run, make_optimizer


# ---- the toy family: a linear autoencoder (the module a new family would be) ----
@dataclass
class ToyConfig(ModelRunConfig):
    name: str = "toy"
    objective: str = "ae"
    latent_dim: int = 2
    lr: float = 1e-3


class Toy(nn.Module):
    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64 * 64, latent_dim))
        self.decoder = nn.Linear(latent_dim, 64 * 64)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z)).view(-1, 1, 64, 64)  # (B, 1, 64, 64)


class ToyEncoder(nn.Module):
    def __init__(self, toy: Toy) -> None:
        super().__init__()
        self.toy = toy

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.toy.encoder(image)
        return mu, torch.zeros_like(mu)


class ToyDecoder(nn.Module):
    def __init__(self, toy: Toy) -> None:
        super().__init__()
        self.toy = toy

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.toy.decode(z)


def train_toy(cfg: ToyConfig, resume: Launch | bool = False) -> Path:
    dataset = get_dataset(cfg.dataset, **cfg.dataset_params)
    run = Run(cfg, resume, distributed=False)
    torch.manual_seed(cfg.seed)
    model = Toy(cfg.latent_dim)
    opt = make_optimizer(model.parameters(), cfg.lr)
    if run.state is not None:
        model.load_state_dict(run.state["model"])
    batches = batches_for(dataset, cfg.batch_size, cfg.seed, 0, run.progress.step, run.device, False)
    with run.started():
        for _ in run.steps():
            x = next(batches)  # (B, 1, 64, 64)
            loss = nn.functional.mse_loss(model.decode(model.encoder(x)), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.end_step(x.shape[0], {"loss": loss.detach()})
            if run.checkpoint_due:
                run.save({"model": model.state_dict()})
        batches.close()
    return run.run_dir


def toy_adapter(state: dict, run_dir: Path) -> ExportAdapter:
    cfg = ToyConfig.from_dict(state["config"])
    model = Toy(cfg.latent_dim)
    model.load_state_dict(state["model"])
    model.eval()

    def stats(images: np.ndarray) -> list[LatentStat]:
        with torch.no_grad():
            mu = model.encoder(torch.from_numpy(images)).numpy()  # (N, d)
        return [LatentStat(index=j, mean=float(m), std=float(s), kl=0.0, active=True)
                for j, (m, s) in enumerate(zip(mu.mean(0), mu.std(0), strict=True))]  # fmt: skip

    return ExportAdapter(
        encoder=ToyEncoder(model),
        decoder=ToyDecoder(model),
        layout=LatentLayout(continuous=cfg.latent_dim, prior=ContinuousPrior(kind="none")),
        parity_latents=lambda images: model.encoder(images),
        latent_stats=stats,
        objective=cfg.objective,
        architecture="mlp",
        likelihood="gaussian",
        hyperparameters=cfg.learning_settings(),
        dataset=get_dataset(cfg.dataset, **cfg.dataset_params),
    )


TOY = families.Family("toy", lambda: ("ae",), ToyConfig, train_toy, toy_adapter)  # the registry line


@pytest.mark.timeout(600)
def test_a_family_registered_in_one_line_trains_exports_and_serves_through_the_same_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The contract names the objectives a manifest may give, so the toy takes one over ("ae") in a registry
    # of its own rather than adding a name.
    monkeypatch.setattr(families, "FAMILIES", [TOY])
    artifact = tmp_path / "models" / "toy"
    flags = ["--steps", "3", "--batch-size", "4", "--log-every", "1", "--precision", "fp32", "--latent-dim", "3"]
    argv = ["fit", "--objective", "ae", "--out-dir", str(tmp_path / "runs"), "--export-dir", str(artifact), *flags]
    assert main(argv) == 0

    manifest = read_manifest(artifact)
    assert manifest.objective == "ae" and manifest.latent_dim == 3 and manifest.training.steps == 3
    assert manifest.hyperparameters["latent_dim"] == 3 and manifest.hyperparameters["lr"] == 1e-3
    assert manifest.layout.prior.kind == "none" and manifest.metrics["export_parity_max_abs_diff"] <= 1e-4
    assert set(manifest.training.final_terms) == {"loss"}

    images = get_dataset("dsprites").images(np.arange(4))
    encoder = ort.InferenceSession(str(artifact / "encoder.onnx"), providers=["CPUExecutionProvider"])
    mu, _ = encoder.run(["mu", "logvar"], {"image": images})
    decoder = ort.InferenceSession(str(artifact / "decoder.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = decoder.run(["image"], {"z": mu})
    with serve(artifact.parent) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/models/toy").json()["objective"] == "ae"
        reply = http.post("/decode", json={"model": "toy", "latents": mu.tolist(), "format": "array"})
        assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.asarray(reply.json()["images"], dtype=np.float32), expected, atol=1e-5)
