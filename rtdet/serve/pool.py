"""The bounded worker pool of ``rtdet serve``: a few threads share one model; a full queue refuses work.

Threading choice: one process, one model, ``workers`` threads. An ONNX Runtime
``InferenceSession.run`` is thread-safe and releases the GIL, as do OpenCV's decoders
and torch's kernels, so threads sharing one session overlap the parts that are not
the network (decoding the upload, letterboxing, NMS) with another request's network
pass, without a second copy of the model in memory. The event loop (uvicorn) only
moves bytes; every CPU-bound step runs in the pool.

Each worker's network pass gets ``cores // workers`` intra-op threads
(:func:`threads_per_worker`), so the workers together use the cores once: on 2
cores, 2 workers of 1 thread each answered 4 clients at 185 requests/s for 10.0 ms
of CPU each, against 174 requests/s and 10.9 ms with 2 threads each, whose passes
split into parallel pieces that wait for each other (``benchmarks/serve_load.py``'s
setting, rtdet-n at 320 px).

Admission is counted on the event loop's thread (one thread: no lock): at most
``workers + queue`` requests are admitted at a time (running or waiting for a
thread); one more raises :class:`Busy`, which the server answers with ``503`` and a
``Retry-After`` estimated from the recent job time.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Intra-op threads for each of ``workers`` concurrent network passes: ``cores // workers``, at least 1
    (``cores``: those this process may run on, by default)."""
    from rtdet.deploy.tune import cores as usable_cores

    return max(1, (cores or usable_cores()) // max(workers, 1))


class Busy(Exception):
    """Every worker is busy and the queue is full; ``retry_after`` is whole seconds to wait (>= 1)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"server busy: every worker is busy and the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class InferencePool:
    """``workers`` threads; at most ``workers + queue`` jobs admitted at once.

    Args:
        workers: threads running jobs (>= 1).
        queue: admitted jobs that may wait for a thread (>= 0); one more is refused with :class:`Busy`.
    """

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers, self.queue = workers, queue
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="rtdet-serve")
        self.admitted = 0  # running + waiting; changed on the event loop's thread only
        self.job_s = 0.0  # moving average of a job's duration, for Retry-After
        self.done = 0
        self.refused = 0

    @property
    def capacity(self) -> int:
        return self.workers + self.queue

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the jobs ahead of a newcomer, spread over the workers."""
        return max(1, math.ceil(self.job_s * self.admitted / self.workers))

    async def run(self, job: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        """``(job(*args), seconds it waited for a thread)``; raises :class:`Busy` when full, and whatever
        ``job`` raises."""
        if self.admitted >= self.capacity:
            self.refused += 1
            raise Busy(self.retry_after())
        self.admitted += 1
        submitted = time.perf_counter()

        def timed() -> tuple[Any, float, float]:
            started = time.perf_counter()
            out = job(*args)
            return out, started - submitted, time.perf_counter() - started

        try:
            out, waited, took = await asyncio.get_running_loop().run_in_executor(self.executor, timed)
        finally:
            self.admitted -= 1
        self.done += 1
        self.job_s = took if self.done == 1 else 0.9 * self.job_s + 0.1 * took
        return out, waited

    def stats(self) -> dict[str, int]:
        """``running`` (jobs on a thread), ``waiting``, ``capacity``, ``done`` and ``refused`` so far."""
        running = min(self.admitted, self.workers)
        return {"running": running, "waiting": self.admitted - running, "capacity": self.capacity,
                "done": self.done, "refused": self.refused}

    def close(self) -> None:
        """Finish the jobs already admitted, then stop the threads."""
        self.executor.shutdown(wait=True)
