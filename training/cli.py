"""Command line of the training half: ``disentangle-train fit | export | eval | judge | zoo``.

    disentangle-train fit --preset smoke --export-dir models/smoke
    disentangle-train fit --config configs/zoo/dsprites_beta_tcvae.toml --steps 20000 --resume
    disentangle-train export runs/smoke --out models/smoke
    disentangle-train judge --dataset digits --out judges/digits

Settings are layered: the dataclass defaults, then --preset, then --config (TOML), then flags.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from service.artifact import MANIFEST_NAME
from training.judge.train import JudgeConfig
from training.presets import PRESETS
from training.train import TrainConfig


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


def _add_config_flags(parser: argparse.ArgumentParser, config: type = TrainConfig) -> None:
    hints = typing.get_type_hints(config)
    for f in fields(config):
        if f.name == "dataset_params":
            continue
        kind = hints[f.name]
        default = f.default if f.default is not MISSING else None
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=_parse_bool if kind is bool else kind if kind in (int, float, str) else str,
            default=argparse.SUPPRESS,
            help=f"(default: {default})",
        )
    if config is not TrainConfig:
        return
    parser.add_argument(
        "--dataset-param", dest="dataset_params", action="append", type=_parse_param, default=argparse.SUPPRESS,
        metavar="KEY=VALUE", help="dataset option, e.g. --dataset-param root=/data/mnist (repeatable)",
    )  # fmt: skip


def build_config(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    if args.preset:
        values.update(PRESETS[args.preset])
    if args.config:
        with Path(args.config).open("rb") as f:
            values.update(tomllib.load(f))
    flags = {k: v for k, v in vars(args).items() if k in {f.name for f in fields(TrainConfig)}}
    if "dataset_params" in flags:
        flags["dataset_params"] = {**values.get("dataset_params", {}), **dict(flags["dataset_params"])}
    values.update(flags)
    return TrainConfig.from_dict(values)


def build_judge_config(args: argparse.Namespace) -> JudgeConfig:
    values: dict[str, Any] = {}
    if args.config:
        with Path(args.config).open("rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in vars(args).items() if k in {f.name for f in fields(JudgeConfig)}})
    return JudgeConfig.from_dict(values)


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


def run_eval(paths: list[Path], quick: bool, table_only: bool, judge_only: bool, judges: Path | None) -> None:
    from service.artifact import read_manifest, write_manifest
    from training.evaluate.table import markdown_table

    manifests = []
    for folder in artifact_folders(paths):
        if table_only:
            manifests.append(read_manifest(folder))
            continue
        from training.card import write_card, write_card_text
        from training.data import get_dataset
        from training.evaluate.artifact_eval import evaluate_artifact, judge_artifact
        from training.evaluate.onnx_model import OnnxModel

        if judge_only:
            print(f"judging {folder} ...", file=sys.stderr, flush=True)
            manifest = judge_artifact(folder, judges)
            write_manifest(folder, manifest)
            write_card_text(folder, manifest)
            manifests.append(manifest)
            continue
        print(f"evaluating {folder} ...", file=sys.stderr, flush=True)
        manifest, evaluation = evaluate_artifact(folder, quick=quick, judges=judges)
        write_manifest(folder, manifest)
        dataset = get_dataset(manifest.dataset.name, **manifest.dataset.params)
        write_card(folder, OnnxModel(folder), manifest, dataset, evaluation)
        manifests.append(manifest)
    print(markdown_table(manifests))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="disentangle-train", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="train a model (and export it with --export-dir)")
    fit.add_argument("--preset", choices=sorted(PRESETS), help="a named starting configuration")
    fit.add_argument("--config", type=Path, help="a TOML file of TrainConfig fields")
    fit.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
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
    evaluate.add_argument("--judges", type=Path, help="folder of factor judges by dataset (default: judges/)")

    judge = commands.add_parser("judge", help="train a dataset's factor judge (see training/judge/train.py)")
    judge.add_argument("--config", type=Path, help="a TOML file of JudgeConfig fields, e.g. configs/judge/digits.toml")
    _add_config_flags(judge, JudgeConfig)

    commands.add_parser("zoo", help="train and export several configs (see training/zoo.py)", add_help=False)

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["zoo"]:  # the zoo has its own flags; hand them over untouched
        from training.zoo import main as zoo_main

        return zoo_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "fit":
            from training.train import train

            train(build_config(args), resume=args.resume)
        elif args.command == "export":
            from training.export import export_run

            manifest = export_run(args.run_dir, args.out, name=args.name)
            print(f"wrote {args.out} ({manifest.name}, {manifest.latent_dim} latents)")
        elif args.command == "judge":
            from training.judge.train import train_judge

            judged = train_judge(build_judge_config(args), command=" ".join(["disentangle-train", *argv]))
            shown = ", ".join(f"{k} {v:.3g}" for k, v in judged.heldout["clean"].items())
            print(f"wrote {judged.config['out']} (held out: {shown})")
        elif args.command == "eval":
            if args.table_only and args.judge_only:
                raise ValueError("--table-only and --judge-only: expected one of them, received both")
            run_eval(args.paths, args.quick, args.table_only, args.judge_only, args.judges)
    except (ValueError, FileNotFoundError) as error:
        print(f"disentangle-train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
