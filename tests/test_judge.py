"""The factor judges: the shipped ones read held-out ground truth, the command trains one, and `eval` uses it to
score what `/synthesize` draws (checked against a real server's PNG)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import serve

from contract.manifest import FactorSpec, read_manifest, write_manifest
from training.cli import main
from training.data import get_dataset
from training.data.base import FactorDataset
from training.evaluate.calibrate import calibrate
from training.evaluate.judged_synthesis import balanced_classes, judge_request, synthesize
from training.evaluate.onnx_model import OnnxModel
from training.judge.artifact import JUDGE_ONNX, SHIPPED_JUDGES, OnnxJudge, heldout_indices, summarise
from training.judge.readings import Reading

FRESH = 1_000  # held-out renders drawn afresh for each shipped judge


def _dataset(name: str) -> FactorDataset:
    dataset = get_dataset(name)
    assert isinstance(dataset, FactorDataset)
    return dataset


@pytest.mark.parametrize("name", ["digits", "dsprites"])
def test_shipped_judge_reads_held_out_ground_truth(name: str) -> None:
    judge = OnnxJudge(SHIPPED_JUDGES / name)
    dataset = _dataset(name)
    config = judge.manifest.config
    heldout, pool = heldout_indices(len(dataset), int(config["heldout"]), int(config["seed"]))
    assert np.intersect1d(heldout, pool).size == 0
    indices = np.random.default_rng(12345).choice(heldout, size=FRESH, replace=False)
    figures = summarise(judge.errors(dataset.images(indices), dataset.index_to_factors(indices)))
    categorical = [r.name for r in judge.readings if r.kind == "categorical"]
    assert categorical == (["digit"] if name == "digits" else ["shape"])
    for factor in categorical:
        assert figures[factor] >= 0.98, figures
    # A position read to within a pixel, on the grid of 3 px (digits) or 1 px (dSprites) steps.
    assert figures["posX"] < 1.0 and figures["posY"] < 1.0, figures
    angle = "rotation" if name == "digits" else "orientation"
    assert figures[angle] < (5.0 if name == "digits" else 10.0), figures
    # The figures its card reports are the ones measured on the held-out split.
    for factor in categorical:
        assert judge.manifest.heldout["clean"][factor] >= 0.98
    assert f"`{judge.manifest.command}`" in (SHIPPED_JUDGES / name / "card.md").read_text()


def test_digits_judge_reads_the_seeds_example_from_ground_truth() -> None:
    """A small seven at the top rotated 30 degrees, rendered by the dataset, is judged as exactly that."""
    judge = OnnxJudge(SHIPPED_JUDGES / "digits")
    dataset = _dataset("digits")
    # digit 7, scale 0.7 (index 0), rotation 30 (index 5), posX 0.5 (index 4), posY 0 (index 0), thickness 0
    image = dataset.render(np.array([[7, 0, 5, 4, 0, 2]]))
    values = judge.values(image)
    assert values["digit"][0] == 7
    assert values["posY"][0] < 0.5
    assert 15 <= values["rotation"][0] <= 45


def test_periodic_error_is_taken_modulo_the_shapes_symmetry() -> None:
    reading = Reading(
        name="orientation", kind="periodic", values=list(np.linspace(0, 2 * np.pi, 40)), unit="degrees",
        per_unit=180 / np.pi, symmetry_of="shape", symmetry=[4, 2, 1],
    )  # fmt: skip

    def raw(shape: int, degrees: float) -> np.ndarray:
        out = np.zeros((1, 6), dtype=np.float32)
        k = [4, 2, 1][shape]
        out[0, 2 * shape : 2 * shape + 2] = np.cos(k * np.radians(degrees)), np.sin(k * np.radians(degrees))
        return out

    asked = np.array([0])  # 0 degrees
    square, ellipse, heart = np.array([0]), np.array([1]), np.array([2])
    assert reading.error(raw(0, 91.0), asked, square)[0] == pytest.approx(1.0, abs=1e-3)
    assert reading.error(raw(1, 178.0), asked, ellipse)[0] == pytest.approx(2.0, abs=1e-3)
    assert reading.error(raw(2, 178.0), asked, heart)[0] == pytest.approx(178.0, abs=1e-3)
    target, mask = reading.target(np.array([10]), heart)
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1]] and target[0, 4] == pytest.approx(np.cos(np.radians(10 * 360 / 39)))


def test_judge_command_trains_exports_and_measures_a_judge(tmp_path: Path, capsys) -> None:
    out = tmp_path / "judges" / "digits"
    argv = ["judge", "--dataset", "digits", "--out", str(out), "--steps", "40", "--heldout", "300", "--log-every", "20"]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    judge = OnnxJudge(out)
    manifest = judge.manifest
    assert manifest.command == "disentangle-train " + " ".join(argv)
    assert manifest.steps == 40 and manifest.heldout_images == 300
    assert set(manifest.heldout) == {"clean", "blurred 1 px"}
    for split in manifest.heldout.values():
        assert list(split) == ["digit", "scale", "rotation", "posX", "posY", "thickness"]
        assert 0 <= split["digit"] <= 1 and 0 <= split["posX"] <= 24
    assert (out / JUDGE_ONNX).stat().st_size < 2_000_000
    assert "| digit | class |" in (out / "card.md").read_text()
    assert not list(out.parent.glob(".judge-*")), "the staging folder is gone"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--dataset", "mnist"],
            "dataset: expected one with factors to judge, one of dsprites, digits, handwriting, got 'mnist'",
        ),
        (["--dataset", "digits", "--steps", "0"], "steps must be a positive integer, got 0"),
        (["--dataset", "digits", "--blur-fraction", "2"], "blur_fraction: expected a number in [0, 1], got 2.0"),
        (["--dataset", "digits", "--precision", "fp8"], "precision must be auto, fp32 or bf16, got 'fp8'"),
        (["--dataset", "digits", "--heldout", "90720"], "heldout: expected a count in (0, 90720), got 90720"),
    ],
)
def test_judge_command_rejects_bad_settings_by_name(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    assert main(["judge", "--out", str(tmp_path / "j"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "j").exists()


def test_judge_command_rejects_a_bad_config_and_an_out_that_is_a_file(tmp_path: Path, capsys) -> None:
    config = tmp_path / "judge.toml"
    config.write_text('dataset = "digits"\nepochs = 3\n')
    assert main(["judge", "--config", str(config)]) == 2
    assert "unknown config keys ['epochs'] for the judge" in capsys.readouterr().err
    assert main(["judge", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    assert main(["judge", "--dataset", "digits", "--out", str(taken), "--steps", "1"]) == 2
    assert f"out: expected a folder, {taken} is a file" in capsys.readouterr().err
    assert taken.read_text() == "keep me"


def test_a_judge_folder_that_is_missing_or_altered_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no judge.json"):
        OnnxJudge(tmp_path)
    copy = tmp_path / "digits"
    shutil.copytree(SHIPPED_JUDGES / "digits", copy)
    with (copy / JUDGE_ONNX).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ValueError, match="does not match the sha256"):
        OnnxJudge(copy)
    judge = OnnxJudge(SHIPPED_JUDGES / "digits")
    with pytest.raises(ValueError, match=r"images: expected shape \(B, 1, 64, 64\), got \(2, 1, 32, 32\)"):
        judge.raw(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="reads digits factors"):
        judge.check_dataset(_dataset("dsprites"))


@pytest.fixture(scope="module")
def calibrated(smoke_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke artifact with a calibration (from 2,000 renders), as `eval` would leave it."""
    folder = tmp_path_factory.mktemp("judged") / "models" / "smoke"
    shutil.copytree(smoke_artifact, folder)
    model = OnnxModel(folder)
    dataset = _dataset("dsprites")
    classes = dataset.sample_factors(2_000, np.random.default_rng(0))
    specs = [FactorSpec(name=f.name, values=list(f.values)) for f in dataset.factors]
    calibration = calibrate(model.mean(dataset.render(classes)), classes, specs)
    metrics = {**model.manifest.metrics, "mig": 0.123}
    write_manifest(folder, model.manifest.model_copy(update={"calibration": calibration, "metrics": metrics}))
    return folder


