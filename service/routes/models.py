"""What is loaded: names, objectives, datasets, latent statistics, calibrations, metrics."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response

from contract.manifest import CARD_DIR
from service.dependencies import RegistryDep
from service.errors import NotFound, error_responses, shown
from service.schemas import BrokenInfo, ModelHealth, ModelInfo, ModelList

router = APIRouter(prefix="/models", tags=["models"])
PICTURE = {"type": "string", "format": "binary"}


@router.get("", summary="Every loaded model, the default, and the artifacts that failed to load")
async def list_models(registry: RegistryDep) -> ModelList:
    registry.check_files()
    return ModelList(
        default=registry.default,
        models=[ModelInfo.of(m.manifest, m.bounds, m.card) for m in registry.models.values()],
        broken=[BrokenInfo(folder=b.folder, error=b.error) for b in registry.all_broken()],
        health={name: ModelHealth.of(registry.model_problem(name)) for name in registry.models},
    )


@router.get("/{name}", summary="One model's manifest, less the file list", responses=error_responses(404, 422))
async def get_model(name: str, registry: RegistryDep, request: Request) -> ModelInfo:
    model = registry.get(name)
    request.state.model = model.name
    return ModelInfo.of(model.manifest, model.bounds, model.card)


@router.get(
    "/{name}/card/{file}",
    summary="A picture of the model card",
    response_class=Response,
    responses=error_responses(404, 422) | {200: {"content": {"image/png": {"schema": PICTURE}}}},
)
async def get_card_picture(name: str, file: str, registry: RegistryDep, request: Request) -> Response:
    model = registry.get(name)
    request.state.model = model.name
    # Only the names listed at load time are served: no path from the request reaches the file system.
    if file not in model.card:
        raise NotFound("file", f"one of {list(model.card)}", shown(file))
    # Read whole (a card picture is tens of kilobytes) so that a file deleted since start-up is a 404 here,
    # where FileResponse would find it gone only while sending, too late for anything but a 500.
    try:
        picture = await anyio.Path(model.folder / CARD_DIR / file).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound("file", "a card picture still on disk", f"{file!r}, deleted since start-up") from None
    return Response(picture, media_type="image/png")
