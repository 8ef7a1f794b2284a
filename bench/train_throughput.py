"""Training throughput: our loop against a bare PyTorch loop, and the render rate against consumption.

    python bench/train_throughput.py                 # conv and MLP, fp32 and bf16 where the CPU has it
    python bench/train_throughput.py --steps 300 --arch conv --precision bf16
    python bench/train_throughput.py --arch conv --objective joint_vae   # JointVAE, shape as a 3-class code
    python bench/train_throughput.py --arch infogan          # the digits InfoGAN's networks and step (D, then G+Q)

Both loops train the same model on the same batches with the same loss; the bare loop has the batches
rendered in memory beforehand and does nothing but forward, backward and step. Goals: ours / bare >= 0.9,
and the dataset renders >= 10x the images per second that training consumes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tomllib
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch

from training.checkpoints import LOG
from training.data import get_dataset
from training.infogan import InfoGANConfig, adversarial_step, build_infogan, parameter_groups, train_infogan
from training.models import VAE
from training.objectives import compute_loss
from training.run import bf16_supported, make_optimizer
from training.train import TrainConfig, build_model, train

# Dupont 2018's dSprites schedule (the values do not change the cost of a step)
JOINT_CAPACITIES = {"capacity_max": 40.0, "disc_capacity_max": 1.1, "capacity_gamma": 150.0}


def bare_loop(cfg: TrainConfig, batches: list[torch.Tensor], warmup: int) -> float:
    """Images/s of forward + loss + backward + step over pre-rendered batches, after ``warmup`` steps."""
    torch.manual_seed(cfg.seed)
    model: VAE = build_model(cfg, get_dataset(cfg.dataset))
    opt = make_optimizer(model.parameters(), cfg.lr)
    objective = cfg.objective_config(737_280)
    autocast: AbstractContextManager = (
        torch.autocast("cpu", dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    )
    start = 0.0
    for step, x in enumerate(batches):
        if step == warmup:
            start = time.perf_counter()
        with autocast:
            mu, logvar, category_logits, z, logits = model(x)
        loss, _ = compute_loss(objective, x, mu, logvar, z, logits, step, category_logits=category_logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (len(batches) - warmup) * cfg.batch_size / (time.perf_counter() - start)


def our_loop(cfg: TrainConfig, warmup: int) -> float:
    """Images/s from our loop's own log, leaving out the windows that cover the warm-up."""
    return rate_from_log(train(cfg), cfg.log_every, cfg.batch_size, warmup)


def rate_from_log(run_dir: Path, log_every: int, batch_size: int, warmup: int) -> float:
    records = [json.loads(line) for line in (run_dir / LOG).open()]
    steady = [r for r in records if r["step"] > warmup]
    seconds = sum(log_every * batch_size / r["images_per_s"] for r in steady)
    return len(steady) * log_every * batch_size / seconds


def bare_infogan_loop(cfg: InfoGANConfig, batches: list[torch.Tensor], warmup: int) -> float:
    """Images/s of InfoGAN's update (D, then G and Q) over pre-rendered batches, after ``warmup`` steps."""
    torch.manual_seed(cfg.seed)
    model = build_infogan(cfg, get_dataset(cfg.dataset))
    d_params, g_params = parameter_groups(model)
    opt_d, opt_g = (
        make_optimizer(d_params, cfg.lr_d, (cfg.beta1, cfg.beta2)),
        make_optimizer(g_params, cfg.lr_g, (cfg.beta1, cfg.beta2)),
    )
    autocast: AbstractContextManager = (
        torch.autocast("cpu", dtype=torch.bfloat16) if cfg.precision == "bf16" else nullcontext()
    )
    start = 0.0
    for step, x in enumerate(batches):
        if step == warmup:
            start = time.perf_counter()
        adversarial_step(cfg, model, opt_d, opt_g, x, step, autocast)
    return (len(batches) - warmup) * cfg.batch_size / (time.perf_counter() - start)


