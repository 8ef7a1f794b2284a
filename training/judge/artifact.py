"""A trained judge as files, and the judge run from them in onnxruntime (no torch needed to judge).

judges/NAME/judge.onnx   ``image`` (B, C, 64, 64) float32 in [0, 1] -> one output per factor, named by it
judges/NAME/judge.json   ``JudgeManifest``: the readings, the held-out figures, the command that trained it
judges/NAME/card.md      the same figures for people

    judge = OnnxJudge(Path("judges/digits"))
    judge.errors(images, classes)   # {"digit": (B,) 1.0 where read right, "posX": (B,) px off, ...}
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, ConfigDict, Field

from contract.manifest import sha256_of
from training.data.base import FactorDataset
from training.judge.readings import Reading, condition_of

JUDGE_ONNX = "judge.onnx"
JUDGE_JSON = "judge.json"
JUDGE_CARD = "card.md"
# Where the shipped judges live, found from this file so no machine's path is named: <repo>/judges/<dataset>.
SHIPPED_JUDGES = Path(__file__).resolve().parents[2] / "judges"


class JudgeManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str
    image_shape: tuple[int, int, int]
    readings: list[Reading]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of judge.onnx")
    config: dict[str, str | int | float | bool]
    command: str
    steps: int
    images_seen: int
    wall_time_s: float
    heldout_images: int
    heldout: dict[str, dict[str, float]] = Field(
        description="split -> factor -> accuracy (categorical) or mean absolute error in the reading's unit"
    )
    code_version: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def heldout_indices(size: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a dataset's indices: (count,) held out, never trained on; (size - count,) the training pool."""
    if not 0 < count < size:
        raise ValueError(f"heldout: expected a count in (0, {size}), got {count}")
    order = np.random.default_rng(seed).permutation(size)
    return np.sort(order[:count]), order[count:]


class OnnxJudge:
    def __init__(self, folder: Path, threads: int = 1, chunk: int = 512) -> None:
        folder = Path(folder)
        if not (folder / JUDGE_JSON).exists():
            raise FileNotFoundError(f"{folder} holds no {JUDGE_JSON}: train one with `disentangle-train judge`")
        self.folder = folder
        self.manifest = JudgeManifest.model_validate_json((folder / JUDGE_JSON).read_text())
        if sha256_of(folder / JUDGE_ONNX) != self.manifest.sha256:
            raise ValueError(f"{folder / JUDGE_ONNX} does not match the sha256 in its {JUDGE_JSON}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(folder / JUDGE_ONNX), options, providers=["CPUExecutionProvider"])
        self.readings = self.manifest.readings
        self.chunk = chunk

    def check_dataset(self, dataset: FactorDataset) -> None:
        names = [f.name for f in dataset.factors]
        if dataset.name != self.manifest.dataset or names != [r.name for r in self.readings]:
            raise ValueError(
                f"judge in {self.folder}: reads {self.manifest.dataset} factors {[r.name for r in self.readings]}, "
                f"the dataset is {dataset.name} with {names}"
            )

    def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """(B, C, H, W) in [0, 1] -> each factor's raw head output (B, outputs)."""
        if images.ndim != 4 or tuple(images.shape[1:]) != tuple(self.manifest.image_shape):
            expected = ", ".join(map(str, self.manifest.image_shape))
            raise ValueError(f"images: expected shape (B, {expected}), got {images.shape}")
        names = [r.name for r in self.readings]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for start in range(0, len(images), self.chunk):
            batch = np.ascontiguousarray(images[start : start + self.chunk], dtype=np.float32)
            for name, out in zip(names, self._session.run(names, {"image": batch}), strict=True):
                parts[name].append(out)
        return {name: np.concatenate(chunks) for name, chunks in parts.items()}

    def values(self, images: np.ndarray, condition: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each factor as judged: (B,) class index, value in the factor's own units, or angle in radians.

        ``condition``: (B, F) classes the periodic readings take their symmetry from (see ``readings``);
        by default the judged classes."""
        raw = self.raw(images)
        if condition is None:
            condition = np.stack(
                [r.value(raw[r.name]) if r.kind == "categorical" else np.zeros(len(images), np.int64)
                 for r in self.readings],
                axis=1,
            )  # fmt: skip
        return {r.name: r.value(raw[r.name], condition_of(self.readings, r, condition)) for r in self.readings}

    def errors(self, images: np.ndarray, classes: np.ndarray) -> dict[str, np.ndarray]:
        """Per factor, (B,): 1.0/0.0 for a categorical factor read as ``classes`` or not, else the absolute
        error against ``classes`` (B, F) in the reading's unit."""
        raw = self.raw(images)
        return {
            r.name: r.error(raw[r.name], classes[:, j], condition_of(self.readings, r, classes))
            for j, r in enumerate(self.readings)
        }


def summarise(errors: dict[str, np.ndarray]) -> dict[str, float]:
    """Per factor: accuracy (the mean of 1.0/0.0) or mean absolute error."""
    return {name: float(values.mean()) for name, values in errors.items()}


def figure(reading: Reading, value: float) -> str:
    """One held-out or judged figure in words: ``0.994`` or ``0.42 px``."""
    return f"{value:.3f}" if reading.kind == "categorical" else f"{value:.2f} {reading.unit}"
