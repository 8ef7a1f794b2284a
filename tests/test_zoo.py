"""The bundled zoo in models/: what `make run` and the container serve, checked as a user meets it.

The zoo is what configs/zoo/*.toml name; any other folder a user leaves under models/ is not checked here.
"""

from __future__ import annotations

import base64
import io
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_harness import REPO, serve

from contract.manifest import read_manifest
from training.cli import config_from_dict
from training.data import get_dataset
from training.data.base import FactorDataset
from training.evaluate.judged_synthesis import balanced_classes, find_judge

MODELS = REPO / "models"
ZOO_CONFIGS = REPO / "configs" / "zoo"
BUNDLED = sorted(tomllib.loads(p.read_text())["name"] for p in ZOO_CONFIGS.glob("*.toml"))
MAX_ARTIFACT_BYTES = 3 * 1024 * 1024
DEFAULT = "dsprites_beta_tcvae"
# digits_infogan draws the asked digit in 0.889 of `eval`'s 1,000 requests and 0.92 of these 60 (the JointVAEs
# 0.98-0.999); chance is 0.1.
LEAST_GAN = 0.8
TABLE_METRICS = ("mig", "factor_vae", "dci.disentanglement", "recon_bce", "active_dims")


def test_every_zoo_config_has_its_artifact_named_as_its_file() -> None:
    assert DEFAULT in BUNDLED
    assert BUNDLED == sorted(p.stem for p in ZOO_CONFIGS.glob("*.toml"))
    for name in BUNDLED:
        assert read_manifest(MODELS / name).name == name


def zoo_only(root: Path) -> Path:
    """A model folder that holds links to the zoo's artifacts alone, whatever else a user keeps in models/.
    It sits under ``root`` (a tmp_path) because the server's log goes beside the folder: out of the repo."""
    folder = root / "models"
    folder.mkdir()
    for name in BUNDLED:
        (folder / name).symlink_to(MODELS / name)
    return folder


@pytest.mark.parametrize("name", BUNDLED)
def test_each_zoo_config_is_the_recipe_its_artifact_was_trained_with(name: str) -> None:
    """`make zoo` retrains from these files: they must hold the hyperparameters and step count of what ships."""
    config = config_from_dict(tomllib.loads((ZOO_CONFIGS / f"{name}.toml").read_text()))
    manifest = read_manifest(MODELS / name)
    assert manifest.training.steps == config.steps
    # A label warm-up's steps see the labelled batch alone.
    warm_up, label_batch = getattr(config, "label_warmup_steps", 0), getattr(config, "label_batch", 0)
    assert manifest.training.images_seen == (config.steps - warm_up) * config.batch_size + warm_up * label_batch
    for key, value in manifest.hyperparameters.items():
        if key != "steps":  # a run stopped by its time limit records the budget it was given, not its end
            assert getattr(config, key) == value, f"{name}: {key}"


@pytest.mark.parametrize("name", BUNDLED)
def test_each_artifact_is_small_evaluated_calibrated_and_has_its_card(name: str) -> None:
    folder = MODELS / name
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < MAX_ARTIFACT_BYTES, f"{name}: {size:,} bytes"
    manifest = read_manifest(folder)  # validated against the service's schema (the server checks sha256)
    for key in TABLE_METRICS:
        assert key in manifest.metrics, f"{name}: no {key}"
    assert manifest.calibration is not None and manifest.calibration.agreement
    for picture in ("traversal.png", "reconstructions.png", "mutual_information.png", "training_curves.png"):
        assert (folder / "card" / picture).is_file(), f"{name}: no card/{picture}"


