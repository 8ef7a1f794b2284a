"""JointVAE (Dupont 2018): the categorical KL, the capacity schedules, Gumbel-softmax, few-label supervision,
training, export and calibration of a categorical code, on cases small enough to check by hand."""

from __future__ import annotations

import contextlib
import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from contract.calibration import latent_for
from contract.manifest import FactorSpec, LatentLayout, read_manifest
from training.card import traversal_grid
from training.checkpoints import CHECKPOINT, LOG, load_checkpoint
from training.data import get_dataset
from training.evaluate.calibrate import calibrate, calibrate_groups, class_dependence
from training.evaluate.onnx_model import OnnxModel
from training.evaluate.source import CodeSource
from training.evaluate.table import row as table_row
from training.export import export_run
from training.models import VAE, gumbel_softmax_sample
from training.objectives import (
    ObjectiveConfig,
    capacity,
    categorical_kl,
    compute_loss,
    discrete_capacity,
    label_cross_entropy,
    label_squared_error,
    tc_decomposition,
)
from training.train import TrainConfig, build_model, frozen_copy, labelled_loss, labelled_subset, train


def joint(tmp_path: Path, **overrides: object) -> TrainConfig:
    values: dict = {
        "name": "joint", "objective": "joint_vae", "dataset": "digits", "categorical": "digit:10", "latent_dim": 4,
        "capacity_max": 5.0, "capacity_steps": 20, "disc_capacity_max": 5.0, "disc_capacity_steps": 20,
        "capacity_gamma": 30.0, "steps": 20, "batch_size": 16, "log_every": 5, "checkpoint_every": 10,
        "precision": "fp32", "out_dir": str(tmp_path / "runs"),
    }  # fmt: skip
    values.update(overrides)
    return TrainConfig.from_dict(values)


