"""Many submitting threads against one executor: limits hold and every future ends once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import CancelledError, Future, wait

import pytest

from jobq import BoundedExecutor
from tests.helpers import BOUNDED_WAIT

SUBMITTERS = 16
TASKS_EACH = 400


def test_stress_concurrency_bound_and_exactly_once() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    calls: Counter[int] = Counter()
    callbacks: Counter[int] = Counter()
    futures: dict[int, Future[int]] = {}

    def task(task_id: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            calls[task_id] += 1
        if task_id % 7 == 0:
            threading.Event().wait(0.0005)
        with lock:
            running -= 1
        if task_id % 11 == 0:
            raise ValueError(task_id)
        return task_id

    def on_done(task_id: int) -> object:
        def record(_: Future[int]) -> None:
            with lock:
                callbacks[task_id] += 1

        return record

    pool = BoundedExecutor(max_workers=4, max_queued=500)
    start = threading.Barrier(SUBMITTERS + 1)

    def submitter(index: int) -> None:
        rng = random.Random(index)
        start.wait()
        for n in range(TASKS_EACH):
            task_id = index * TASKS_EACH + n
            future = pool.options(priority=rng.randint(-2, 2)).submit(task, task_id)
            future.add_done_callback(on_done(task_id))  # type: ignore[arg-type]
            with lock:
                futures[task_id] = future
            if rng.random() < 0.1:
                future.cancel()
            if n % 100 == 0:
                pool.max_workers = rng.choice([2, 3, 4])

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(SUBMITTERS)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(BOUNDED_WAIT * 6)
    _, not_done = wait(futures.values(), timeout=BOUNDED_WAIT * 6)
    pool.shutdown()

    assert not not_done
    assert len(futures) == SUBMITTERS * TASKS_EACH
    assert peak <= 4
    for task_id, future in futures.items():
        assert callbacks[task_id] == 1, task_id
        if future.cancelled():
            assert calls[task_id] == 0
            with pytest.raises(CancelledError):
                future.result(0)
        else:
            assert calls[task_id] == 1, task_id
            if task_id % 11 == 0:
                assert isinstance(future.exception(), ValueError)
            else:
                assert future.result() == task_id
    assert pool.running == 0
    assert pool.waiting == 0
