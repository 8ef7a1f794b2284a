"""The Python client other apps import instead of writing HTTP requests by hand.

    from service.client import Client
    with Client("http://127.0.0.1:8000") as client:
        mu, logvar = client.encode([Image.open("shape.png")])
        images = client.decode(mu)                     # list of PIL images
        grid = client.traverse(latent=mu[0], steps=9)  # one PIL image, rows = dims
        # models with categorical latent parts (JointVAE: {"digit": 10 classes})
        probabilities = client.probabilities([Image.open("seven.png")])   # {"digit": (B, 10)}
        images = client.decode([[0.0] * 6], categorical={"digit": [7]})   # continuous values + a class per part
        row = client.traverse(part="digit")                                # one column per class
        # models with a factor calibration: named factors in, or an image redrawn with some of them changed
        image, latent = client.synthesize({"digit": 7, "rotation": 30})
        edits = client.edit([Image.open("three.png")], {"scale": 0.7, "posY": 0.0, "rotation": 30})
        edits.images[0], edits.read[0]                  # the redrawn 3, and what the model read from the original

``AsyncClient`` has the same methods as coroutines. Every error the service returns is raised as
``ServiceError``, carrying the service's message. Latents travel as raw float32, not JSON.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx
import numpy as np
from PIL import Image

T = TypeVar("T")
ImageLike = Image.Image | bytes | str | Path | np.ndarray
"""A PIL image, PNG/JPEG bytes, a path to one, or a float array (C, H, W) or (H, W) in [0, 1]."""

BINARY = "application/octet-stream"


class ServiceError(Exception):
    """A request the service refused or failed; ``str()`` is the service's own message."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.field = (body or {}).get("field")
        self.expected = (body or {}).get("expected")
        self.received = (body or {}).get("received")


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request and how to read its answer, shared by the sync and async clients."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    answers: tuple[int, ...] = ()  # error statuses that answer the question rather than fail it