def test_the_service_serves_the_whole_zoo_and_synthesises_with_the_default_model(tmp_path: Path) -> None:
    with serve(zoo_only(tmp_path), default_model=DEFAULT) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        listing = http.get("/models").json()
        assert sorted(m["name"] for m in listing["models"]) == BUNDLED
        assert listing["broken"] == [] and listing["default"] == DEFAULT

        # "a small heart, top left": no model name, so the default answers.
        asked = {"shape": "heart", "scale": 0.6, "posX": 0.1, "posY": 0.1, "orientation": 0.0}
        reply = http.post("/synthesize", json={"factors": asked})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model"] == DEFAULT
        with Image.open(io.BytesIO(base64.b64decode(body["image"]))) as png:
            assert png.format == "PNG" and png.size == (64, 64)
            pixels = np.asarray(png.convert("L"), dtype=np.float32) / 255
        lit_rows, lit_cols = np.nonzero(pixels > 0.5)
        assert lit_rows.size > 0, "nothing drawn"
        # posX = posY = 0.1 puts the centre near 16 + 0.1 * 32 = 19 px on each axis: in the top-left quarter.
        assert lit_rows.mean() < 32 and lit_cols.mean() < 32


def test_the_default_model_draws_each_requested_shape_closest_to_its_own_render(tmp_path: Path) -> None:
    """Shape, scale and orientation share the default model's dims, so the service looks them up jointly; asking
    for each shape must draw an image nearer the dataset's own render of that shape than of the other two."""
    dataset = get_dataset("dsprites")
    names = [f.name for f in dataset.factors]
    centre = {"shape": 0, "scale": 5, "orientation": 0, "posX": 16, "posY": 16}  # value indices: large, centred
    renders = {}
    for shape in range(3):
        classes = np.array([[{**centre, "shape": shape}[n] for n in names]])
        renders[shape] = dataset.render(classes)[0, 0] > 0.5  # (H, W)
    with serve(zoo_only(tmp_path), default_model=DEFAULT) as url, httpx.Client(base_url=url, timeout=30) as http:
        info = http.get(f"/models/{DEFAULT}").json()
        assert info["calibration"]["groups"] == [["shape", "scale", "orientation"]]
        for shape, value in enumerate(dataset.factors[names.index("shape")].values):
            asked = {n: dataset.factors[j].values[{**centre, "shape": shape}[n]] for j, n in enumerate(names)}
            reply = http.post("/synthesize", json={"factors": asked})
            assert reply.status_code == 200, reply.text
            with Image.open(io.BytesIO(base64.b64decode(reply.json()["image"]))) as png:
                drawn = np.asarray(png.convert("L")) > 127  # (H, W)
            iou = {s: (drawn & r).sum() / (drawn | r).sum() for s, r in renders.items()}
            assert max(iou, key=lambda s: iou[s]) == shape, f"asked for {value}: IoU per shape {iou}"


@pytest.mark.parametrize(
    ("name", "factor", "least"),
    [("digits_joint_vae", "digit", 0.9), ("dsprites_joint_vae", "shape", 0.9), ("digits_infogan", "digit", LEAST_GAN)],
)
def test_the_models_trained_with_few_labels_draw_the_asked_for_class_as_the_factor_judge_reads_it(
    tmp_path: Path, name: str, factor: str, least: float
) -> None:
    """The zoo table's headline through a real server: each value of the categorical factor asked for in turn, the
    other factors at random grid values, the PNGs `/synthesize` answers read back by the shipped factor judge."""
    dataset = get_dataset(read_manifest(MODELS / name).dataset.name)
    assert isinstance(dataset, FactorDataset)
    judge = find_judge(dataset)
    assert judge is not None
    classes = balanced_classes([f.size for f in dataset.factors], 60, np.random.default_rng(0))  # (60, F)
    drawn = []
    with serve(zoo_only(tmp_path)) as url, httpx.Client(base_url=url, timeout=30) as http:
        for row in classes:
            asked = {f.name: f.values[c] for f, c in zip(dataset.factors, row, strict=True)}
            reply = http.post("/synthesize", json={"model": name, "factors": asked})
            assert reply.status_code == 200, reply.text
            with Image.open(io.BytesIO(base64.b64decode(reply.json()["image"]))) as png:
                drawn.append(np.asarray(png.convert("L"), dtype=np.float32)[None] / 255)  # (1, H, W)
    right = judge.errors(np.stack(drawn), classes)[factor]  # (60,) 1.0 where read as asked
    assert right.mean() >= least, f"{name}: {factor} read as asked in {right.mean():.2f} of 60 requests"