def test_categorical_kl_to_the_uniform_prior_matches_hand_computation() -> None:
    # part 1: q = (0.5, 0.25, 0.25) on K = 3; part 2: q uniform on K = 2 (KL 0)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25, 0.5, 0.5]]))
    expected_first = 0.5 * math.log(0.5 * 3) + 2 * 0.25 * math.log(0.25 * 3)
    torch.testing.assert_close(categorical_kl(logits, (3, 2)), torch.tensor([expected_first, 0.0]))
    # a certain posterior carries the most a part can: log K
    certain = torch.tensor([[30.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(categorical_kl(certain, (4,)), torch.tensor([math.log(4)]), atol=1e-6, rtol=0)


def test_capacities_grow_linearly_and_the_discrete_one_stops_at_sum_log_k() -> None:
    cfg = ObjectiveConfig(
        name="joint_vae", capacity_max=40.0, capacity_steps=100, disc_capacity_max=5.0, disc_capacity_steps=200,
        categories=(10,),
    )  # fmt: skip
    assert [capacity(s, cfg) for s in (0, 50, 100, 500)] == [0.0, 20.0, 40.0, 40.0]
    assert [discrete_capacity(s, cfg) for s in (0, 40, 80)] == pytest.approx([0.0, 1.0, 2.0])
    # 5 nats asked, but one 10-class part holds at most log 10 = 2.303
    assert discrete_capacity(200, cfg) == pytest.approx(math.log(10))
    two = ObjectiveConfig(name="joint_vae", disc_capacity_max=1.1, disc_capacity_steps=10, categories=(3, 2))
    assert discrete_capacity(10, two) == pytest.approx(1.1)  # below log 3 + log 2 = 1.79: not capped


def test_joint_vae_loss_is_reconstruction_plus_both_capacity_terms() -> None:
    torch.manual_seed(0)
    cfg = ObjectiveConfig(
        name="joint_vae", capacity_max=4.0, capacity_steps=10, disc_capacity_max=1.0, disc_capacity_steps=10,
        capacity_gamma=30.0, categories=(3,),
    )  # fmt: skip
    x = torch.rand(4, 1, 64, 64).round()  # (B, C, H, W)
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2) * 0.1  # (B, c)
    category_logits = torch.randn(4, 3)  # (B, K)
    z = torch.cat([mu, torch.softmax(category_logits, 1)], 1)  # (B, c + K)
    logits = torch.randn(4, 1, 64, 64)
    loss, terms = compute_loss(cfg, x, mu, logvar, z, logits, step=5, category_logits=category_logits)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 4
    kl_cont = (0.5 * (mu**2 + logvar.exp() - logvar - 1)).sum(1).mean()
    q = torch.softmax(category_logits, 1)
    kl_disc = (q * torch.log(q * 3)).sum(1).mean()
    expected = bce + 30.0 * ((kl_cont - 2.0).abs() + (kl_disc - 0.5).abs())
    torch.testing.assert_close(loss, expected)
    assert set(terms) == {"loss", "recon", "kl", "kl_disc", "capacity", "disc_capacity"}
    torch.testing.assert_close(terms["kl_disc"], kl_disc)
    with pytest.raises(ValueError, match="categorical logits"):
        compute_loss(cfg, x, mu, logvar, z, logits, step=5)


def test_joint_vae_with_the_tc_penalty_regularises_the_continuous_part_as_beta_tcvae_does() -> None:
    torch.manual_seed(0)
    cfg = ObjectiveConfig(
        name="joint_vae", continuous_penalty="tc", beta=6.0, disc_capacity_max=1.0, disc_capacity_steps=10,
        capacity_gamma=30.0, categories=(3,), dataset_size=1000,
    )  # fmt: skip
    x = torch.rand(8, 1, 64, 64).round()  # (B, C, H, W)
    mu, logvar = torch.randn(8, 2), torch.randn(8, 2) * 0.1  # (B, c)
    category_logits = torch.randn(8, 3)  # (B, K)
    z = torch.cat([mu + 0.1 * torch.randn(8, 2), torch.softmax(category_logits, 1)], 1)  # (B, c + K)
    logits = torch.randn(8, 1, 64, 64)
    loss, terms = compute_loss(cfg, x, mu, logvar, z, logits, step=5, category_logits=category_logits)
    # Only the Gaussian sample enters q(z): the categorical codes are not part of the continuous decomposition.
    parts = tc_decomposition(z[:, :2], mu, logvar, 1000, "mss")
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 8
    q = torch.softmax(category_logits, 1)
    kl_disc = (q * torch.log(q * 3)).sum(1).mean()
    expected = bce + 30.0 * (kl_disc - 0.5).abs() + parts["mi"] + 6.0 * parts["tc"] + parts["dwkl"]
    torch.testing.assert_close(loss, expected)
    assert {"mi", "tc", "dwkl", "kl_disc", "disc_capacity"} <= set(terms) and "capacity" not in terms
    with pytest.raises(ValueError, match="continuous_penalty must be 'capacity' or 'tc', got 'kl'"):
        ObjectiveConfig(name="joint_vae", continuous_penalty="kl", categories=(3,))  # type: ignore[arg-type]


def test_gumbel_softmax_samples_lie_on_the_simplex_and_follow_the_class_probabilities() -> None:
    torch.manual_seed(0)
    probabilities = torch.tensor([0.6, 0.3, 0.1])
    logits = probabilities.log().expand(20_000, 3)
    sample = gumbel_softmax_sample(logits, temperature=0.67)  # (N, K)
    torch.testing.assert_close(sample.sum(1), torch.ones(20_000))
    assert (sample >= 0).all()
    # The argmax of log pi + g is an exact categorical sample (the Gumbel-max trick).
    frequencies = torch.bincount(sample.argmax(1), minlength=3).float() / 20_000
    torch.testing.assert_close(frequencies, probabilities, atol=0.015, rtol=0)
    # a lower temperature is closer to one-hot
    assert gumbel_softmax_sample(logits, 0.1).max(1).values.mean() > sample.max(1).values.mean()


def test_label_cross_entropy_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    expected = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(1 / (1 + math.e))) / 2
    assert float(label_cross_entropy(logits, labels)) == pytest.approx(expected)


def test_joint_vae_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="goes with categorical latents"):
        joint(tmp_path, categorical="")
    with pytest.raises(ValueError, match="goes with categorical latents"):
        joint(tmp_path, objective="vae")
    with pytest.raises(ValueError, match=r"NAME:CLASSES with CLASSES >= 2, got 'digit:1'"):
        joint(tmp_path, categorical="digit:1")
    with pytest.raises(ValueError, match="unique"):
        joint(tmp_path, categorical="a:3,a:4")
    with pytest.raises(ValueError, match=r"label_fraction must be in \[0, 0.01\], got 0.05"):
        joint(tmp_path, label_fraction=0.05, label_factor="digit")
    with pytest.raises(ValueError, match="needs objective 'joint_vae' and a label_factor"):
        joint(tmp_path, label_fraction=0.01)
    with pytest.raises(ValueError, match="conv architecture"):
        VAE("mlp", 1, 4, categories=(3,))


