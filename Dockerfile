# syntax=docker/dockerfile:1
# Two images from one file:
#   runtime (default): the HTTP service and the bundled models; no torch, no compilers.
#       docker build -t disentangle .
#   trainer: the training half (torch CPU build), for `docker compose --profile train`.
#       docker build --target trainer -t disentangle-trainer .
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
# A CA bundle inside the base image for pip, when a TLS-inspecting proxy stands between the build and PyPI.
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml docker/requirements.py ./
RUN python requirements.py pyproject.toml > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY contract ./contract
COPY service ./service
# training/ is not copied, so the wheel holds the service alone; its console script would only fail to import.
# Nothing installs at run time: pip and setuptools would be 25 MB of dead weight.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && rm /opt/venv/bin/disentangle-train \
    && /opt/venv/bin/pip uninstall --yes pip setuptools
# Exported artifact folders may be private to their owner (mkdtemp); the service user only needs to read them.
COPY models /models
RUN chmod -R a+rX,go-w /models


FROM ${BASE_IMAGE} AS trainer
ARG PIP_CERT
# PyPI's Linux torch wheel is the CUDA build (several GB); the CPU index serves torch==X+cpu, which the pin accepts.
# A CUDA index URL here gives a GPU trainer.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# HOME: the numeric user has no passwd entry, and torch keeps its caches under it.
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HOME=/tmp
WORKDIR /app
COPY pyproject.toml docker/requirements.py ./
RUN python -m venv /opt/venv \
    && python requirements.py pyproject.toml --extra train --only torch > torch.txt \
    && pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" -r torch.txt \
    && python requirements.py pyproject.toml --extra train > requirements.txt \
    && pip install --no-cache-dir -r requirements.txt
COPY README.md ./
COPY contract ./contract
COPY service ./service
COPY training ./training
COPY configs ./configs
RUN pip install --no-cache-dir --no-deps .
# The bundled models too: whichever of api and trainer first mounts the shared volume fills it with the same ones.
COPY --from=builder /models /models
RUN chown 10001:10001 /models && install -d -o 10001 -g 10001 /runs
USER 10001:10001
ENTRYPOINT ["disentangle-train"]
CMD ["fit", "--preset", "smoke", "--out-dir", "/runs/smoke", "--export-dir", "/models/smoke-trained"]


# Last, so that a build without --target gives the service.
FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="disentangle" \
      org.opencontainers.image.description="Disentangled VAEs served over HTTP with onnxruntime" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DISENTANGLE_HOST=0.0.0.0 \
    DISENTANGLE_PORT=8000 \
    DISENTANGLE_MODEL_DIR=/models \
    DISENTANGLE_DEFAULT_MODEL=dsprites_beta_tcvae \
    DISENTANGLE_WORKERS=0
# DISENTANGLE_WORKERS=0: one server process per CPU of the container's quota (docker run --cpus, compose's
# API_CPUS), each with every model loaded; Kubernetes sets 1 and scales pods instead.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /models /models
# The folder (not the artifacts in it) belongs to the service user: a trainer sharing the volume as that user can
# add models beside the bundled ones, which stay read-only.
RUN chown 10001:10001 /models
USER 10001:10001
EXPOSE 8000
# No curl in slim images; the port follows DISENTANGLE_PORT so that overriding it keeps the check right.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DISENTANGLE_PORT', '8000') + '/readyz', timeout=4)"]
ENTRYPOINT ["disentangle-serve"]
