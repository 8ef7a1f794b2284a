"""`disentangle-train eval` on a real exported model: metrics, calibration and a complete card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import serve

from contract.calibration import latent_for
from contract.manifest import read_manifest
from training.card import training_curves
from training.cli import main
from training.evaluate.artifact_eval import reconstruction_per_image
from training.evaluate.onnx_model import OnnxModel


@pytest.fixture(scope="module")
def evaluated(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval") / "smoke"
    shutil.copytree(smoke_artifact, folder)
    return folder


def test_eval_writes_metrics_calibration_and_a_complete_card(evaluated: Path, capsys) -> None:
    folder = evaluated
    (folder / "notes.md").write_text("## Recipe\n\nMSS scored 0.36, MWS 0.35.\n")
    assert main(["eval", str(folder), "--quick"]) == 0
    table, progress = capsys.readouterr()
    assert table.splitlines()[0].startswith("| model | objective | beta | MIG |")
    stages = ("reconstruction, KL, TC", "MIG, SAP", "DCI", "FactorVAE", "beta-VAE", "synthesis", "judged synthesis")
    for stage in (*stages, "card"):
        assert "smoke: " in progress and stage in progress, f"no progress shown for {stage}:\n{progress}"
    assert "9/9" in progress
    assert "| smoke | vae |" in table

    manifest = read_manifest(folder)
    metrics = manifest.metrics
    for key in ("mig", "factor_vae", "beta_vae", "dci.disentanglement", "sap", "recon_bce", "active_dims",
                "tc_estimate", "synthesis_iou", "recovery.posX", "judged.shape", "judged.posX"):  # fmt: skip
        assert key in metrics, key
    assert "disentanglement_lib" in str(metrics["mig.definition"])
    assert 0 <= float(metrics["mig"]) <= 1 and 0 <= float(metrics["synthesis_iou"]) <= 1

    calibration = manifest.calibration
    assert calibration is not None
    assert [f.name for f in calibration.factors] == ["shape", "scale", "orientation", "posX", "posY"]
    assert calibration.agreement["synthesis_iou"] == metrics["synthesis_iou"]
    z = latent_for(calibration, {"shape": "heart", "scale": 0.6, "posX": 0.1, "posY": 0.1})
    assert z.shape == (manifest.latent_dim,) and np.all(np.isfinite(z))

    card = folder / "card"
    for picture in ("traversal.png", "reconstructions.png", "mutual_information.png", "training_curves.png"):
        with Image.open(card / picture) as image:
            assert image.format == "PNG" and image.width > 100, picture
        assert f"]({picture})" in (card / "card.md").read_text()
    assert (card / "card.md").read_text().endswith("## Recipe\n\nMSS scored 0.36, MWS 0.35.\n")
    with Image.open(card / "traversal.png") as grid:
        # 10 rows (dims) of 64-px tiles, doubled, with 2-px gaps: the grid shows every dimension.
        assert grid.height == 2 * (10 * 66 + 2)


def test_table_only_reads_the_manifests_without_evaluating(evaluated: Path, capsys) -> None:
    folder = evaluated
    assert main(["eval", str(folder.parent), "--table-only"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| smoke |"))
    # MIG over the continuous factors: the mean gap of all but the categorical shape
    metrics = read_manifest(folder).metrics
    gaps = [float(metrics[f"mig.gap.{name}"]) for name in ("scale", "orientation", "posX", "posY")]
    assert row.split(" | ")[4] == f"{sum(gaps) / 4:.3f}"


def test_eval_of_a_folder_without_artifacts_names_the_problem(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path)]) == 2
    assert "holds no manifest.json" in capsys.readouterr().err


def test_training_curves_of_a_label_warm_up_plot_the_terms_that_start_after_it(tmp_path: Path) -> None:
    # A warm-up logs its cross-entropy alone; the card's curves take the terms from every record.
    log = tmp_path / "log.jsonl"
    warm = [{"step": s, "images_seen": 64 * s, "label_ce": 0.5} for s in (250, 500)]
    joint = [{"step": s, "images_seen": 128 * s, "recon": 300.0 / s, "kl": 3.0, "label_ce": 0.1} for s in (750, 1000)]
    log.write_text("".join(json.dumps(r) + "\n" for r in warm + joint))
    picture = tmp_path / "curves.png"
    assert training_curves(log, picture)
    assert Image.open(picture).size[0] > Image.open(picture).size[1]  # one panel per term, side by side
    log.write_text(json.dumps(warm[0]) + "\n")
    assert not training_curves(log, tmp_path / "none.png")  # no loss term yet: no picture, no error
    assert not (tmp_path / "none.png").exists()


def test_reconstruction_per_image_is_the_summed_bce() -> None:
    images = np.array([[[[0.0, 1.0]]]])  # (1, 1, 1, 2)
    decoded = np.array([[[[0.25, 0.5]]]])
    assert reconstruction_per_image(images, decoded, "bernoulli") == pytest.approx(-np.log(0.75) - np.log(0.5))
    assert reconstruction_per_image(images, decoded, "gaussian") == pytest.approx(0.25**2 + 0.5**2)


def test_onnx_model_round_trips_shapes(smoke_artifact: Path) -> None:
    model = OnnxModel(smoke_artifact)
    images = np.zeros((3, 1, 64, 64), dtype=np.float32)
    mu, logvar = model.encode(images)
    assert mu.shape == logvar.shape == (3, 10)
    assert model.decode(mu).shape == (3, 1, 64, 64)


def test_the_service_serves_the_card_pictures(evaluated: Path, capsys) -> None:
    """What `eval` writes is what the explorer page shows: the card's pictures, listed and served."""
    if not (evaluated / "card").exists():
        assert main(["eval", str(evaluated), "--quick"]) == 0
    capsys.readouterr()
    with serve(evaluated.parent) as url:
        info = httpx.get(f"{url}/models/smoke", timeout=10).json()
        assert info["card"] == sorted(p.name for p in (evaluated / "card").glob("*.png"))
        picture = httpx.get(f"{url}/models/smoke/card/traversal.png", timeout=10)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.content == (evaluated / "card" / "traversal.png").read_bytes()
        missing = httpx.get(f"{url}/models/smoke/card/card.md", timeout=10)
        assert missing.status_code == 404
        assert "file: expected one of ['mutual_information.png'" in missing.json()["detail"]