def test_eval_judge_only_adds_the_judged_figures_and_nothing_else(calibrated: Path, capsys) -> None:
    before = read_manifest(calibrated)
    assert main(["eval", str(calibrated), "--judge-only"]) == 0
    table = capsys.readouterr().out
    after = read_manifest(calibrated)
    judged = {k: v for k, v in after.metrics.items() if k.startswith("judged.")}
    assert {k: v for k, v in after.metrics.items() if k not in judged} == before.metrics
    assert after.model_dump(exclude={"metrics"}) == before.model_dump(exclude={"metrics"})
    assert judged["judged.requests"] == 1000
    assert 0 <= judged["judged.shape"] <= 1 and judged["judged.shape.unit"] == "accuracy"
    assert 0 <= judged["judged.scale"] <= 0.5
    assert 0 <= judged["judged.orientation"] <= 180 and judged["judged.orientation.unit"] == "degrees"
    for axis in ("posX", "posY"):
        assert 0 <= judged[f"judged.{axis}"] <= 32 and judged[f"judged.{axis}.unit"] == "px"
    assert f"| smoke | vae | - | 0.123 | - | - | - | - | - | shape {judged['judged.shape']:.3f} |" in table
    assert "| model | shape (acc) | scale | orientation (degrees) | posX (px) | posY (px) |" in table
    card = (calibrated / "card" / "card.md").read_text()
    assert f"| shape | {judged['judged.shape']:.3f} |" in card
    assert f"| posX | {judged['judged.posX']:.2f} px |" in card
    # The same seed asks the same requests: judging again gives the same figures.
    assert main(["eval", str(calibrated), "--judge-only"]) == 0
    assert {k: v for k, v in read_manifest(calibrated).metrics.items() if k.startswith("judged.")} == judged


