"""What is loaded: names, objectives, datasets, latent statistics, calibrations, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from service.artifact import CARD_DIR
from service.dependencies import RegistryDep
from service.errors import Rejected, shown
from service.schemas import BrokenInfo, ModelInfo, ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", summary="Every loaded model, the default, and the artifacts that failed to load")
async def list_models(registry: RegistryDep) -> ModelList:
    registry.check_files()
    return ModelList(
        default=registry.default,
        models=[ModelInfo.of(m.manifest, m.card) for m in registry.models.values()],
        broken=[BrokenInfo(folder=b.folder, error=b.error) for b in registry.all_broken()],
    )


@router.get("/{name}", summary="One model's manifest, less the file list")
async def get_model(name: str, registry: RegistryDep, request: Request) -> ModelInfo:
    model = registry.get(name)
    request.state.model = model.name
    return ModelInfo.of(model.manifest, model.card)


@router.get("/{name}/card/{file}", summary="A picture of the model card", response_class=FileResponse)
async def get_card_picture(name: str, file: str, registry: RegistryDep, request: Request) -> FileResponse:
    model = registry.get(name)
    request.state.model = model.name
    # Only the names listed at load time are served: no path from the request reaches the file system.
    if file not in model.card:
        raise Rejected(404, "file", f"one of {list(model.card)}", shown(file))
    path = model.folder / CARD_DIR / file
    if not path.is_file():  # deleted since the model was loaded: the listing is from load time
        raise Rejected(404, "file", f"a card picture still on disk in {model.folder.name}/{CARD_DIR}", shown(file))
    return FileResponse(path, media_type="image/png")
