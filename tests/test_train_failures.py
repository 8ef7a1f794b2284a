"""How training fails: promptly, with the cause, and before it writes anything a user could lose."""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from training import train as train_module
from training.data.dsprites import DSprites
from training.train import TrainConfig, rendered_batches, train


class BreaksAfter(DSprites):
    """dSprites whose renderer raises on its ``good + 1``-th batch, as a corrupt source would."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.left = good

    def images(self, indices: np.ndarray) -> np.ndarray:
        if self.left == 0:
            raise OSError("disk went away while rendering")
        self.left -= 1
        return super().images(indices)


@pytest.mark.timeout(60)
def test_a_renderer_that_dies_raises_its_error_in_the_consumer_with_its_traceback() -> None:
    batches = rendered_batches(BreaksAfter(good=2), batch_size=4, seed=0, rank=0, start_step=0, pin=False)
    assert next(batches).shape == (4, 1, 64, 64)
    assert next(batches).shape == (4, 1, 64, 64)
    with pytest.raises(RuntimeError, match="rendering a batch failed") as caught:
        next(batches)
    cause = caught.value.__cause__
    assert isinstance(cause, OSError) and "disk went away" in str(cause)
    frames = [frame.name for frame in traceback.extract_tb(cause.__traceback__)]
    assert "images" in frames, f"the renderer's own frames are lost: {frames}"


@pytest.mark.timeout(120)
def test_training_stops_promptly_when_its_batch_thread_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "get_dataset", lambda name, **params: BreaksAfter(good=3))
    cfg = TrainConfig(name="broken", steps=50, batch_size=8, precision="fp32", out_dir=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="disk went away"):
        train(cfg)
    assert time.monotonic() - started < 60
