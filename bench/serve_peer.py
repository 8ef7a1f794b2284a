"""The peer that bench/serve_load.py measures the service against: a plain FastAPI + onnxruntime server.

    python bench/serve_peer.py --artifact models/dsprites_beta_tcvae --port 8001

What a developer writes first: pydantic bodies and `UploadFile` parameters, `def` endpoints (FastAPI runs them
in its thread pool), onnxruntime sessions with their default options, uvicorn at its defaults (access log on).
It answers the benchmark's requests with the same bytes as the service (same decoder.onnx, same PNG writer),
so that the two differ only in how they serve. No limits, no API key, no batching, no metrics.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, File, Request, Response, UploadFile
from PIL import Image
from pydantic import BaseModel

from contract.calibration import latent_for
from contract.grid import tile
from contract.images import to_pixels
from contract.manifest import DECODER_FILE, ENCODER_FILE, read_manifest
from service.imaging import b64, png, pngs
from service.payloads import json_bytes


class DecodeBody(BaseModel):
    latents: list[list[float]]


class SynthesizeBody(BaseModel):
    factors: dict[str, float | str]


class TraverseBody(BaseModel):
    dims: list[int]
    steps: int
    range: tuple[float, float]


def create_peer(artifact: Path) -> FastAPI:
    manifest = read_manifest(artifact)
    decoder = ort.InferenceSession(str(artifact / DECODER_FILE), providers=["CPUExecutionProvider"])
    encoder = ort.InferenceSession(str(artifact / ENCODER_FILE), providers=["CPUExecutionProvider"])
    app = FastAPI()

    def decode_rows(z: np.ndarray) -> np.ndarray:
        images: np.ndarray = decoder.run(None, {"z": z})[0]
        return images

    @app.post("/decode")
    def decode(body: DecodeBody, request: Request) -> Response:
        images = decode_rows(np.asarray(body.latents, dtype=np.float32))
        if "image/png" in request.headers.get("accept", ""):
            return Response(png(to_pixels(images)[0]), media_type="image/png")
        payload = {"model": manifest.name, "images": [b64(p) for p in pngs(images)]}
        return Response(json_bytes(payload), media_type="application/json")

    @app.post("/encode")
    def encode(images: Annotated[list[UploadFile], File()]) -> Response:
        mode = "L" if manifest.image_shape[0] == 1 else "RGB"
        arrays = []
        for upload in images:
            pixels = np.asarray(Image.open(io.BytesIO(upload.file.read())).convert(mode), dtype=np.float32) / 255.0
            arrays.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
        mu, logvar = encoder.run(None, {"image": np.stack(arrays)})
        latent = manifest.layout.reconstruction(mu).tolist()
        payload = {"model": manifest.name, "mu": mu.tolist(), "logvar": logvar.tolist(), "latent": latent, "z": None}
        return Response(json_bytes(payload), media_type="application/json")

    @app.post("/synthesize")
    def synthesize(body: SynthesizeBody) -> Response:
        assert manifest.calibration is not None
        latent = latent_for(manifest.calibration, body.factors)
        return Response(png(to_pixels(decode_rows(latent[None]))[0]), media_type="image/png")

    @app.post("/traverse")
    def traverse(body: TraverseBody) -> Response:
        values = np.linspace(*body.range, body.steps, dtype=np.float32)
        latents = np.zeros((len(body.dims), body.steps, manifest.latent_dim), dtype=np.float32)
        for r, j in enumerate(body.dims):
            latents[r, :, j] = values
        images = decode_rows(latents.reshape(-1, manifest.latent_dim))
        grid = tile(images.reshape(len(body.dims), body.steps, *images.shape[1:]))
        return Response(png(grid), media_type="image/png")

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_peer(args.artifact), host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
