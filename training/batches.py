"""Batches for the training loops, rendered on the fly from a seeded generator per (seed, rank, step), so a
resumed run draws the same batches it would have drawn without the interruption."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator

import numpy as np
import torch

from training.data.base import ImageDataset


def batch_indices(dataset_size: int, batch_size: int, seed: int, rank: int, step: int) -> np.ndarray:
    """The (B,) indices of one step: a pure function of (seed, rank, step), so resuming redraws them exactly."""
    return np.random.default_rng([seed, rank, step]).integers(0, dataset_size, size=batch_size)


def rendered_batches(
    dataset: ImageDataset, batch_size: int, seed: int, rank: int, start_step: int, pin: bool
) -> Generator[torch.Tensor, None, None]:
    """Yield (B, C, H, W) batches rendered on the CPU, a few batches ahead on a thread.

    An exception in the thread is handed over through the queue and raised here, in the training loop, with
    the thread's traceback: otherwise the loop would wait for a batch that never comes.
    """
    ready: queue.Queue[torch.Tensor | BaseException] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def hand_over(item: torch.Tensor | BaseException) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        step = start_step
        try:
            while not stop.is_set():
                indices = batch_indices(len(dataset), batch_size, seed, rank, step)
                batch = torch.from_numpy(dataset.images(indices))
                if pin:
                    batch = batch.pin_memory()
                hand_over(batch)
                step += 1
        except Exception as error:  # raised again in the consumer, with this traceback
            hand_over(error)

    worker = threading.Thread(target=produce, name="batch-renderer", daemon=True)
    worker.start()
    try:
        while True:
            try:
                item = ready.get(timeout=1.0)
            except queue.Empty:
                if worker.is_alive() or not ready.empty():
                    continue
                raise RuntimeError("the batch-rendering thread ended without a batch or an error") from None
            if isinstance(item, BaseException):
                raise RuntimeError(f"rendering a batch failed: {item!r}") from item
            yield item
    finally:
        # Joined, not left to die with the interpreter: a daemon thread caught inside torch's C++ code at exit
        # is unwound through noexcept frames and aborts the process ("terminate called without an active
        # exception"), which turned a finished run into a failure.
        stop.set()
        worker.join()


def cached_batches(
    dataset: ImageDataset, batch_size: int, seed: int, rank: int, start_step: int, device: torch.device
) -> Generator[torch.Tensor, None, None]:
    """Render the whole dataset once into uint8 on ``device`` (3 GB for dSprites), then gather batches there.

    On a GPU a CPU renderer cannot keep up with a model this small; the same indices are drawn as in
    ``rendered_batches``, so both paths train on the same sequence of images (up to 1/255 quantisation).
    """
    channels, height, width = dataset.image_shape
    store = torch.empty((len(dataset), channels, height, width), dtype=torch.uint8, device=device)
    chunk = 16_384
    for start in range(0, len(dataset), chunk):
        images = dataset.images(np.arange(start, min(start + chunk, len(dataset))))
        store[start : start + len(images)] = torch.from_numpy((images * 255).round().astype(np.uint8)).to(device)
    step = start_step
    while True:
        indices = torch.from_numpy(batch_indices(len(dataset), batch_size, seed, rank, step)).to(device)
        yield store[indices].float().div_(255)  # (B, C, H, W)
        step += 1


def batches_for(
    dataset: ImageDataset, batch_size: int, seed: int, rank: int, start_step: int, device: torch.device, cache: bool
) -> Generator[torch.Tensor, None, None]:
    """``cached_batches`` when ``cache`` (the dataset held on the device), else ``rendered_batches``."""
    if cache:
        return cached_batches(dataset, batch_size, seed, rank, start_step, device)
    return rendered_batches(dataset, batch_size, seed, rank, start_step, device.type == "cuda")
