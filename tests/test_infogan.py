"""InfoGAN end to end: the objective's parts, the loop's resume, the export's contract and parity, serving."""

from __future__ import annotations

import json
import math
import re
from contextlib import nullcontext
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch
from service_harness import serve

from contract.manifest import read_manifest, sha256_of
from contract.ranges import dim_range
from training.checkpoints import CHECKPOINT, LOG, load_checkpoint
from training.cli import main
from training.data import get_dataset
from training.export import export_run
from training.gan import CodeLayout, InfoGAN
from training.infogan import (
    CODE_SD,
    InfoGANConfig,
    adversarial_step,
    build_infogan,
    info_loss,
    label_loss,
    labelled_subset,
    parameter_groups,
    supervised_columns,
    train_infogan,
)
from training.run import make_optimizer as adam

LAYOUT = CodeLayout(continuous=2, categorical=(10,), noise=4)  # the smoke model's, as in conftest.INFOGAN_SMOKE


def tiny(tmp_path: Path, **overrides: object) -> InfoGANConfig:
    values: dict = {
        "name": "tiny", "steps": 12, "batch_size": 8, "width": 4, "q_hidden": 8, "continuous_codes": 2,
        "noise_dim": 4, "log_every": 4, "checkpoint_every": 6, "sample_every": 0, "precision": "fp32",
        "out_dir": str(tmp_path / "runs"),
    }  # fmt: skip
    values.update(overrides)
    return InfoGANConfig.from_dict(values)


def test_layout_vectors_are_continuous_codes_then_one_hot_classes_then_noise() -> None:
    z, continuous, classes = LAYOUT.sample(500, torch.Generator().manual_seed(0))
    assert z.shape == (500, 16) and continuous.shape == (500, 2) and classes.shape == (500, 1)
    torch.testing.assert_close(z[:, :2], continuous)
    assert continuous.min() >= -1 and continuous.max() <= 1
    one_hot = z[:, 2:12]
    assert torch.equal(one_hot.argmax(1), classes[:, 0]) and torch.equal(one_hot.sum(1), torch.ones(500))
    assert set(classes[:, 0].tolist()) == set(range(10))
    assert 0.8 < float(z[:, 12:].std()) < 1.2, "noise ~ N(0, 1)"


def test_info_loss_is_the_codes_negative_log_likelihood_under_q() -> None:
    model = InfoGAN(LAYOUT, width=4, q_hidden=8)
    continuous = torch.tensor([[0.5, -0.5]])
    classes = torch.tensor([[3]])
    q = torch.zeros(1, 10 + 4)
    q[0, 3] = 50.0  # Q sure of class 3
    q[0, 10:12] = continuous  # means on the codes, log variance 0
    cat, cont, accuracy = info_loss(model, q, continuous, classes)
    assert float(cat) < 1e-6 and float(accuracy) == 1.0
    assert float(cont) == pytest.approx(np.log(2 * np.pi), rel=1e-6), "two unit Gaussians at their means"
    wrong = q.clone()
    wrong[0, 3], wrong[0, 4] = 0.0, 50.0
    assert float(info_loss(model, wrong, continuous, classes)[0]) == pytest.approx(50.0, rel=1e-4)


FEW_LABELS = {"label_fraction": 0.01, "label_factor": "digit", "label_continuous": "rotation,scale"}


@pytest.mark.parametrize("labels", [{}, FEW_LABELS], ids=["unsupervised", "few labels"])
def test_resume_continues_exactly_where_the_interrupted_run_stopped(tmp_path: Path, labels: dict) -> None:
    straight = train_infogan(tiny(tmp_path, name="straight", **labels))
    train_infogan(tiny(tmp_path, name="interrupted", steps=6, **labels))
    resumed = train_infogan(tiny(tmp_path, name="interrupted", **labels), resume=True)
    a, b = load_checkpoint(straight / CHECKPOINT), load_checkpoint(resumed / CHECKPOINT)
    assert b["progress"]["step"] == 12 and b["progress"]["images_seen"] == 12 * 8
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=0, msg=key)
    records = [json.loads(line) for line in (resumed / LOG).open()]
    assert [r["step"] for r in records] == [4, 6, 8, 12]  # the interrupted run logged its last step
    logged = {"loss_d", "loss_g", "info_cat", "info_cont", "q_accuracy"}
    assert logged | ({"label_cat", "label_cont", "label_accuracy"} if labels else set()) <= set(records[-1])