def _image_payload(image: ImageLike) -> str | list[Any]:
    if isinstance(image, np.ndarray):
        return np.asarray(image, dtype=np.float32).tolist()
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    elif isinstance(image, bytes):
        data = image
    else:
        data = Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _picture(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def _pictures(response: httpx.Response) -> list[Image.Image]:
    return [_picture(base64.b64decode(text)) for text in response.json()["images"]]


def _latent_rows(latents: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    rows = np.asarray(latents, dtype="<f4")
    return rows[None] if rows.ndim == 1 else rows


def _binary_latents(latents: Sequence[Sequence[float]] | np.ndarray, model: str | None) -> dict[str, Any]:
    rows = _latent_rows(latents)
    params = {"model": model} if model else {}
    headers = {"Content-Type": BINARY, "X-Shape": ",".join(map(str, rows.shape))}
    return {"content": rows.tobytes(), "params": params, "headers": headers}


def _float32(response: httpx.Response) -> np.ndarray:
    shape = tuple(int(n) for n in response.headers["x-shape"].split(","))
    return np.frombuffer(response.content, dtype="<f4").reshape(shape).copy()


def _encode(images: Sequence[ImageLike], model: str | None, resize: bool, seed: int | None, sample: bool) -> dict:
    body: dict[str, Any] = {"images": [_image_payload(i) for i in images], "resize": resize, "sample": sample}
    if model:
        body["model"] = model
    if seed is not None:
        body["seed"] = seed
    return body


def _probabilities(response: httpx.Response) -> dict[str, np.ndarray]:
    parts = response.json().get("probabilities") or {}
    return {name: np.asarray(rows, dtype=np.float32) for name, rows in parts.items()}


def _categorical_decode(
    latents: Sequence[Sequence[float]] | np.ndarray,
    categorical: dict[str, Sequence[int | Sequence[float]]],
    model: str | None,
) -> dict[str, Any]:
    rows = _latent_rows(latents).tolist()
    parts = {
        name: [int(e) if isinstance(e, int | np.integer) else np.asarray(e, dtype=np.float32).tolist() for e in entries]
        for name, entries in categorical.items()
    }
    return {"latents": rows, "categorical": parts} | ({"model": model} if model else {})


def _mu_logvar(response: httpx.Response) -> tuple[np.ndarray, np.ndarray]:
    data = response.json()
    return np.asarray(data["mu"], dtype=np.float32), np.asarray(data["logvar"], dtype=np.float32)


def _traverse(
    fmt: str,
    model: str | None,
    latent: Sequence[float] | np.ndarray | None,
    image: ImageLike | None,
    dims: Sequence[int] | None,
    value_range: tuple[float, float] | None,
    steps: int,
    part: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"steps": steps, "format": fmt}
    if part is not None:
        body["part"] = part
    if model:
        body["model"] = model
    if latent is not None:
        body["latent"] = np.asarray(latent, dtype=np.float32).tolist()
    if image is not None:
        payload = _image_payload(image)
        if not isinstance(payload, str):
            raise TypeError("traverse's image must be a picture (PIL image, bytes or path), not an array")
        body["image"] = payload
    if dims is not None:
        body["dims"] = list(dims)
    if value_range is not None:
        body["range"] = list(value_range)
    return body


def _synthesis(response: httpx.Response) -> tuple[Image.Image, np.ndarray]:
    data = response.json()
    return _picture(base64.b64decode(data["image"])), np.asarray(data["latent"], dtype=np.float32)


@dataclass(frozen=True)
class Edits:
    """What /edit answers: per image, the edit, what the model read from the original, both latents."""

    images: list[Image.Image]
    read: list[dict[str, float | str]]  # every factor the model carries, as read from each original
    base: np.ndarray  # (B, d) each original's latent
    latents: np.ndarray  # (B, d) each edit's latent, the one decoded
    probabilities: dict[str, np.ndarray]  # per categorical part, (B, K) each original's class probabilities


def _edits(response: httpx.Response) -> Edits:
    data = response.json()
    return Edits(
        images=_pictures(response),
        read=data["read"],
        base=np.asarray(data["base"], dtype=np.float32),
        latents=np.asarray(data["latents"], dtype=np.float32),
        probabilities=_probabilities(response),
    )


class _Calls:
    """Builds every call; the two clients differ only in how they send one."""

    @staticmethod
    def models() -> _Call[dict[str, Any]]:
        return _Call("GET", "/models", lambda r: r.json())

    @staticmethod
    def model(name: str) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/models/{name}", lambda r: r.json())

    @staticmethod
    def ready() -> _Call[bool]:
        return _Call("GET", "/readyz", lambda r: r.status_code == 200, answers=(503,))

    @staticmethod
    def encode(images: Sequence[ImageLike], model: str | None, resize: bool) -> _Call[tuple[np.ndarray, np.ndarray]]:
        return _Call("POST", "/encode", _mu_logvar, json=_encode(images, model, resize, None, False))

    @staticmethod
    def probabilities(images: Sequence[ImageLike], model: str | None, resize: bool) -> _Call[dict[str, np.ndarray]]:
        return _Call("POST", "/encode", _probabilities, json=_encode(images, model, resize, None, False))

    @staticmethod
    def sample(images: Sequence[ImageLike], model: str | None, resize: bool, seed: int | None) -> _Call[np.ndarray]:
        body = _encode(images, model, resize, seed, True)
        return _Call("POST", "/encode", lambda r: np.asarray(r.json()["z"], dtype=np.float32), json=body)

    @staticmethod
    def decode(
        latents: Sequence[Sequence[float]] | np.ndarray,
        model: str | None,
        categorical: dict[str, Sequence[int | Sequence[float]]] | None = None,
    ) -> _Call[list[Image.Image]]:
        if categorical is not None:  # class indices travel as JSON; flat latents as raw float32
            return _Call("POST", "/decode", _pictures, json=_categorical_decode(latents, categorical, model))
        return _Call("POST", "/decode", _pictures, **_binary_latents(latents, model))

    @staticmethod
    def decode_arrays(latents: Sequence[Sequence[float]] | np.ndarray, model: str | None) -> _Call[np.ndarray]:
        call = _binary_latents(latents, model)
        call["headers"]["Accept"] = BINARY
        return _Call("POST", "/decode", _float32, **call)

    @staticmethod
    def traverse(fmt: str, *args: Any) -> _Call[Any]:
        parse: Callable[[httpx.Response], Any] = (
            (lambda r: r.content) if fmt == "gif" else (lambda r: _picture(r.content))
        )
        return _Call("POST", "/traverse", parse, json=_traverse(fmt, *args))

    @staticmethod
    def synthesize(factors: dict[str, float | str], model: str | None) -> _Call[tuple[Image.Image, np.ndarray]]:
        body: dict[str, Any] = {"factors": factors} | ({"model": model} if model else {})
        return _Call("POST", "/synthesize", _synthesis, json=body)

    @staticmethod
    def edit(
        images: Sequence[ImageLike], factors: dict[str, float | str] | None, model: str | None, resize: bool
    ) -> _Call[Edits]:
        body = {"images": [_image_payload(i) for i in images], "factors": factors or {}, "resize": resize}
        return _Call("POST", "/edit", _edits, json=body | ({"model": model} if model else {}))


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message = str(body.get("detail", body))
    except ValueError:
        body, message = None, response.text or response.reason_phrase
    raise ServiceError(response.status_code, message, body if isinstance(body, dict) else None)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class Client:
    """Synchronous client. Use as a context manager, or call ``close()``."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url, headers=_headers(api_key), timeout=timeout)

    def _send(self, call: _Call[T]) -> T:
        response = self._http.request(
            call.method,
            call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=call.headers,
        )
        if response.status_code not in call.answers:
            _check(response)
        return call.parse(response)

    def models(self) -> dict[str, Any]:
        """``{"default": name, "models": [manifest summaries], "broken": [...]}``."""
        return self._send(_Calls.models())

    def model(self, name: str) -> dict[str, Any]:
        return self._send(_Calls.model(name))

    def ready(self) -> bool:
        return self._send(_Calls.ready())

    def encode(
        self, images: Sequence[ImageLike], model: str | None = None, resize: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar), each (B, d)."""
        return self._send(_Calls.encode(images, model, resize))

    def probabilities(
        self, images: Sequence[ImageLike], model: str | None = None, resize: bool = False
    ) -> dict[str, np.ndarray]:
        """Per categorical part of the model's layout, (B, K) class probabilities; {} for a model without."""
        return self._send(_Calls.probabilities(images, model, resize))

    def sample(
        self,
        images: Sequence[ImageLike],
        model: str | None = None,
        resize: bool = False,
        seed: int | None = None,
    ) -> np.ndarray:
        """z ~ q(z | image), (B, d) flat latents (a drawn class per categorical part); the same seed gives the
        same samples."""
        return self._send(_Calls.sample(images, model, resize, seed))

    def decode(
        self,
        latents: Sequence[Sequence[float]] | np.ndarray,
        model: str | None = None,
        categorical: dict[str, Sequence[int | Sequence[float]]] | None = None,
    ) -> list[Image.Image]:
        """Flat latents (B, d); or, with ``categorical`` ({part: a class index or K probabilities per latent}),
        only the continuous and noise values of each latent."""
        return self._send(_Calls.decode(latents, model, categorical))

    def decode_arrays(self, latents: Sequence[Sequence[float]] | np.ndarray, model: str | None = None) -> np.ndarray:
        """(B, C, H, W) float32 in [0, 1], exactly as the decoder produced them."""
        return self._send(_Calls.decode_arrays(latents, model))

    def traverse(
        self,
        latent: Sequence[float] | np.ndarray | None = None,
        image: ImageLike | None = None,
        dims: Sequence[int] | None = None,
        value_range: tuple[float, float] | None = None,
        steps: int = 7,
        model: str | None = None,
        part: str | None = None,
    ) -> Image.Image:
        """One grid image: a row per dimension, a column per step; or, with ``part``, one row with a column per
        class of that categorical part."""
        return self._send(_Calls.traverse("grid", model, latent, image, dims, value_range, steps, part))

    def traverse_gif(
        self,
        latent: Sequence[float] | np.ndarray | None = None,
        image: ImageLike | None = None,
        dims: Sequence[int] | None = None,
        value_range: tuple[float, float] | None = None,
        steps: int = 7,
        model: str | None = None,
    ) -> bytes:
        return self._send(_Calls.traverse("gif", model, latent, image, dims, value_range, steps))

    def synthesize(self, factors: dict[str, float | str], model: str | None = None) -> tuple[Image.Image, np.ndarray]:
        """(image, the latent the service used)."""
        return self._send(_Calls.synthesize(factors, model))

    def edit(
        self,
        images: Sequence[ImageLike],
        factors: dict[str, float | str] | None = None,
        model: str | None = None,
        resize: bool = False,
    ) -> Edits:
        """Each image redrawn with the named ``factors`` changed and the rest of it kept; no factors: the
        model's reading of each image and its reconstruction."""
        return self._send(_Calls.edit(images, factors, model, resize))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same methods as ``Client``, as coroutines."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=url, headers=_headers(api_key), timeout=timeout)

    async def _send(self, call: _Call[T]) -> T:
        response = await self._http.request(
            call.method,
            call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=call.headers,
        )
        if response.status_code not in call.answers:
            _check(response)
        return call.parse(response)

    async def models(self) -> dict[str, Any]:
        return await self._send(_Calls.models())

    async def model(self, name: str) -> dict[str, Any]:
        return await self._send(_Calls.model(name))

    async def ready(self) -> bool:
        return await self._send(_Calls.ready())

    async def encode(
        self, images: Sequence[ImageLike], model: str | None = None, resize: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        return await self._send(_Calls.encode(images, model, resize))

    async def probabilities(
        self, images: Sequence[ImageLike], model: str | None = None, resize: bool = False
    ) -> dict[str, np.ndarray]:
        return await self._send(_Calls.probabilities(images, model, resize))

    async def sample(
        self,
        images: Sequence[ImageLike],
        model: str | None = None,
        resize: bool = False,
        seed: int | None = None,
    ) -> np.ndarray:
        return await self._send(_Calls.sample(images, model, resize, seed))

    async def decode(
        self,
        latents: Sequence[Sequence[float]] | np.ndarray,
        model: str | None = None,
        categorical: dict[str, Sequence[int | Sequence[float]]] | None = None,
    ) -> list[Image.Image]:
        return await self._send(_Calls.decode(latents, model, categorical))

    async def decode_arrays(
        self, latents: Sequence[Sequence[float]] | np.ndarray, model: str | None = None
    ) -> np.ndarray:
        return await self._send(_Calls.decode_arrays(latents, model))

    async def traverse(
        self,
        latent: Sequence[float] | np.ndarray | None = None,
        image: ImageLike | None = None,
        dims: Sequence[int] | None = None,
        value_range: tuple[float, float] | None = None,
        steps: int = 7,
        model: str | None = None,
        part: str | None = None,
    ) -> Image.Image:
        return await self._send(_Calls.traverse("grid", model, latent, image, dims, value_range, steps, part))

    async def traverse_gif(
        self,
        latent: Sequence[float] | np.ndarray | None = None,
        image: ImageLike | None = None,
        dims: Sequence[int] | None = None,
        value_range: tuple[float, float] | None = None,
        steps: int = 7,
        model: str | None = None,
    ) -> bytes:
        return await self._send(_Calls.traverse("gif", model, latent, image, dims, value_range, steps))

    async def synthesize(
        self, factors: dict[str, float | str], model: str | None = None
    ) -> tuple[Image.Image, np.ndarray]:
        return await self._send(_Calls.synthesize(factors, model))

    async def edit(
        self,
        images: Sequence[ImageLike],
        factors: dict[str, float | str] | None = None,
        model: str | None = None,
        resize: bool = False,
    ) -> Edits:
        return await self._send(_Calls.edit(images, factors, model, resize))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
