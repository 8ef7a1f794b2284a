"""One comparison table over evaluated artifacts, as Markdown (what the README pastes)."""

from __future__ import annotations

from collections.abc import Sequence

from service.artifact import Manifest

COLUMNS = (
    "model", "objective", "beta", "MIG", "FactorVAE", "DCI-D", "recon", "active", "synthesis", "images", "min", "on",
)  # fmt: skip


def _number(value: object, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("-" if value is None else str(value))


def row(manifest: Manifest) -> list[str]:
    m = manifest.metrics
    h = manifest.hyperparameters
    beta: object = h.get("beta")
    if manifest.objective == "beta_vae" and float(h.get("capacity_max", 0) or 0) > 0:
        beta = f"C={h['capacity_max']}"
    synthesis = m.get("synthesis_iou", m.get("synthesis_corr"))
    estimator = f"{h['estimator']}, memory {h['tc_memory']}" if h.get("tc_memory") else h.get("estimator")
    return [
        manifest.name,
        manifest.objective + (f" ({estimator})" if estimator else ""),
        _number(beta, 1) if isinstance(beta, float) else str(beta or "-"),
        _number(m.get("mig")),
        _number(m.get("factor_vae")),
        _number(m.get("dci.disentanglement")),
        _number(m.get("recon_bce", m.get("recon_mse")), 1),
        _number(m.get("active_dims")),
        _number(synthesis),
        f"{manifest.training.images_seen / 1e6:.1f}M",
        f"{manifest.training.wall_time_s / 60:.1f}",
        manifest.training.device.split(":")[0],  # the wall time means little without the device: cpu or cuda
    ]


def markdown_table(manifests: Sequence[Manifest]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(m)) + " |" for m in manifests]
    return "\n".join(lines)
