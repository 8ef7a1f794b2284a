"""The model families: each objective's config, training loop, export adapter and evaluation hooks, in one
registry. The CLI, the export and the evaluation look a family up here; no other place compares an objective's
name. Adding a family is one module (config, loop, adapter) and one line in ``FAMILIES`` (docs/families.md).

    family = family_of("infogan")
    run_dir = family.train(family.config.from_dict(values), Launch())
    manifest = export_artifact(family.adapter(state, run_dir), ...)     # training/export.py does this
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training import infogan, infogan_export, objectives, train, vae_export
from training.artifact import ExportAdapter
from training.run import Launch, ModelRunConfig


@dataclass(frozen=True)
class Family:
    """One model family. ``objectives`` is read when asked (a new objective of the family shows up at once);
    ``train(config, launch)`` returns the run folder; ``adapter(checkpoint state, run folder)`` what the export
    pipeline needs. Evaluation hooks: ``posterior``, whether the encoder is a posterior held against a prior (so
    KL, active dims by KL and the TC of q(z) apply); ``beta_column``, the table's regulariser cell from a
    manifest's hyperparameters."""

    name: str
    objectives: Callable[[], tuple[str, ...]]
    config: type[ModelRunConfig]
    train: Callable[[Any, Launch], Path]
    adapter: Callable[[dict[str, Any], Path], ExportAdapter]
    posterior: bool = True
    beta_column: Callable[[dict[str, Any]], object] = lambda hyperparameters: None


def _vae_beta(hyperparameters: dict[str, Any]) -> object:
    """beta where the objective weighed it (the manifest records only the settings its objective reads), or
    C=capacity for a beta-VAE annealed by capacity."""
    if float(hyperparameters.get("capacity_max", 0) or 0) > 0 and "continuous_penalty" not in hyperparameters:
        return f"C={hyperparameters['capacity_max']}"
    return hyperparameters.get("beta")


FAMILIES: list[Family] = [
    Family(
        "the VAE family", lambda: objectives.OBJECTIVES, train.TrainConfig, train.train, vae_export.adapter,
        beta_column=_vae_beta,
    ),
    Family(
        "InfoGAN", lambda: ("infogan",), infogan.InfoGANConfig, infogan.train_infogan, infogan_export.adapter,
        posterior=False,
    ),
]  # fmt: skip


def all_objectives() -> tuple[str, ...]:
    return tuple(name for family in FAMILIES for name in family.objectives())


def family_for(values: dict[str, Any]) -> Family:
    """The family of a config's values; one that names no objective is the first family's default one."""
    return family_of(values.get("objective") or FAMILIES[0].config.objective)


def family_of(objective: str) -> Family:
    for family in FAMILIES:
        if objective in family.objectives():
            return family
    raise ValueError(f"objective must be one of {', '.join(all_objectives())}, got {objective!r}")