def infogan_config(tmp: str, precision: str, steps: int, batch_size: int) -> InfoGANConfig:
    """The zoo's digits InfoGAN, sample grids off (they are drawn every 1,000 steps there)."""
    with (Path(__file__).parents[1] / "configs" / "zoo" / "digits_infogan.toml").open("rb") as f:
        values = tomllib.load(f)
    values.update(
        name=f"infogan-{precision}", precision=precision, batch_size=batch_size, steps=steps, log_every=20,
        checkpoint_every=steps, sample_every=0, out_dir=str(Path(tmp) / "runs"),
    )  # fmt: skip
    return InfoGANConfig.from_dict(values)


def render_rate(dataset_name: str, batch_size: int, repeats: int = 200) -> float:
    dataset = get_dataset(dataset_name)
    rng = np.random.default_rng(0)
    indices = [rng.integers(0, len(dataset), size=batch_size) for _ in range(repeats)]
    dataset.images(indices[0])
    start = time.perf_counter()
    for batch in indices:
        dataset.images(batch)
    return repeats * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--arch", choices=["conv", "mlp", "infogan"], action="append")
    parser.add_argument("--precision", choices=["fp32", "bf16"], action="append")
    parser.add_argument("--objective", default="beta_tcvae")
    parser.add_argument("--categorical", default="", help="categorical parts (joint_vae's default: shape:3)")
    args = parser.parse_args()
    categorical = args.categorical or ("shape:3" if args.objective == "joint_vae" else "")
    archs = args.arch or ["conv", "mlp"]
    precisions = args.precision or (["fp32", "bf16"] if bf16_supported(torch.device("cpu")) else ["fp32"])

    dataset = get_dataset("dsprites")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.steps} steps ({args.warmup} warm-up), objective {args.objective} {categorical}")  # fmt: skip
    print(f"{'model':<7} {'precision':<9} {'bare img/s':>10} {'ours img/s':>10} {'ours/bare':>9}")
    consumed = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            for precision in precisions:
                if arch == "infogan":
                    gan = infogan_config(tmp, precision, args.steps, args.batch_size)
                    digits = get_dataset(gan.dataset)
                    rng = np.random.default_rng([gan.seed, 0])
                    real = [
                        torch.from_numpy(digits.images(rng.integers(0, len(digits), size=gan.batch_size)))
                        for _ in range(args.steps)
                    ]
                    bare = bare_infogan_loop(gan, real, args.warmup)
                    ours = rate_from_log(train_infogan(gan), gan.log_every, gan.batch_size, args.warmup)
                    consumed.append(ours)
                    print(f"{arch:<7} {precision:<9} {bare:>10.0f} {ours:>10.0f} {ours / bare:>9.2f}")
                    continue
                cfg = TrainConfig(
                    name=f"{arch}-{precision}", architecture=arch, precision=precision, objective=args.objective,
                    beta=6.0, categorical=categorical, **(JOINT_CAPACITIES if categorical else {}),
                    batch_size=args.batch_size, steps=args.steps, log_every=20,
                    checkpoint_every=args.steps, out_dir=str(Path(tmp) / "runs"),
                )  # fmt: skip
                rng = np.random.default_rng([cfg.seed, 0])
                batches = [
                    torch.from_numpy(dataset.images(rng.integers(0, len(dataset), size=cfg.batch_size)))
                    for _ in range(args.steps)
                ]
                bare = bare_loop(cfg, batches, args.warmup)
                ours = our_loop(cfg, args.warmup)
                consumed.append(ours)
                print(f"{arch:<7} {precision:<9} {bare:>10.0f} {ours:>10.0f} {ours / bare:>9.2f}")

    for name in ("dsprites", "digits"):
        rate = render_rate(name, args.batch_size)
        print(f"render {name}: {rate:,.0f} img/s = {rate / max(consumed):.1f}x the fastest training loop above")


if __name__ == "__main__":
    main()