HANDWRITING = "handwriting_joint_vae"
HELD_OUT = REPO / "tests" / "reference" / "handwriting" / "heldout.npz"
# handwriting_joint_vae on these 200 held-out glyphs (one random placement each): /encode reads 0.795 of the digits
# right, the judge reads the asked digit in 0.333 of the 60 /synthesize requests; on all 1,000 held-out glyphs
# (scripts/handwriting_goals.py) 0.829 and 0.331, short of issue 26's goals (0.97 and 0.95). The test holds the
# shipped figures, a margin below.
ENCODE_SEEN, SYNTHESIS_SEEN, MARGIN = 0.795, 0.333, 0.05


def png_text(image: np.ndarray) -> str:
    """(H, W) in [0, 1] -> base64 PNG, 8-bit grey."""
    buffer = io.BytesIO()
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_the_handwriting_model_reads_held_out_real_digits_and_draws_the_asked_one(tmp_path: Path) -> None:
    """Issue 26's headline through a real server: held-out real glyphs (never trained on) placed on the canvas at
    random factors and sent to /encode, the digit part's most probable class named through the calibration; then
    each digit asked of /synthesize and read back by judges/handwriting."""
    from training.data.digits import FIRST_CENTRE, HEIGHT, POSITION_SPAN, POSITIONS, ROTATIONS, SCALES
    from training.data.handwriting import BOX, place_glyphs
    from training.judge.artifact import OnnxJudge

    with np.load(HELD_OUT) as stored:
        glyphs, labels = stored["glyphs"].astype(np.float32) / 255, stored["labels"].astype(np.int64)
    rng = np.random.default_rng(0)
    n = len(labels)
    centre = FIRST_CENTRE + POSITION_SPAN * POSITIONS[rng.integers(0, POSITIONS.size, size=(n, 2))]
    scale_px = SCALES[rng.integers(0, SCALES.size, size=n)] * HEIGHT / BOX
    images = place_glyphs(glyphs, scale_px, ROTATIONS[rng.integers(0, ROTATIONS.size, size=n)], centre)
    judge = OnnxJudge(REPO / "judges" / "handwriting")
    asked = balanced_classes([10, SCALES.size, ROTATIONS.size, POSITIONS.size, POSITIONS.size], 60, rng)
    drawn = []
    with serve(zoo_only(tmp_path)) as url, httpx.Client(base_url=url, timeout=60) as http:
        calibration = http.get(f"/models/{HANDWRITING}").json()["calibration"]
        digit = next(f for f in calibration["factors"] if f["name"] == "digit")
        value_of = {c: v for v, c in reversed(list(zip(digit["values"], digit["classes"], strict=True)))}
        payload = {"model": HANDWRITING, "images": [png_text(image) for image in images]}
        reply = http.post("/encode", json=payload)
        assert reply.status_code == 200, reply.text
        most = np.asarray(reply.json()["probabilities"]["digit"]).argmax(1)  # (n,)
        read = np.array([value_of.get(int(c), -1) for c in most])
        for row in asked:
            factors = {"digit": int(row[0]), "scale": float(SCALES[row[1]]), "rotation": float(ROTATIONS[row[2]]),
                       "posX": float(POSITIONS[row[3]]), "posY": float(POSITIONS[row[4]])}  # fmt: skip
            reply = http.post("/synthesize", json={"model": HANDWRITING, "factors": factors})
            assert reply.status_code == 200, reply.text
            with Image.open(io.BytesIO(base64.b64decode(reply.json()["image"]))) as png:
                drawn.append(np.asarray(png.convert("L"), dtype=np.float32)[None] / 255)  # (1, H, W)
    encoded = float((read == labels).mean())
    assert encoded >= ENCODE_SEEN - MARGIN, f"/encode read {encoded:.3f} of 200 held-out digits right"
    judged = float((judge.values(np.stack(drawn))["digit"] == asked[:, 0]).mean())
    assert judged >= SYNTHESIS_SEEN - MARGIN, f"the judge read the asked digit in {judged:.3f} of 60 requests"