def test_label_loss_is_qs_negative_log_likelihood_of_the_labelled_factors() -> None:
    model = InfoGAN(LAYOUT, width=4, q_hidden=8)
    labels, targets = torch.tensor([3, 7]), torch.tensor([[0.25], [-0.5]])  # one tied code of the two
    q = torch.zeros(2, 10 + 4)
    q[0, 3] = q[1, 7] = 50.0  # Q sure of each image's digit
    q[:, 10] = targets[:, 0]  # the first code's means on the targets; log variances 0
    q[:, 11] = 9.0  # the untied second code: far off, and not counted
    cat, cont, accuracy = label_loss(model, q, labels, targets)
    assert float(cat) < 1e-6 and float(accuracy) == 1.0
    assert float(cont) == pytest.approx(0.5 * math.log(2 * math.pi), rel=1e-6), "one unit Gaussian at its mean"
    _, off, _ = label_loss(model, q, labels, targets + 1.0)
    assert float(off) == pytest.approx(0.5 * math.log(2 * math.pi) + 0.5, rel=1e-6), "one sd away: +0.5 nats"
    swapped = label_loss(model, q, labels.flip(0), targets)
    assert float(swapped[0]) == pytest.approx(50.0, rel=1e-4) and float(swapped[2]) == 0.0


def test_the_labelled_subset_is_one_percent_with_targets_on_the_codes_scale(tmp_path: Path) -> None:
    subset = labelled_subset(tiny(tmp_path, **FEW_LABELS), get_dataset("digits"))
    assert len(subset.labels) == 907 and subset.targets.shape == (907, 2)  # 1% of the grid, two tied codes
    assert set(subset.labels.tolist()) == set(range(10))
    # standardised factors times 1/sqrt(3), a U(-1, 1) code's standard deviation: inside the codes' range
    assert float(subset.targets.abs().max()) <= 1.0
    assert float(subset.targets.std()) == pytest.approx(1 / math.sqrt(3), rel=0.05)


def test_a_labelled_image_moved_by_the_shift_moves_its_position_targets_with_it(tmp_path: Path) -> None:
    dataset = get_dataset("digits")
    tied = {**FEW_LABELS, "label_continuous": "posX,posY", "label_batch": 64}
    still = labelled_subset(tiny(tmp_path, **tied), dataset)
    moved = labelled_subset(tiny(tmp_path, **tied, label_shift=6), dataset)
    before, labels, targets = still.batch(0, 0, 3)
    after, labels_after, targets_after = moved.batch(0, 0, 3)  # the same images (the same draw), moved
    assert torch.equal(labels, labels_after)
    rate = float(moved.shift_rates[0, 0])  # target units per pixel, on the codes' scale
    assert rate == pytest.approx(CODE_SD / (24 * float(np.linspace(0, 1, 9).std())), rel=1e-6)

    def centre(images: torch.Tensor) -> torch.Tensor:  # (L, 2) ink-weighted column, row
        ink = images[:, 0]
        rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        return torch.stack([(ink * cols).sum((1, 2)), (ink * rows).sum((1, 2))], 1) / ink.sum((1, 2))[:, None]

    whole = (after[:, 0, [0, -1], :].amax((1, 2)) == 0) & (after[:, 0, :, [0, -1]].amax((1, 2)) == 0)
    assert whole.sum() >= 48, "most moves keep the glyph inside the frame"
    px = centre(after) - centre(before)  # (L, 2) how far each glyph moved
    assert float(px.abs().max()) > 3, "the draw moved the images"
    torch.testing.assert_close((targets_after - targets)[whole], px[whole] * rate, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="posX changes when the image moves; set label_shift = 0"):
        sprites = {**tied, "label_factor": "shape", "categorical_codes": [3], "dataset": "dsprites"}
        labelled_subset(tiny(tmp_path, **sprites, label_shift=6), get_dataset("dsprites"))