def test_eval_judge_only_names_what_is_missing(smoke_artifact: Path, calibrated: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(smoke_artifact), "--judge-only"]) == 2
    assert "has no calibration to synthesise from" in capsys.readouterr().err
    assert main(["eval", str(calibrated), "--judge-only", "--judges", str(tmp_path)]) == 2
    assert "no factor judge for dataset 'dsprites'" in capsys.readouterr().err
    assert main(["eval", str(calibrated), "--judge-only", "--table-only"]) == 2
    assert "--table-only and --judge-only: expected at most one of them, received 2" in capsys.readouterr().err


def test_eval_calibration_only_remeasures_what_reads_the_calibration_and_keeps_the_rest(
    calibrated: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "models" / "smoke"
    shutil.copytree(calibrated, folder)
    before = read_manifest(folder)
    assert main(["eval", str(folder), "--calibration-only", "--quick"]) == 0
    after = read_manifest(folder)
    assert after.calibration is not None and after.calibration != before.calibration
    assert after.calibration.recovery and after.calibration.agreement
    # the representation metrics are the calibration's neighbours in the manifest, not its readers: kept
    assert after.metrics["mig"] == 0.123
    assert after.metrics["export_parity_max_abs_diff"] == before.metrics["export_parity_max_abs_diff"]
    assert {"synthesis_iou", "recovery.shape", "judged.shape", "judged.requests"} <= set(after.metrics)
    # the synthesis the service answers reads the new calibration
    card = (folder / "card" / "card.md").read_text()
    assert f"| shape | {after.metrics['judged.shape']:.3f} |" in card
    assert "| smoke |" in capsys.readouterr().out


def test_judged_images_are_the_pngs_the_service_answers(calibrated: Path) -> None:
    """The judge reads exactly what a client of /synthesize receives."""
    model = OnnxModel(calibrated)
    calibration = model.manifest.calibration
    assert calibration is not None
    request = {"shape": "heart", "scale": 0.6, "posX": 0.1, "posY": 0.1}
    ours = synthesize(model, calibration, [request])  # (1, 1, 64, 64)
    with serve(calibrated.parent) as url:
        reply = httpx.post(
            f"{url}/synthesize",
            json={"model": "smoke", "factors": request},
            headers={"Accept": "image/png"},
            timeout=30,
        )
    assert reply.status_code == 200, reply.text
    served = np.asarray(Image.open(io.BytesIO(reply.content)), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(ours[0, 0], served)
    image, judged = judge_request(model, calibration, OnnxJudge(SHIPPED_JUDGES / "dsprites"), request)
    assert image.shape == (1, 64, 64)
    assert judged["shape"] in ("square", "ellipse", "heart") and 0 <= float(judged["posX"]) <= 1


def test_requests_ask_for_every_value_of_every_factor_evenly() -> None:
    classes = balanced_classes([3, 40, 32], 1000, np.random.default_rng(0))
    for j, size in enumerate([3, 40, 32]):
        counts = np.bincount(classes[:, j], minlength=size)
        assert counts.min() >= 1000 // size and counts.max() <= 1000 // size + 1