def test_the_labelled_subset_is_fixed_small_and_checked_against_the_part(tmp_path: Path) -> None:
    from training.data import get_dataset

    dataset = get_dataset("digits")
    cfg = joint(tmp_path, label_fraction=0.01, label_factor="digit")
    first, again = labelled_subset(cfg, dataset), labelled_subset(cfg, dataset)
    assert len(first.labels) == round(0.01 * len(dataset))
    torch.testing.assert_close(first.images, again.images)
    assert set(first.labels.tolist()) == set(range(10))
    assert first.part == slice(0, 10)
    with pytest.raises(ValueError, match="'scale' has 4 values; the categorical part 'digit' it is tied to has 10"):
        labelled_subset(joint(tmp_path, label_fraction=0.01, label_factor="scale"), dataset)
    with pytest.raises(ValueError, match="label_factor must be one of"):
        labelled_subset(joint(tmp_path, label_fraction=0.01, label_factor="colour"), dataset)


def test_labelled_draws_are_shifted_copies_of_the_labelled_images_and_repeat_on_resume(tmp_path: Path) -> None:
    from training.data import get_dataset

    dataset = get_dataset("digits")
    cfg = joint(tmp_path, label_fraction=0.01, label_factor="digit", label_batch=8, label_shift=3)
    subset = labelled_subset(cfg, dataset)
    images, labels, targets = subset.batch(seed=0, rank=0, step=5)
    again, _, _ = subset.batch(seed=0, rank=0, step=5)
    assert images.shape == (8, 1, 64, 64) and labels.shape == (8,) and targets.shape == (8, 0)
    torch.testing.assert_close(images, again)
    originals = subset.images.float() / 255  # (L, C, H, W)
    for image, label in zip(images, labels, strict=True):
        # Each drawn image is some labelled image of the same class, moved by at most 3 px in x and y.
        padded = torch.nn.functional.pad(originals, (3, 3, 3, 3))
        found = any(
            torch.equal(padded[i, :, 3 + dy : 67 + dy, 3 + dx : 67 + dx], image) and subset.labels[i] == label
            for i in range(len(originals)) for dy in range(-3, 4) for dx in range(-3, 4)
            if int(subset.labels[i]) == int(label)
        )  # fmt: skip
        assert found
    with pytest.raises(ValueError, match="label_shift must be >= 0 pixels, got -1"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_shift=-1)
    with pytest.raises(ValueError, match="label_batch must be >= 1, got 0"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_batch=0)
    with pytest.raises(ValueError, match="label_decode needs few-label supervision"):
        joint(tmp_path, label_decode=True)