def test_the_labelled_images_train_ds_trunk_and_qs_head(tmp_path: Path) -> None:
    dataset = get_dataset("digits")

    def one_step(weight: float) -> tuple[InfoGAN, dict[str, torch.Tensor]]:
        cfg = tiny(tmp_path, **FEW_LABELS, label_weight=weight)
        torch.manual_seed(0)
        model = build_infogan(cfg, dataset)
        d_params, g_params = parameter_groups(model)
        opt_d, opt_g = (
            adam(d_params, cfg.lr_d, (cfg.beta1, cfg.beta2)),
            adam(g_params, cfg.lr_g, (cfg.beta1, cfg.beta2)),
        )
        labelled = labelled_subset(cfg, dataset).batch(cfg.seed, 0, 0)
        torch.manual_seed(1)  # the same codes and noise in both runs
        terms = adversarial_step(cfg, model, opt_d, opt_g, labelled[0][:8], 0, nullcontext(), labelled)
        return model, terms

    unweighted, _ = one_step(0.0)
    weighted, terms = one_step(1.0)
    assert {"label_cat", "label_cont", "label_accuracy"} <= set(terms)
    assert float(terms["label_cat"]) == pytest.approx(math.log(10), rel=0.1), "an untrained Q: about chance"
    for part in ("trunk", "q_head"):
        before = torch.cat([p.flatten() for p in getattr(unweighted.discriminator, part).parameters()])
        after = torch.cat([p.flatten() for p in getattr(weighted.discriminator, part).parameters()])
        assert not torch.allclose(before, after), f"the label terms did not reach D's {part}"


