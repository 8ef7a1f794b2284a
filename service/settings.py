"""The service's one configuration object, read from ``DISENTANGLE_*`` environment variables.

Validated once at start-up: a bad value stops the process with a message naming the variable, instead of
surfacing later as a failed request. List values may be given comma-separated
(``DISENTANGLE_CORS_ORIGINS=http://a.test,http://b.test``) or as JSON.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Annotated, Literal

import onnxruntime
from pydantic import DirectoryPath, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIB = 1 << 20
PREFIX = "DISENTANGLE_"
CPU_PROVIDER = "CPUExecutionProvider"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="forbid", frozen=True)

    model_dir: DirectoryPath = Field(default=Path("models"), description="folder of artifact folders")
    default_model: str | None = Field(default=None, description="else the first loaded model by name")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(
        default=1,
        ge=0,
        description="server processes sharing the port, each loading every model; 0 = one per CPU this "
        "process may use (affinity and cgroup quota); keep 1 where an orchestrator scales pods",
    )

    max_body_bytes: int = Field(default=16 * MIB, ge=1024, description="larger request bodies get a 413")
    max_latent_body_bytes: int = Field(
        default=2 * MIB,
        ge=1024,
        description="bodies of /decode, /traverse and /synthesize (latents and options, a base image); 413 above",
    )
    max_items: int = Field(default=256, ge=1, description="images or latents in one request")
    max_image_side: int = Field(default=1024, ge=8, description="pixels; larger uploads get a 413")
    max_request_pixels: int = Field(
        default=16 * MIB,
        ge=64 * 64,
        description="pixels decoded for one request, all its images together (each counted before it is decoded); 413",
    )
    upload_slots: int = Field(
        default=2, ge=1, description="large uploads (over 1 MiB) read and decoded at once; the rest wait their turn"
    )
    max_traverse_steps: int = Field(default=32, ge=2)

    batch_max_size: int = Field(default=64, ge=1, description="rows per onnxruntime run; 1 turns batching off")
    batch_max_wait_ms: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        description="how long the oldest queued request waits for company (holding an inference thread); "
        "0 batches only what queued during the last run",
    )
    queue_depth: int = Field(default=256, ge=1, description="requests waiting or running per model and network")
    admission_limit: int = Field(
        default=256, ge=1, description="inference requests parsed and in progress at once; later ones wait unread"
    )
    admission_backlog: int = Field(
        default=1024, ge=0, description="inference requests waiting for admission; past it a 429 before the body"
    )
    failures_until_unready: int = Field(
        default=3, ge=1, description="failed runs in a row after which a network makes /readyz answer 503"
    )
    inference_threads: int = Field(default=1, ge=1, description="threads that run batches, shared by all models")
    loop_batches: bool | None = Field(
        default=None,
        description="one-row requests that arrive together run as a batch on the event loop, not in an inference "
        "thread; default: where this process has less than two CPUs to itself (available CPUs / workers)",
    )
    intra_op_threads: int = Field(default=1, ge=0, description="onnxruntime threads per session; 0 = all cores")
    inter_op_threads: int = Field(default=1, ge=0)
    providers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [CPU_PROVIDER])

    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="also answer GET /healthz on this port, from a thread that no request backlog can hold up "
        "(service/liveness.py): point liveness probes here",
    )
    health_stale_s: float = Field(
        default=10.0, gt=0, description="the liveness port answers 503 once the event loop has not turned this long"
    )
    max_headers: int = Field(default=100, ge=16, description="header lines in one request; more get a 431")
    max_header_bytes: int = Field(
        default=32 * 1024, ge=4096, description="request line and headers together, in bytes; more get a 431"
    )
    header_timeout_s: float = Field(
        default=5.0, gt=0, description="a connection's request headers must be complete this long after it starts"
    )
    body_timeout_s: float = Field(
        default=5.0, gt=0, description="longest silence inside a request body before a 408 and a closed connection"
    )
    body_min_rate: float = Field(
        default=1024.0, ge=0, description="bytes/s a request body must average once body_grace_s has passed; 408"
    )
    body_grace_s: float = Field(default=5.0, ge=0, description="how long a body may start slowly")
    body_total_s: float = Field(default=120.0, gt=0, description="a request body must be complete within this; 408")
    shutdown_timeout_s: float = Field(
        default=5.0, ge=0, description="on SIGTERM, how long requests in flight may still run before they are cut"
    )

    api_key: SecretStr | None = Field(default=None, description="when set, every endpoint but health needs it")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names answered besides the loopback names and the bound address; others get a "
        "400. '*.example.com' matches its subdomains, '*' any host",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(default=True, description="one JSON line per request, at log level info")
    fast_paths: bool = Field(
        default=True,
        description="serve /decode, /encode and /synthesize as raw ASGI (same answers, a fraction of the "
        "per-request overhead); false sends them through FastAPI's routing like every other route",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: object) -> object:
        # pydantic-settings ignores environment variables that match no field, so a misspelt one
        # (DISENTANGLE_MAX_ITEM) would leave its setting at the default without a word.
        known = {PREFIX + name.upper() for name in cls.model_fields}
        for variable in sorted(os.environ):
            name = variable.upper()
            if name.startswith(PREFIX) and name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else f"; the settings are {', '.join(sorted(known))}"
                raise ValueError(f"unknown setting {variable}{hint}")
        return data

    @field_validator("providers", "cors_origins", "trusted_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("providers")
    @classmethod
    def _some_provider(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one onnxruntime execution provider, e.g. CPUExecutionProvider")
        available = onnxruntime.get_available_providers()
        missing = [name for name in value if name not in available]
        if missing:
            hint = "; GPU providers come with onnxruntime-gpu: pip install 'disentangle[gpu]' (docs/service.md, GPU)"
            raise ValueError(f"expected providers from {available}, received unavailable {missing}{hint}")
        return value