def test_tied_continuous_factors_are_the_standardised_ground_truth_of_the_labelled_images(tmp_path: Path) -> None:
    from training.data import get_dataset

    dataset = get_dataset("digits")
    cfg = joint(tmp_path, label_fraction=0.01, label_factor="digit", label_continuous="rotation, thickness")
    subset = labelled_subset(cfg, dataset)
    assert subset.targets.shape == (len(subset.labels), 2)
    # Rotations -45..45 in steps of 15 have mean 0 and standard deviation 30: 45 degrees reads 1.5.
    assert set(np.round(subset.targets[:, 0].double().numpy(), 4).tolist()) == {-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5}
    # Thickness -1, -0.5, 0, 0.5: mean -0.25, standard deviation sqrt(0.3125).
    expected = (np.array([-1.0, -0.5, 0.0, 0.5]) + 0.25) / math.sqrt(0.3125)
    assert set(np.round(subset.targets[:, 1].double().numpy(), 4).tolist()) == set(np.round(expected, 4).tolist())
    _, _, drawn = subset.batch(seed=0, rank=0, step=3)
    assert drawn.shape == (cfg.label_batch, 2)
    # the squared error sums over the tied dims and averages over the images
    mu, targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    assert float(label_squared_error(mu, targets)) == pytest.approx((1 + 4) / 2)
    # with label_tie_posterior, a posterior sample's expected squared error: the variances add
    logvar = torch.log(torch.tensor([[0.25, 0.5], [1.0, 0.0]]).clamp_min(1e-30))
    assert float(label_squared_error(mu, targets, logvar)) == pytest.approx((1 + 4 + 0.25 + 0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="label_tie_posterior ties the spread of tied dims: set label_continuous"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_tie_posterior=True)
    with pytest.raises(ValueError, match="label_continuous needs few-label supervision"):
        joint(tmp_path, label_continuous="rotation")
    # a tied position moves with the labelled image where the dataset says how (digits), else it is refused
    moved = joint(tmp_path, label_fraction=0.01, label_factor="digit", label_shift=2, label_continuous="posX")
    assert labelled_subset(moved, dataset).shift_rates is not None
    sprites = joint(
        tmp_path, dataset="dsprites", categorical="shape:3", label_fraction=0.01, label_factor="shape", label_shift=2,
        label_continuous="posX",
    )  # fmt: skip
    with pytest.raises(ValueError, match="posX changes when the image moves; set label_shift = 0"):
        labelled_subset(sprites, get_dataset("dsprites"))
    with pytest.raises(ValueError, match="names 5 factors for 4 continuous dims"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_continuous="a,b,c,d,e")
    with pytest.raises(ValueError, match="unique"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_continuous="scale,scale")
    with pytest.raises(ValueError, match="expected factors among .* got 'colour'"):
        unknown = joint(tmp_path, label_fraction=0.01, label_factor="digit", label_continuous="colour")
        labelled_subset(unknown, dataset)


def test_dsprites_orientation_is_tied_as_the_angle_the_image_shows_on_two_dims(tmp_path: Path) -> None:
    """(cos k*theta, sin k*theta), k the shape's symmetry: a square a quarter turn on is nearly the same image
    and gets nearly the same target; a heart a quarter turn on gets a far one."""
    dataset = get_dataset("dsprites")
    quarter = 10  # dSprites' 40 orientations span [0, 2*pi] in 39 steps: 10 of them turn 92.3 degrees
    # (shape, scale, orientation, posX, posY)
    classes = np.array(
        [[0, 0, 3, 0, 0], [0, 0, 3 + quarter, 0, 0], [1, 0, 3, 0, 0], [2, 0, 3, 0, 0], [2, 0, 3 + quarter, 0, 0]]
    )
    targets = dataset.tie_targets("orientation", classes)  # (5, 2)
    angle = np.array(dataset.factors[2].values)[classes[:, 2]]
    assert targets == pytest.approx(np.stack([np.cos([4, 4, 2, 1, 1] * angle), np.sin([4, 4, 2, 1, 1] * angle)], 1))
    assert np.abs(targets[0] - targets[1]).max() < 0.2  # the square: 4 x 92.3 degrees is 9.2 degrees round
    assert np.abs(targets[3] - targets[4]).max() > 1.0  # the heart
    assert dataset.tie_targets("scale", classes)[:, 0] == pytest.approx([-1.4639] * 5, abs=1e-4)

    cfg = joint(
        tmp_path, dataset="dsprites", categorical="shape:3", label_fraction=0.001, label_factor="shape",
        latent_dim=3, label_continuous="scale,orientation",
    )  # fmt: skip
    subset = labelled_subset(cfg, dataset)
    assert subset.targets.shape == (len(subset.labels), 3)
    assert (subset.targets[:, 1] ** 2 + subset.targets[:, 2] ** 2).numpy() == pytest.approx(1.0, abs=1e-6)
    too_small = joint(
        tmp_path, dataset="dsprites", categorical="shape:3", label_fraction=0.001, label_factor="shape",
        latent_dim=2, label_continuous="scale,orientation",
    )  # fmt: skip
    with pytest.raises(ValueError, match="'scale,orientation' takes 3 continuous dims, the model has 2"):
        labelled_subset(too_small, dataset)


def test_joint_vae_trains_exports_with_parity_and_answers_probabilities(tmp_path: Path) -> None:
    run = train(joint(tmp_path))
    records = [json.loads(line) for line in (run / LOG).open()]
    assert {"kl_disc", "disc_capacity", "capacity"} <= set(records[-1])
    manifest = export_run(run, tmp_path / "artifact")
    assert manifest.objective == "joint_vae"
    assert manifest.layout == LatentLayout.model_validate(
        {"continuous": 4, "categorical": [{"name": "digit", "classes": 10}]}
    )
    assert manifest.latent_dim == 14 and len(manifest.latent_stats) == 4
    assert manifest.metrics["export_parity_max_abs_diff"] <= 1e-4
    assert read_manifest(tmp_path / "artifact") == manifest
    encoder = ort.InferenceSession(str(tmp_path / "artifact" / "encoder.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(tmp_path / "artifact" / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in encoder.get_outputs()] == ["mu", "logvar", "probabilities"]
    images = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    mu, logvar, probabilities = encoder.run(None, {"image": images})
    assert mu.shape == logvar.shape == (3, 4) and probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    (decoded,) = decoder.run(None, {"z": manifest.layout.flat(mu, probabilities)})
    assert decoded.shape == (3, 1, 64, 64) and ((decoded >= 0) & (decoded <= 1)).all()
    # evaluation reads the flat posterior mean, and reconstructs from each part's most probable class
    model = OnnxModel(tmp_path / "artifact", threads=1)
    np.testing.assert_allclose(model.mean(images), manifest.layout.flat(mu, probabilities), atol=1e-6)
    one_hot = np.eye(10, dtype=np.float32)[probabilities.argmax(1)]
    np.testing.assert_array_equal(model.reconstruction_latent(images), manifest.layout.flat(mu, one_hot))
    # the card's traversal: a row per continuous dim (9 steps), then the digit part with a column per class
    grid = traversal_grid(model)
    assert grid.size == (2 * (10 * 66 + 2), 2 * (5 * 66 + 2))


@pytest.mark.parametrize("label_decode", [False, True])
def test_few_label_training_logs_its_cross_entropy_and_resumes_exactly(tmp_path: Path, label_decode: bool) -> None:
    labels = {"label_fraction": 0.01, "label_factor": "digit", "label_weight": 10.0, "label_decode": label_decode}
    if label_decode:  # the continuous ties ride along on one of the two runs
        labels["label_continuous"] = "rotation,scale"
    straight = train(joint(tmp_path, name="straight", **labels))
    train(joint(tmp_path, name="interrupted", steps=10, **labels))
    resumed = train(joint(tmp_path, name="interrupted", **labels), resume=True)
    a, b = load_checkpoint(straight / CHECKPOINT), load_checkpoint(resumed / CHECKPOINT)
    for key, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=0, msg=key)
    records = [json.loads(line) for line in (straight / LOG).open()]
    assert all(r["label_ce"] > 0 for r in records)
    if label_decode:
        # The labelled images' own reconstruction, per image like the batch's: the same scale, the same images.
        assert all(0.5 < r["label_recon"] / r["recon"] < 2 for r in records)
        assert all(r["label_mse"] > 0 for r in records)
    else:
        assert all("label_recon" not in r and "label_mse" not in r for r in records)
    manifest = export_run(straight, tmp_path / "artifact")
    assert manifest.hyperparameters.get("label_continuous") == labels.get("label_continuous")
    # the zoo table names the label fraction beside the unsupervised models
    assert table_row(manifest)[1] == "joint_vae (1% labels)"
    assert manifest.hyperparameters["label_decode"] is label_decode
    assert manifest.hyperparameters["label_fraction"] == 0.01
    assert manifest.hyperparameters["label_factor"] == "digit"


def test_a_label_warm_up_trains_the_encoder_alone_then_the_whole_model_and_resumes_exactly(tmp_path: Path) -> None:
    labels = {"label_fraction": 0.01, "label_factor": "digit", "label_weight": 10.0, "label_decode": True}
    labels |= {"label_continuous": "rotation", "label_tie_posterior": True, "label_swap_weight": 1.0}
    cfg = joint(tmp_path, name="warm", steps=10, label_warmup_steps=10, **labels)
    warm = train(cfg)
    torch.manual_seed(cfg.seed)  # as train() seeds it: the weights the run started from
    initial = build_model(cfg, get_dataset(cfg.dataset)).state_dict()
    after_warm_up = load_checkpoint(warm / CHECKPOINT)["model"]
    moved = {key for key, tensor in after_warm_up.items() if not torch.equal(tensor, initial[key])}
    assert moved and all(key.startswith("encoder.") for key in moved), moved  # the decoder waits for its turn
    warm_records = [json.loads(line) for line in (warm / LOG).open()]
    after_warm_up_only = {"recon", "label_recon", "label_mse", "label_swap_ce"}
    assert all(r["label_ce"] > 0 and r.keys().isdisjoint(after_warm_up_only) for r in warm_records)

    straight = train(joint(tmp_path, name="straight", label_warmup_steps=10, **labels))
    resumed = train(joint(tmp_path, name="warm", label_warmup_steps=10, **labels), resume=True)
    # and from a checkpoint after the warm-up, whose frozen reader for the swapped classes it carries
    train(joint(tmp_path, name="later", steps=15, label_warmup_steps=10, **labels))
    later = train(joint(tmp_path, name="later", label_warmup_steps=10, **labels), resume=True)
    a = load_checkpoint(straight / CHECKPOINT)
    for other in (resumed, later):
        b = load_checkpoint(other / CHECKPOINT)
        for key, tensor in a["model"].items():
            torch.testing.assert_close(b["model"][key], tensor, rtol=0, atol=0, msg=key)
    records = [json.loads(line) for line in (straight / LOG).open()]
    # the reconstruction, the continuous ties and the swapped classes start after step 10
    assert [r["step"] for r in records if "recon" in r and "label_mse" in r and "label_swap_ce" in r] == [15, 20]
    hyperparameters = export_run(straight, tmp_path / "artifact").hyperparameters
    assert hyperparameters["label_warmup_steps"] == 10 and hyperparameters["label_swap_weight"] == 1.0
    assert hyperparameters["label_tie_posterior"] is True

    with pytest.raises(ValueError, match="label_warmup_steps needs few-label supervision"):
        joint(tmp_path, label_warmup_steps=5)
    with pytest.raises(ValueError, match="label_warmup_steps must not exceed steps=20, got 21"):
        joint(tmp_path, label_warmup_steps=21, **labels)


def test_the_swap_term_asks_the_encoder_to_read_another_class_from_what_the_decoder_draws(tmp_path: Path) -> None:
    cfg = joint(tmp_path, label_fraction=0.01, label_factor="digit", label_warmup_steps=5, label_swap_weight=1.0)
    dataset = get_dataset(cfg.dataset)
    subset = labelled_subset(cfg, dataset)
    torch.manual_seed(0)
    model = build_model(cfg, dataset)
    batch = subset.batch(cfg.seed, 0, step=3)

    def decoder_gradient(swap_weight: float) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        loss, terms = labelled_loss(
            model, batch, subset.part, 1.0, "bernoulli", torch.device("cpu"), contextlib.nullcontext(),
            tie=False, decode=False, swap_weight=swap_weight, step=3, reader=frozen_copy(model.encoder),
        )  # fmt: skip
        loss.backward()
        grads = [p.grad.abs().sum().item() for p in model.decoder.parameters() if p.grad is not None]
        return sum(grads), terms

    # Without the swap and the labelled reconstruction, the labelled batch reaches the encoder only.
    alone, terms = decoder_gradient(0.0)
    assert alone == 0 and "label_swap_ce" not in terms
    swapped, terms = decoder_gradient(1.0)
    assert swapped > 0
    # an untrained encoder reads 10 classes about evenly, whatever the decoder drew: about log 10 nats
    assert abs(terms["label_swap_ce"].item() - math.log(10)) < 0.5

    # The reader is frozen: a batch-norm encoder keeps the running statistics of the data, which the drawings'
    # pass leaves alone, and the reader's weights get no gradient.
    normed = joint(tmp_path, label_fraction=0.01, label_factor="digit", encoder_norm="batch")
    statistics = []
    for swap_weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = build_model(normed, dataset)
        reader = frozen_copy(model.encoder)
        loss, _ = labelled_loss(
            model, batch, subset.part, 1.0, "bernoulli", torch.device("cpu"), contextlib.nullcontext(),
            tie=False, decode=False, swap_weight=swap_weight, step=3, reader=reader,
        )  # fmt: skip
        loss.backward()
        assert all(m.training for m in model.modules()) and all(p.grad is None for p in reader.parameters())
        statistics.append({k: v.clone() for k, v in model.encoder.state_dict().items() if "running" in k})
    assert statistics[0].keys() and statistics[0].keys() == statistics[1].keys()
    for key, value in statistics[0].items():
        torch.testing.assert_close(statistics[1][key], value, rtol=0, atol=0, msg=key)

    with pytest.raises(ValueError, match="label_swap_weight needs few-label supervision"):
        joint(tmp_path, label_swap_weight=1.0)
    with pytest.raises(ValueError, match="label_swap_weight reads with the encoder of the warm-up's end"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_swap_weight=1.0)
    with pytest.raises(ValueError, match="label_swap_weight must be a finite number >= 0, got -1.0"):
        joint(tmp_path, label_fraction=0.01, label_factor="digit", label_swap_weight=-1.0)


def test_calibration_maps_each_value_to_the_class_most_probable_on_average() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    shape = rng.integers(0, 3, n)  # the factor the part should be tied to
    size = rng.integers(0, 4, n)
    cont = np.stack([size + 0.1 * rng.standard_normal(n), rng.standard_normal(n)], 1)  # (N, 2)
    # shape value v sits mostly in class (v + 1) % 3; value 2 is confused half of the time with class 1
    probabilities = np.full((n, 3), 0.05)
    probabilities[np.arange(n), (shape + 1) % 3] = 0.9
    probabilities[shape == 2] = [0.5, 0.45, 0.05]
    layout = LatentLayout.model_validate({"continuous": 2, "categorical": [{"name": "code", "classes": 3}]})
    codes = layout.flat(cont, probabilities)
    specs = [
        FactorSpec(name="shape", values=["square", "ellipse", "heart"]),
        FactorSpec(name="size", values=[1, 2, 3, 4]),
    ]
    calibration = calibrate(codes, np.stack([shape, size], 1), specs, layout=layout)
    shape_cal, size_cal = calibration.factors
    assert shape_cal.part == "code" and shape_cal.classes == [1, 2, 0]
    assert shape_cal.dims == [2, 3, 4] and shape_cal.codes[0] == [0.0, 1.0, 0.0]
    assert size_cal.part is None and size_cal.dims == [0], "a continuous factor reads continuous dims only"


def test_a_code_that_turns_with_the_class_is_looked_up_per_class_and_the_part_stays_one_hot() -> None:
    """Orientation tied as (cos k*theta, sin k*theta) with k set by the shape (square 4, ellipse 2, heart 1):
    one code per angle averaged over the shapes is right for none of them. Calibrated with the shape, every
    (shape, angle) request decodes to its own pair, and the shape's part is exactly its one-hot class."""
    symmetry = np.array([4, 2, 1])
    angles = [2 * np.pi * v / 8 for v in range(8)]
    layout = LatentLayout.model_validate({"continuous": 3, "categorical": [{"name": "shape", "classes": 3}]})
    specs = [
        FactorSpec(name="shape", values=["square", "ellipse", "heart"]),
        FactorSpec(name="orientation", values=angles),
        FactorSpec(name="posX", values=[0.0, 0.25, 0.5, 0.75, 1.0]),
    ]

    def codes_of(classes: np.ndarray, symmetry: np.ndarray = symmetry) -> np.ndarray:
        turned = symmetry[classes[:, 0]] * np.array(angles)[classes[:, 1]]  # (N,)
        continuous = np.stack([np.cos(turned), np.sin(turned), classes[:, 2] / 2 - 1], 1)  # (N, 3)
        return layout.flat(continuous, np.eye(3)[classes[:, 0]])

    rng = np.random.default_rng(0)
    classes = np.tile(np.indices((3, 8, 5)).reshape(3, -1).T, (10, 1))  # (1200, 3): every combination, 10 times
    additive = calibrate(codes_of(classes), classes, specs, layout=layout)
    source = CodeSource.from_function([3, 8, 5], codes_of, ["shape", "orientation", "posX"])
    # orientation's code turns with the shape, posX's does not
    assert class_dependence(additive, 0, 1, source, rng, draws=4) > 0.5
    assert class_dependence(additive, 0, 2, source, rng, draws=4) == pytest.approx(0.0, abs=1e-9)
    joint = calibrate_groups(additive, source, rng, draws=4)
    # posX joins as any group grows while its table stays small (3 x 8 x 5 combinations)
    assert [g.factors for g in joint.groups] == [["shape", "orientation", "posX"]]
    # a code that ignores the class forms no group: the part and each factor are looked up alone, as before
    alike = partial(codes_of, symmetry=np.ones(3, dtype=np.int64))  # every shape's angle code the same circle
    unturned = CodeSource.from_function([3, 8, 5], alike, ["shape", "orientation", "posX"])
    assert calibrate_groups(additive, unturned, rng, draws=4).groups == []
    worst_additive = 0.0
    for shape, angle, x in [(0, 1, 4), (1, 3, 0), (2, 5, 2), (2, 1, 1)]:
        request = {"shape": specs[0].values[shape], "orientation": angles[angle], "posX": specs[2].values[x]}
        expected = codes_of(np.array([[shape, angle, x]]))[0]
        assert latent_for(joint, request) == pytest.approx(expected, abs=1e-4)
        assert latent_for(joint, request)[3:].tolist() == np.eye(3)[shape].tolist()
        worst_additive = max(worst_additive, float(np.abs(latent_for(additive, request)[:2] - expected[:2]).max()))
    assert worst_additive > 0.5
