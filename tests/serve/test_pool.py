"""The bounded pool: jobs run on its threads, at most workers + queue are admitted, a fault frees its slot."""

import asyncio
import threading

import pytest

from rtdet.serve.pool import Busy, InferencePool, threads_per_worker


def test_admits_workers_plus_queue_then_refuses_with_retry_after():
    async def scenario():
        pool = InferencePool(workers=1, queue=1)
        gate = threading.Event()
        names = []

        def job(i):
            gate.wait(30)
            names.append(threading.current_thread().name)
            return i

        first = asyncio.ensure_future(pool.run(job, 1))
        second = asyncio.ensure_future(pool.run(job, 2))
        await asyncio.sleep(0.05)
        assert pool.stats() == {"running": 1, "waiting": 1, "capacity": 2, "done": 0, "refused": 0}
        with pytest.raises(Busy) as busy:
            await pool.run(job, 3)
        assert busy.value.retry_after >= 1 and "queue is full" in str(busy.value)
        gate.set()
        (a, waited_a), (b, waited_b) = await first, await second
        assert (a, b) == (1, 2) and waited_b >= waited_a >= 0
        assert all(n.startswith("rtdet-serve") for n in names)
        assert pool.stats() == {"running": 0, "waiting": 0, "capacity": 2, "done": 2, "refused": 1}
        pool.close()

    asyncio.run(scenario())


def test_a_failing_job_frees_its_slot_and_the_error_reaches_the_caller():
    async def scenario():
        pool = InferencePool(workers=1, queue=0)

        def boom():
            raise RuntimeError("bad")

        with pytest.raises(RuntimeError, match="bad"):
            await pool.run(boom)
        assert (await pool.run(lambda: 7))[0] == 7 and pool.stats()["running"] == 0
        pool.close()

    asyncio.run(scenario())


def test_retry_after_grows_with_the_jobs_ahead():
    pool = InferencePool(workers=2, queue=10)
    pool.job_s, pool.admitted = 0.5, 12
    assert pool.retry_after() == 3  # 12 jobs of 0.5 s on 2 threads
    pool.admitted = 0
    assert pool.retry_after() == 1  # never less than a second
    with pytest.raises(ValueError):
        InferencePool(0, 1)
    pool.close()


def test_workers_share_the_cores_among_their_inference_threads():
    assert [threads_per_worker(w, cores=2) for w in (1, 2, 3, 4)] == [2, 1, 1, 1]
    assert [threads_per_worker(w, cores=8) for w in (1, 2, 3, 4)] == [8, 4, 2, 2]
    assert threads_per_worker(2) >= 1  # this machine's cores
