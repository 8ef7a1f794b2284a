"""Worker processes for ``disentangle-serve --workers N``, forked from a supervisor that has imported the app.

uvicorn's own supervisor spawns each worker as a fresh interpreter, which then imports FastAPI, pydantic,
numpy and onnxruntime all over again: most of a worker's start, paid by every worker at once on the same
cores. Here the supervisor imports that code once, binds the port and forks the workers; each one only
builds its app, loads its models and serves. The workers share the imported code's memory pages with the
supervisor until they write to them.

Nothing that does not survive a fork exists in the supervisor when it forks: it creates no onnxruntime
session (each worker loads its own models), and its one other thread, the log writer, is held still across
the fork (service/logs.py).

The supervisor restarts a worker that exits, stops every worker on SIGTERM or SIGINT (each with its graceful
shutdown deadline) and then returns 0. A worker that cannot start (uvicorn's startup-failure status: an app
or socket problem that would fail the same way again) stops them all, as uvicorn's supervisor does. A hung
worker is not detected: that is the orchestrator's liveness probe's job (`/healthz`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("disentangle.workers")
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
POLL_S = 0.2  # how often the supervisor looks for a worker that has exited
KILL_AFTER_S = 5.0  # past a worker's own shutdown deadline, before it is killed


def fork_worker(serve: Callable[[], None], flush: Callable[[], None]) -> int:
    """Fork a process that runs ``serve`` and exits with its status; returns the child's pid."""
    # A stop signal that arrived between the fork and the worker's own handlers would run the supervisor's
    # handler in the worker and be lost: the signals wait, blocked, until the worker has reset them.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return pid
    status = 1
    try:
        for number in STOP_SIGNALS:  # uvicorn installs its own while it serves
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        serve()
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        logger.exception("worker %d failed", os.getpid())
    finally:
        flush()
        os._exit(status)  # the supervisor's atexit handlers are not the worker's to run


def supervise(workers: int, serve: Callable[[], None], stop_after_s: float, flush: Callable[[], None]) -> int:
    """Run ``workers`` forked processes of ``serve`` until SIGTERM or SIGINT; returns the exit status."""
    # The handler only records the signal: one that took a lock (an Event's) could interrupt the loop while
    # the loop held it, and wait for ever.
    received: list[int] = []
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum)) for number in STOP_SIGNALS}
    running = {fork_worker(serve, flush) for _ in range(workers)}
    logger.info("started %d workers: %s", workers, " ".join(map(str, sorted(running))))
    status = 0
    try:
        while not received and status == 0:
            time.sleep(POLL_S)
            for pid in list(running):
                done, wait_status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
                running.remove(pid)
                code = os.waitstatus_to_exitcode(wait_status)
                if code == STARTUP_FAILURE:
                    logger.error("worker %d could not start; stopping the others", pid)
                    status = STARTUP_FAILURE
                    break
                replacement = fork_worker(serve, flush)
                running.add(replacement)
                how = f"died of signal {-code}" if code < 0 else f"exited with status {code}"
                logger.warning("worker %d %s; started worker %d in its place", pid, how, replacement)
        stop_all(running, stop_after_s + KILL_AFTER_S)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return status


def stop_all(running: set[int], deadline_s: float) -> None:
    """SIGTERM every worker, wait for them to finish their requests, kill any still there at the deadline."""
    for pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + deadline_s
    while running and time.monotonic() < deadline:
        running -= {pid for pid in running if os.waitpid(pid, os.WNOHANG)[0]}
        time.sleep(POLL_S / 4)
    for pid in running:
        logger.warning("worker %d did not stop within %.0f s; killing it", pid, deadline_s)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
