"""onnxruntime sessions and the micro-batcher that feeds them.

Every network (a model's encoder or decoder) has one ``Batcher``. Requests put their rows on its queue and
await a future; an inference thread takes what is queued (up to ``batch_max_size`` rows, waiting up to
``batch_max_wait_ms`` after the oldest request for company), runs it as one onnxruntime call, and hands each
request its slice. Each request may pass a ``finish`` function (e.g. PNG encoding) that runs in the same
pool thread, so the event loop only parses HTTP while large requests run.

With a wait of 0 batching costs no latency: an idle batcher runs a request at once, and a busy one runs
everything that queued while the previous batch ran. A one-row request to an idle network first waits one
turn of the event loop for other one-row requests to it. Alone, it runs on the loop itself, saving the two
thread hand-offs that cost more than its run. With company, the batch goes to the inference thread, which
overlaps it with the loop's parsing, unless the process has less than two CPUs to itself (``loop_batches``):
then the overlap is only a fight for the GIL, and the loop runs the batch too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.cpus import available_cpus
from service.errors import Busy, Failed, Rejected, Unavailable
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("disentangle.runtime")

Outputs = list[np.ndarray]
# Requests of at most this many rows gather in a turn of the event loop when their network is idle and
# batches are not told to wait for company (Batcher._lead_turn).
INLINE_ROWS = 1
Finish = Callable[[Outputs], Any]


def batches_on_loop(settings: Settings) -> bool:
    """``Settings.loop_batches``, or by default whether this process has less than two CPUs to itself (the
    CPUs it may use, shared among its fellow workers)."""
    if settings.loop_batches is not None:
        return settings.loop_batches
    cpus = available_cpus()
    return cpus < 2 * (settings.workers or cpus)


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
    """One request's rows, what to do with their outputs, and the future the request awaits."""

    rows: np.ndarray
    finish: Finish | None
    future: asyncio.Future[Any]
    arrived: float  # time.monotonic()