@pytest.mark.parametrize("real_only", [False, True], ids=["q learns from fakes", "q learns from real only"])
def test_label_real_only_keeps_l_i_on_generated_images_from_teaching_q_the_labelled_codes(
    tmp_path: Path, real_only: bool
) -> None:
    # Three continuous codes, two tied: the third is Q's to learn from generated images either way.
    cfg = tiny(tmp_path, **FEW_LABELS, continuous_codes=3, label_weight=0.0, label_real_only=real_only)
    dataset = get_dataset("digits")
    torch.manual_seed(0)
    model = build_infogan(cfg, dataset)
    d_params, g_params = parameter_groups(model)
    opt_d, opt_g = adam(d_params, cfg.lr_d, (cfg.beta1, cfg.beta2)), adam(g_params, cfg.lr_g, (cfg.beta1, cfg.beta2))
    labelled = labelled_subset(cfg, dataset).batch(cfg.seed, 0, 0)
    out = model.discriminator.q_head[-1]
    before = out.weight.detach().clone()
    adversarial_step(cfg, model, opt_d, opt_g, labelled[0][:8], 0, nullcontext(), labelled)
    moved = (out.weight.detach() != before).any(1)  # (Q's output width,) rows the step changed
    supervised = supervised_columns(cfg)
    assert int(supervised.sum()) == 10 + 2 + 2  # the digit's logits, two tied means and their log variances
    assert bool(moved[~supervised].all()), "the untied code is learnt from generated images"
    assert bool(moved[supervised].any()) != real_only


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label_fraction": 0.02, "label_factor": "digit"}, "label_fraction must be in [0, 0.01], got 0.02"),
        ({"label_fraction": 0.01}, "label_fraction > 0 needs a label_factor"),
        (
            {"label_continuous": "rotation"},
            "label_factor, label_continuous and label_real_only need few-label supervision",
        ),
        ({"label_fraction": 0.01, "label_factor": "digit", "label_batch": 0}, "label_batch must be >= 1"),
    ],
)
def test_bad_label_settings_are_rejected_by_name(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny(tmp_path, **overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"label_continuous": "rotation,scale,thickness"}, "takes 3 continuous codes, the model has 2"),
        ({"label_factor": "colour"}, "label_factor must be one of ['digit', 'scale'"),
        ({"label_factor": "scale"}, "label_factor 'scale' has 4 values; the categorical part"),
    ],
)
def test_labels_the_model_cannot_take_fail_before_the_run_folder_is_touched(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    cfg = tiny(tmp_path, **(FEW_LABELS | overrides))
    with pytest.raises(ValueError, match=re.escape(message)):
        train_infogan(cfg)
    assert not cfg.run_dir.exists()


def test_a_run_writes_sample_grids_of_the_generator(tmp_path: Path) -> None:
    run = train_infogan(tiny(tmp_path, steps=4, sample_every=2))
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["step_0000002.png", "step_0000004.png"]


def test_cli_parses_infogan_flags_and_rejects_vae_keys_for_it(tmp_path: Path, capsys) -> None:
    base = ["fit", "--objective", "infogan", "--out-dir", str(tmp_path / "runs"), "--steps", "2", "--batch-size", "4"]
    small = ["--width", "2", "--sample-every", "0", "--precision", "fp32"]
    assert main([*base, *small, "--categorical-codes", "3,2"]) == 0
    assert json.loads((tmp_path / "runs" / "infogan" / "config.json").read_text())["categorical_codes"] == [3, 2]
    assert main([*base, "--beta", "4"]) == 2
    err = capsys.readouterr().err
    assert "unknown config keys ['beta'] for objective 'infogan'" in err and "lambda_cont" in err
    assert main([*base, "--categorical-codes", "1"]) == 2
    assert "at least 2 classes, got [1]" in capsys.readouterr().err


def test_infogan_artifact_is_g_as_decoder_and_q_as_encoder_with_parity(infogan_artifact: Path) -> None:
    manifest = read_manifest(infogan_artifact)
    assert manifest.objective == "infogan" and manifest.latent_dim == LAYOUT.size
    assert manifest.metrics["export_parity_max_abs_diff"] <= 1e-4
    for role, file in manifest.files.items():
        assert sha256_of(infogan_artifact / file.path) == file.sha256, role
    assert manifest.training.steps == 30 and manifest.training.images_seen == 30 * 16
    assert manifest.layout.continuous == 2 and manifest.layout.noise == 4
    assert [(p.name, p.classes) for p in manifest.layout.categorical] == [("cat0", 10)]
    assert len(manifest.latent_stats) == 2 and all(s.active and s.kl == 0 for s in manifest.latent_stats)

    encoder = ort.InferenceSession(str(infogan_artifact / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(infogan_artifact / "decoder.onnx"), providers=["CPUExecutionProvider"])
    z = LAYOUT.sample(5, torch.Generator().manual_seed(1))[0].numpy()
    (images,) = decoder.run(["image"], {"z": z})
    assert images.shape == (5, 1, 64, 64) and 0 <= images.min() and images.max() <= 1
    mu, logvar, probabilities = encoder.run(["mu", "logvar", "probabilities"], {"image": images})
    assert mu.shape == logvar.shape == (5, 2) and np.isfinite(logvar).all()
    assert probabilities.shape == (5, 10)
    assert (probabilities >= 0).all() and np.allclose(probabilities.sum(1), 1, atol=1e-5)


def test_a_real_server_decodes_each_class_of_the_infogan_by_its_index(infogan_artifact: Path) -> None:
    """The categorical part as a class index, beside the continuous codes and the noise: the served image is the
    decoder's own for the flat vector with that class one-hot; a class the code lacks is a 422 naming the part."""
    with serve(infogan_artifact.parent) as url, httpx.Client(base_url=url, timeout=30) as http:
        info = http.get("/models/infogan_smoke").json()
        assert info["objective"] == "infogan" and info["latent_dim"] == 16
        rest = np.zeros((10, 2 + 4), dtype=np.float32)  # continuous codes and noise at 0
        body = {"latents": rest.tolist(), "categorical": {"cat0": list(range(10))}, "format": "array"}
        reply = http.post("/decode", json=body)
        assert reply.status_code == 200, reply.text
        served = np.asarray(reply.json()["images"], dtype=np.float32)
        wrong = http.post("/decode", json={**body, "categorical": {"cat0": [10] * 10}})
        assert wrong.status_code == 422 and "cat0" in wrong.text, wrong.text
    flat = np.zeros((10, 16), dtype=np.float32)
    flat[np.arange(10), 2 + np.arange(10)] = 1.0
    decoder = ort.InferenceSession(str(infogan_artifact / "decoder.onnx"), providers=["CPUExecutionProvider"])
    (expected,) = decoder.run(["image"], {"z": flat})
    assert served.shape == (10, 1, 64, 64)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_the_artifact_states_the_codes_uniform_prior_and_declares_probabilities_only_with_a_categorical_code(
    tmp_path: Path, infogan_artifact: Path
) -> None:
    manifest = read_manifest(infogan_artifact)
    assert manifest.layout.prior.kind == "uniform" and (manifest.layout.prior.low, manifest.layout.prior.high) == (
        -1,
        1,
    )
    for dim in range(manifest.layout.continuous):  # what /traverse walks, the sliders span and the card draws
        low, high = dim_range(manifest, dim)
        assert -1 <= low < high <= 1
    shipped = read_manifest(Path(__file__).resolve().parent.parent / "models" / "digits_infogan")
    assert shipped.layout.prior.kind == "uniform"

    run = train_infogan(tiny(tmp_path, steps=2, categorical_codes=[]))
    plain = export_run(run, tmp_path / "plain")
    assert plain.layout.classes == 0
    encoder = ort.InferenceSession(str(tmp_path / "plain" / "encoder.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in encoder.get_outputs()] == ["mu", "logvar"]
