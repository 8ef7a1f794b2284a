"""Command line of the training half: ``disentangle-train fit | export | zoo``.

    disentangle-train fit --preset smoke --export-dir models/smoke
    disentangle-train fit --config configs/zoo/dsprites_beta_tcvae.toml --steps 20000 --resume
    disentangle-train export runs/smoke --out models/smoke

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


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
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
    except (ValueError, FileNotFoundError) as error:
        print(f"disentangle-train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