class Batcher:
    """Gathers concurrent requests to one network into single onnxruntime runs, one at a time in the thread
    (a run on the loop, ``_lead_turn``, may overlap it: an onnxruntime session takes concurrent runs).

    The inference thread pulls batches itself: after a run it takes what queued meanwhile and goes on, without
    waiting for the event loop, which may be busy sending the last batch's responses. The loop only appends
    jobs and, once per run, resolves the futures of the requests in it. After each run the drain re-enters the
    pool's queue, so that with several models one busy network cannot starve the others.
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
        self._queue: deque[_Job] = deque()  # guarded by _arrivals, shared by the loop and the pool thread
        self._queued_rows = 0
        self._draining = False
        self._arrivals = threading.Condition()
        self._pending = 0  # queued or running, for the 429 bound; touched by the event loop only
        self._turn: list[_Job] | None = None  # one-row requests gathering in this turn of the loop (_lead_turn)
        self.on_loop = batches_on_loop(settings)
        self.unready_after = settings.failures_until_unready
        self.failures_in_a_row = 0  # written by the pool thread, read by /readyz; a plain int is safe under the GIL
        self.last_failure = ""
        self._failures = metrics.batch_failures.labels(model, network)
        self._depth_gauge = metrics.queue_depth.labels(model, network)
        self._batch_sizes = metrics.batch_size.labels(model, network)
        self._run_time = metrics.inference.labels(model, network)

    def run(self, rows: np.ndarray) -> Outputs:
        """One synchronous run, outside any queue: for start-up checks."""
        return list(self.session.run(self.outputs, {self._input: rows}))

    async def submit(self, rows: np.ndarray, finish: Finish | None = None) -> Any:
        """Run ``rows`` (B, ...) float32 in some batch; return ``finish(outputs)`` or the outputs."""
        if self._pending + len(self._turn or ()) >= self.depth:
            raise Busy(
                None,
                f"at most {self.depth} requests queued for {self.model}'s {self.network}",
                "one more",
                hint="retry shortly",
                headers={"Retry-After": "1"},
            )
        job = _Job(rows, finish, asyncio.get_running_loop().create_future(), time.monotonic())
        if len(rows) <= INLINE_ROWS and self.max_wait_s == 0:
            turn = self._turn
            if turn is not None and len(turn) < self.max_size:  # a turn gathers: its leader runs this too
                turn.append(job)
                return await job.future
            if turn is None and self._pending == 0:
                return await self._lead_turn(job)
        self._enqueue([job])
        return await job.future

    async def _lead_turn(self, job: _Job) -> Any:
        """Gathers the one-row requests to this idle network that arrive while the loop runs everything else
        that is ready, then runs them: here on the loop when ``on_loop``, or when none came (a lone request);
        else in the inference thread.

        A lone row through the thread costs two thread hand-offs (waking it, then the loop with the result),
        more than its run, and an idle network has nothing to batch it with. Without the turn, though, a run
        on the loop would leave nothing queued, every request under load would run alone between the others'
        parsing, and a few would wait far longer than the rest (p99 of one-latent decodes at 64 connections
        482 ms: docs/service.md, Benchmark, fifth round). With company, the thread overlaps the run with the
        loop's parsing where the process has a spare core; where it has none, that overlap is only a fight
        for the GIL on top of the hand-offs, and the loop runs the batch itself (``on_loop``). The turn costs
        a few microseconds; the loop is held for the run, at most ``max_size`` rows.
        """
        turn = [job]
        self._turn = turn
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            job.future.cancel()  # this request's client left; the ones that joined it still get answers
            raise
        finally:
            self._turn = None
            if self.on_loop or len(turn) == 1:
                self._run_here(turn)
            else:
                self._enqueue(turn)
        return await job.future

    def _run_here(self, jobs: list[_Job]) -> None:
        """One run of ``jobs`` on the event loop (held for it), each answered; those whose clients left are
        dropped first."""
        jobs = [job for job in jobs if not job.future.done()]
        if not jobs:
            return
        try:
            results = self._run_batch(jobs)
        except Exception as error:  # as in _drain, nothing may escape (rows that cannot be stacked, say)
            self._record_failure(error)
            results = [self._failure() for _ in jobs]
        self._resolve(jobs, results)

    def _enqueue(self, jobs: list[_Job]) -> None:
        """Queues ``jobs`` for the inference thread (they count as pending until answered), starting a drain
        if none is running; if the pool is shut down, they are answered with a 503."""
        rows = sum(len(job.rows) for job in jobs)
        with self._arrivals:
            self._queue.extend(jobs)
            self._queued_rows += rows
            start = not self._draining
            self._draining = True
            self._arrivals.notify()
        if start:
            try:
                self.pool.submit(self._drain, asyncio.get_running_loop())
            except RuntimeError:  # the pool is shut down: the service is stopping
                with self._arrivals:
                    for job in jobs:
                        self._queue.remove(job)
                    self._queued_rows -= rows
                    self._draining = False
                self._resolve(jobs, [self._stopping() for _ in jobs])
                return
        self._pending += len(jobs)
        self._depth_gauge.set(self._pending)

    async def close(self) -> None:
        with self._arrivals:
            jobs = list(self._queue)
            self._queue.clear()
        self._answer_queued(jobs, [self._stopping() for _ in jobs])

    @staticmethod
    def _stopping() -> Unavailable:
        return Unavailable(None, "a running service", "one shutting down")

    @property
    def failing(self) -> str | None:
        """Why this network is not ready (its last runs all failed), or None."""
        if self.failures_in_a_row < self.unready_after:
            return None
        return f"{self.model}'s {self.network} failed its last {self.failures_in_a_row} runs: {self.last_failure}"

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """In a pool thread: run one batch, then queue another drain if more work arrived meanwhile.

        Nothing may escape: an exception lost here would leave ``_draining`` set, and every later request to
        this network would wait for a drain that never comes. Whatever fails, the jobs taken are answered.
        """
        jobs: list[_Job] = []
        try:
            jobs = self._take()
            if jobs:
                self._deliver(loop, jobs, self._run_batch(jobs))
        except Exception as error:
            self._record_failure(error)
            self._deliver(loop, jobs, [self._failure() for _ in jobs])
        finally:
            with self._arrivals:
                self._draining = bool(self._queue)
                again = self._draining
            if again:
                try:
                    self.pool.submit(self._drain, loop)
                except RuntimeError:  # the pool shut down; close() answers what is still queued
                    with self._arrivals:
                        self._draining = False

    def _deliver(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job], results: list[Any]) -> None:
        if not jobs:
            return
        try:
            loop.call_soon_threadsafe(self._answer_queued, jobs, results)
        except RuntimeError:  # the loop closed during shutdown; nobody waits for these any more
            pass

    def _record_failure(self, error: BaseException) -> None:
        self.failures_in_a_row += 1
        self.last_failure = f"{type(error).__name__}: {error}"[:300]
        self._failures.inc()
        log.error("a batch of %s's %s failed", self.model, self.network, exc_info=error)

    def _failure(self) -> Failed:
        """What a request whose batch failed is answered: a 500 naming the network, no internals."""
        return Failed(None, f"a successful run of {self.model}'s {self.network}", "a failed run (logged)")

    def _take(self) -> list[_Job]:
        """Up to ``max_size`` rows from the queue, after waiting (if configured) for the batch to fill."""
        with self._arrivals:
            if self._queue and self.max_wait_s > 0:
                due = self._queue[0].arrived + self.max_wait_s
                while self._queue and self._queued_rows < self.max_size and time.monotonic() < due:
                    self._arrivals.wait(due - time.monotonic())
            if not self._queue:
                return []
            jobs = [self._queue.popleft()]
            rows = len(jobs[0].rows)
            while self._queue and rows + len(self._queue[0].rows) <= self.max_size:
                job = self._queue.popleft()
                jobs.append(job)
                rows += len(job.rows)
            self._queued_rows -= rows
        return jobs

    def _answer_queued(self, jobs: list[_Job], results: list[Any]) -> None:
        """On the event loop: answers jobs taken from the queue, which then no longer count as pending."""
        self._pending -= len(jobs)
        self._depth_gauge.set(self._pending)
        self._resolve(jobs, results)

    def _resolve(self, jobs: list[_Job], results: list[Any]) -> None:
        """On the event loop: hand each request its result; one that cannot be handed over gets a 500."""
        for job, result in zip(jobs, results, strict=True):
            if job.future.done():  # the caller went away
                continue
            try:
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            except Exception as error:
                self._record_failure(error)
                job.future.set_exception(self._failure())

    def _run_batch(self, jobs: Sequence[_Job]) -> list[Any]:
        """One onnxruntime call for all jobs, then each job's finish on its slice."""
        start = time.perf_counter()
        rows = jobs[0].rows if len(jobs) == 1 else np.concatenate([job.rows for job in jobs])
        try:
            outputs = self.run(rows)
        except Exception as error:  # a failed run fails every request in it, and only those
            self._record_failure(error)
            return [self._failure() for _ in jobs]
        self.failures_in_a_row = 0
        results: list[Any] = []
        offset = 0
        for job in jobs:
            n = len(job.rows)
            mine = [out[offset : offset + n] for out in outputs] if len(jobs) > 1 else outputs
            offset += n
            try:
                results.append(job.finish(mine) if job.finish else mine)
            except Rejected as error:
                results.append(error)
            except Exception as error:  # a bug in the finish: this request alone gets a 500, and it is logged
                log.error("finishing a request of %s's %s failed", self.model, self.network, exc_info=error)
                self._failures.inc()
                results.append(self._failure())
        self._batch_sizes.observe(len(rows))
        self._run_time.observe(time.perf_counter() - start)
        return results
