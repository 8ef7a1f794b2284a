"""An exported artifact as a model: its ONNX encoder and decoder in onnxruntime.

Evaluating the artifact rather than the checkpoint measures exactly what the service will serve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.artifact import Manifest, read_manifest


class OnnxModel:
    def __init__(self, folder: Path, threads: int = 0, chunk: int = 512) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = read_manifest(self.folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, all cores
        providers = ["CPUExecutionProvider"]
        files = self.manifest.files
        self._encoder = ort.InferenceSession(str(self.folder / files["encoder"].path), options, providers=providers)
        self._decoder = ort.InferenceSession(str(self.folder / files["decoder"].path), options, providers=providers)
        self.chunk = chunk

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, C, H, W) in [0, 1] -> mu (B, d), logvar (B, d)."""
        mus, logvars = [], []
        for start in range(0, len(images), self.chunk):
            batch = np.ascontiguousarray(images[start : start + self.chunk], dtype=np.float32)
            mu, logvar = self._encoder.run(["mu", "logvar"], {"image": batch})
            mus.append(mu)
            logvars.append(logvar)
        return np.concatenate(mus), np.concatenate(logvars)

    def mean(self, images: np.ndarray) -> np.ndarray:
        return self.encode(images)[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(B, d) -> (B, C, H, W) in [0, 1]."""
        parts = []
        for start in range(0, len(z), self.chunk):
            batch = np.ascontiguousarray(z[start : start + self.chunk], dtype=np.float32)
            parts.append(self._decoder.run(["image"], {"z": batch})[0])
        return np.concatenate(parts)
