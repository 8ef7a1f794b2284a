"""An exported artifact as a model: its ONNX encoder and decoder in onnxruntime.

Evaluating the artifact rather than the checkpoint measures exactly what the service will serve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from contract.manifest import Manifest, read_manifest
from contract.tensors import DECODER_OUTPUTS, IMAGE, LATENT, encoder_outputs


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

    def encode_all(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B, C, H, W) in [0, 1] -> mu (B, c), logvar (B, c), categorical probabilities (B, k); k is 0 for an
        all-continuous layout."""
        layout = self.manifest.layout
        names = encoder_outputs(layout)
        outputs: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(images), self.chunk):
            batch = np.ascontiguousarray(images[start : start + self.chunk], dtype=np.float32)
            for gathered, out in zip(outputs, self._encoder.run(names, {IMAGE: batch}), strict=True):
                gathered.append(out)
        mu, logvar = np.concatenate(outputs[0]), np.concatenate(outputs[1])
        probabilities = np.concatenate(outputs[2]) if layout.classes else np.zeros((len(mu), 0), np.float32)
        return mu, logvar, probabilities

    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, C, H, W) in [0, 1] -> mu (B, c), logvar (B, c) of the continuous dims."""
        mu, logvar, _ = self.encode_all(images)
        return mu, logvar

    def mean(self, images: np.ndarray) -> np.ndarray:
        """(B, C, H, W) -> (B, d): the posterior mean in the layout's flat order (mu, each part's probabilities,
        zero noise), the representation metrics and calibration read."""
        mu, _, probabilities = self.encode_all(images)
        return self.manifest.layout.flat(mu, probabilities)

    def reconstruction_latent(self, images: np.ndarray) -> np.ndarray:
        """(B, C, H, W) -> (B, d): what a reconstruction decodes: mu, and the one-hot of each part's most
        probable class (as the decoder saw near one-hot samples in training)."""
        mu, _, probabilities = self.encode_all(images)
        return self.manifest.layout.reconstruction(mu, probabilities)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """(B, d) -> (B, C, H, W) in [0, 1]."""
        parts = []
        for start in range(0, len(z), self.chunk):
            batch = np.ascontiguousarray(z[start : start + self.chunk], dtype=np.float32)
            parts.append(self._decoder.run(DECODER_OUTPUTS, {LATENT: batch})[0])
        return np.concatenate(parts)
