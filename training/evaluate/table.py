"""The comparison tables over evaluated artifacts, as Markdown (what the README pastes).

The first table has one row per model; ``asked-for`` is the headline synthesis figure: how often the factor
judge reads the asked-for class of the dataset's categorical factor (shape, digit) in what ``/synthesize``
draws. ``MIG cont.`` is MIG over the continuous factors alone: a categorical factor held by a categorical code
spreads over its class probabilities, each of which tells about as much of it as the next, so that factor's
own MIG gap is near zero however well the code holds it. Then one table per judged dataset: every factor's
asked-for accuracy or mean error in its unit.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.manifest import Manifest
from training.evaluate.judged_synthesis import judged_factors
from training.families import family_of

COLUMNS = (
    "model", "objective", "beta", "MIG", "MIG cont.", "FactorVAE", "DCI-D", "recon", "active", "asked-for",
    "synthesis", "images", "min", "on",
)  # fmt: skip


def _number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("-" if value is None else str(value))


def asked_for(manifest: Manifest) -> str:
    """The judged accuracy of each categorical factor, e.g. ``shape 0.412``; ``-`` before judging."""
    cells = [f"{name} {value:.3f}" for name, value, unit in judged_factors(manifest.metrics) if unit == "accuracy"]
    return ", ".join(cells) or "-"


def mig_continuous(manifest: Manifest) -> float | None:
    """The mean MIG gap over the factors the judge reads as continuous; None before judging or MIG."""
    names = [name for name, _, unit in judged_factors(manifest.metrics) if unit != "accuracy"]
    gaps = [manifest.metrics.get(f"mig.gap.{name}") for name in names]
    if not gaps or not all(isinstance(gap, float) for gap in gaps):
        return None
    return sum(gaps) / len(gaps)  # type: ignore[arg-type]


def row(manifest: Manifest) -> list[str]:
    m = manifest.metrics
    h = manifest.hyperparameters
    beta = family_of(manifest.objective).beta_column(h)
    synthesis = m.get("synthesis_iou", m.get("synthesis_corr"))
    estimator = f"{h['estimator']}, memory {h['tc_memory']}" if h.get("tc_memory") else h.get("estimator")
    # A model trained with few labels says so beside the unsupervised ones (Locatello et al. 2020's setting).
    notes = [str(estimator)] if estimator else []
    if float(h.get("label_fraction", 0) or 0) > 0:
        notes.append(f"{float(h['label_fraction']):.0%} labels")
    return [
        manifest.name,
        manifest.objective + (f" ({', '.join(notes)})" if notes else ""),
        _number(beta, 1) if isinstance(beta, float) else str(beta or "-"),
        _number(m.get("mig")),
        _number(mig_continuous(manifest)),
        _number(m.get("factor_vae")),
        _number(m.get("dci.disentanglement")),
        _number(m.get("recon_bce", m.get("recon_mse")), 1),
        _number(m.get("active_dims")),
        asked_for(manifest),
        _number(synthesis),
        f"{manifest.training.images_seen / 1e6:.1f}M",
        f"{manifest.training.wall_time_s / 60:.1f}",
        manifest.training.device.split(":")[0],  # the wall time means little without the device: cpu or cuda
    ]


def _markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def judged_tables(manifests: Sequence[Manifest]) -> list[str]:
    """One table per dataset whose models were judged: a column per factor, in the factor's unit."""
    lines: list[str] = []
    for dataset in sorted({m.dataset.name for m in manifests}):
        judged = [(m, judged_factors(m.metrics)) for m in manifests if m.dataset.name == dataset]
        judged = [(m, figures) for m, figures in judged if figures]
        if not judged:
            continue
        header = [
            name if unit == name else f"{name} ({'acc' if unit == 'accuracy' else unit})"
            for name, _, unit in judged[0][1]
        ]
        rows = [[m.name, *(_number(v, 3 if u == "accuracy" else 2) for _, v, u in figures)] for m, figures in judged]
        lines += ["", f"Asked-for, {dataset} (judged `/synthesize` images per model):", ""]
        lines += _markdown(["model", *header], rows)
    return lines


def markdown_table(manifests: Sequence[Manifest]) -> str:
    lines = _markdown(COLUMNS, [row(m) for m in manifests])
    return "\n".join(lines + judged_tables(manifests))
