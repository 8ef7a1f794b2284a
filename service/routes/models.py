"""What is loaded: names, objectives, datasets, latent statistics, calibrations, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.dependencies import RegistryDep
from service.schemas import BrokenInfo, ModelInfo, ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", summary="Every loaded model, the default, and the artifacts that failed to load")
async def list_models(registry: RegistryDep) -> ModelList:
    return ModelList(
        default=registry.default,
        models=[ModelInfo.of(m.manifest) for m in registry.models.values()],
        broken=[BrokenInfo(folder=b.folder, error=b.error) for b in registry.broken],
    )


@router.get("/{name}", summary="One model's manifest, less the file list")
async def get_model(name: str, registry: RegistryDep, request: Request) -> ModelInfo:
    model = registry.get(name)
    request.state.model = model.name
    return ModelInfo.of(model.manifest)
