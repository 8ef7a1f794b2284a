"""onnxruntime sessions and the micro-batcher that feeds them.

Every network (a model's encoder or decoder) has one ``Batcher``. Requests put their rows on its queue and
await a future; whenever no run is in flight, the batcher takes what is queued (up to ``batch_max_size``
rows, waiting up to ``batch_max_wait_ms`` after the oldest request for company), runs it as one onnxruntime
call in the inference thread pool, and hands each request its slice. Each request may pass a ``finish``
function (e.g. PNG encoding) that runs in the same pool thread, so the event loop only parses HTTP and never
touches pixels.

With a wait of 0 batching costs no latency: an idle batcher runs a request at once, and a busy one runs
everything that queued while the previous batch ran.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.errors import Rejected
from service.metrics import Metrics
from service.settings import Settings

Outputs = list[np.ndarray]
Finish = Callable[[Outputs], Any]


def open_session(path: Path, settings: Settings) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Explicit counts: onnxruntime's default of one thread per core per session oversubscribes the CPU as
    # soon as two sessions (or the HTTP loop) run at once.
    options.intra_op_num_threads = settings.intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=settings.providers)


@dataclass
class _Job:
    rows: np.ndarray
    finish: Finish | None
    future: asyncio.Future[Any]
    arrived: float


class Batcher:
    """Gathers concurrent requests to one network into single onnxruntime runs, one run in flight at a time.

    Driven by callbacks on the event loop rather than a collector task: a request that finds the batcher idle
    is dispatched from its own handler, which saves a task switch on every unbatched request.
    """

    def __init__(
        self,
        model: str,
        network: str,
        session: ort.InferenceSession,
        outputs: list[str],
        pool: Executor,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.model = model
        self.network = network
        self.session = session
        self.outputs = outputs
        self.pool = pool
        self.max_size = settings.batch_max_size
        self.max_wait_s = settings.batch_max_wait_ms / 1000
        self.depth = settings.queue_depth
        self._input = session.get_inputs()[0].name
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._pending = 0  # queued or running, for the 429 bound
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._depth_gauge = metrics.queue_depth.labels(model, network)
        self._batch_sizes = metrics.batch_size.labels(model, network)
        self._run_time = metrics.inference.labels(model, network)

    def run(self, rows: np.ndarray) -> Outputs:
        """One synchronous run, outside any queue: for start-up checks."""
        return list(self.session.run(self.outputs, {self._input: rows}))

    async def submit(self, rows: np.ndarray, finish: Finish | None = None) -> Any:
        """Run ``rows`` (B, ...) float32 in some batch; return ``finish(outputs)`` or the outputs."""
        if self._pending >= self.depth:
            raise Rejected(
                429,
                None,
                f"at most {self.depth} requests queued for {self.model}'s {self.network}",
                "one more",
                hint="retry shortly",
                headers={"Retry-After": "1"},
            )
        loop = asyncio.get_running_loop()
        job = _Job(rows, finish, loop.create_future(), loop.time())
        self._queue.append(job)
        self._queued_rows += len(rows)
        self._pending += 1
        self._depth_gauge.set(self._pending)
        self._dispatch(loop)
        try:
            return await job.future
        finally:
            self._pending -= 1
            self._depth_gauge.set(self._pending)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(Rejected(503, None, "a running service", "one shutting down"))

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a run unless one is in flight; with a wait set, only once the batch is full or waited enough."""
        if self._running or not self._queue:
            return
        due = self._queue[0].arrived + self.max_wait_s
        if self._queued_rows < self.max_size and loop.time() < due:
            if self._timer is None:
                self._timer = loop.call_at(due, self._waited, loop)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs = self._take()
        self._running = True
        self.pool.submit(self._run_batch, loop, jobs)

    def _waited(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._dispatch(loop)

    def _take(self) -> list[_Job]:
        jobs = [self._queue.popleft()]
        rows = len(jobs[0].rows)
        while self._queue and rows + len(self._queue[0].rows) <= self.max_size:
            job = self._queue.popleft()
            jobs.append(job)
            rows += len(job.rows)
        self._queued_rows -= rows
        return jobs

    def _finished(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], results: list[Any]) -> None:
        self._running = False
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():  # the caller went away
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        self._dispatch(loop)

    def _run_batch(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        """In a pool thread: one onnxruntime call for all jobs, then each job's finish on its slice."""
        start = time.perf_counter()
        rows = jobs[0].rows if len(jobs) == 1 else np.concatenate([job.rows for job in jobs])
        results: list[Any] = []
        try:
            outputs = self.run(rows)
        except Exception as error:  # a failed run fails every request in it, and only those
            results = [error] * len(jobs)
        else:
            offset = 0
            for job in jobs:
                n = len(job.rows)
                mine = [out[offset : offset + n] for out in outputs] if len(jobs) > 1 else outputs
                offset += n
                try:
                    results.append(job.finish(mine) if job.finish else mine)
                except Exception as error:
                    results.append(error)
            self._batch_sizes.observe(len(rows))
            self._run_time.observe(time.perf_counter() - start)
        loop.call_soon_threadsafe(self._finished, loop, jobs, results)
