"""BoundedExecutor: limits, priorities, timeouts, control and Executor compatibility."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import textwrap
import threading
import weakref
from concurrent.futures import CancelledError, Executor, as_completed, wait
from typing import Any

import pytest

import jobq
from jobq import BoundedExecutor, QueueFull, TaskTimeout, signals
from jobq.testing import FakeClock
from tests.helpers import BOUNDED_WAIT, eventually


class Gate:
    """Tasks block on a gate until the test opens it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.entered = 0  # calls that began (a task's timeout runs from here)

    def task(self, value: Any = None) -> Any:
        self.entered += 1
        assert self.event.wait(BOUNDED_WAIT), "gate never opened"
        return value

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def gate() -> Gate:
    return Gate()


def test_is_an_executor_that_works_with_wait_as_completed_and_map() -> None:
    with BoundedExecutor(max_workers=3) as pool:
        assert isinstance(pool, Executor)
        futures = [pool.submit(pow, 2, n) for n in range(10)]
        _, not_done = wait(futures, timeout=BOUNDED_WAIT)
        assert not not_done
        assert sorted(f.result() for f in as_completed(futures)) == [2**n for n in range(10)]
        assert list(pool.map(str.upper, ["a", "b"])) == ["A", "B"]


def test_exceptions_reach_the_future() -> None:
    def boom() -> None:
        raise KeyError("missing")

    with BoundedExecutor(max_workers=1) as pool:
        with pytest.raises(KeyError, match="missing"):
            pool.submit(boom).result(BOUNDED_WAIT)
        assert pool.submit(int, "7").result(BOUNDED_WAIT) == 7  # the worker survived


def test_threads_are_created_lazily_and_reused() -> None:
    names: set[str] = set()
    with BoundedExecutor(max_workers=2, name="lazy") as pool:
        assert not [t for t in threading.enumerate() if t.name.startswith("jobq-lazy")]
        for _ in range(50):
            pool.submit(lambda: names.add(threading.current_thread().name)).result(BOUNDED_WAIT)
    assert len(names) == 1  # one task at a time never needed a second thread


def test_concurrency_never_exceeds_max_workers(gate: Gate) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def task() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.task()
        with lock:
            running -= 1

    with BoundedExecutor(max_workers=3) as pool:
        futures = [pool.submit(task) for _ in range(10)]
        assert pool.running == 3  # the first three took their slots in submit()
        assert pool.waiting == 7
        eventually(lambda: gate.entered == 3)  # and their calls began
        gate.open()
        wait(futures, timeout=BOUNDED_WAIT)
    assert peak == 3


def test_priority_then_fifo(gate: Gate) -> None:
    order: list[str] = []
    with BoundedExecutor(max_workers=1) as pool:
        pool.submit(gate.task)  # occupies the only worker
        eventually(lambda: pool.running == 1)
        for label, priority in [("a0", 0), ("b5", 5), ("c0", 0), ("d5", 5), ("e-1", -1)]:
            pool.options(priority=priority).submit(order.append, label)
        gate.open()
    assert order == ["b5", "d5", "a0", "c0", "e-1"]


def test_options_do_not_touch_the_functions_keyword_arguments() -> None:
    def task(priority: str, timeout: str) -> str:
        return priority + timeout

    with BoundedExecutor(max_workers=1) as pool:
        assert pool.submit(task, priority="p", timeout="t").result(BOUNDED_WAIT) == "pt"
        urgent = pool.options(priority=3, timeout=30)
        assert urgent.submit(task, priority="x", timeout="y").result(BOUNDED_WAIT) == "xy"
        assert list(urgent.map(abs, [-1, -2])) == [1, 2]
        assert isinstance(urgent, Executor)
        urgent.shutdown()  # a view: the executor stays open
        assert pool.submit(abs, -3).result(BOUNDED_WAIT) == 3


def test_timeout_fails_the_future_but_keeps_the_slot(clock: FakeClock, gate: Gate) -> None:
    with BoundedExecutor(max_workers=1, clock=clock) as pool:
        slow = pool.options(timeout=5).submit(gate.task, "late")
        eventually(lambda: gate.entered == 1)
        follower = pool.submit(str, "next")
        clock.advance(4.9)
        assert not slow.done()
        clock.advance(0.1)
        with pytest.raises(TaskTimeout, match="within its timeout of 5 s") as caught:
            slow.result(BOUNDED_WAIT)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.timeout == 5
        # The function still runs: its slot is held, so the follower has not started.
        assert pool.running == 1
        assert not follower.done()
        gate.open()
        assert follower.result(BOUNDED_WAIT) == "next"
        assert isinstance(slow.exception(), TaskTimeout)  # the late result is dropped


def test_task_finishing_in_time_keeps_its_result(clock: FakeClock) -> None:
    with BoundedExecutor(max_workers=2, timeout=10, clock=clock) as pool:
        future = pool.submit(str, "fast")
        assert future.result(BOUNDED_WAIT) == "fast"
        clock.advance(60)
        assert future.result() == "fast"
        no_limit = pool.options(timeout=None).submit(str, "unbounded")
        assert no_limit.result(BOUNDED_WAIT) == "unbounded"


def record_starts(clock: FakeClock, starts: list[float]) -> Any:
    def task() -> None:
        starts.append(clock.now())

    return task


def test_rate_limit_spaces_starts(clock: FakeClock) -> None:
    starts: list[float] = []
    with BoundedExecutor(max_workers=4, rate=2, per=10, clock=clock) as pool:
        futures = [pool.submit(record_starts(clock, starts)) for _ in range(4)]
        eventually(lambda: len(starts) == 1)
        for expected in (2, 3, 4):
            clock.advance(4.9)
            assert len(starts) == expected - 1
            clock.advance(0.1)
            eventually(lambda expected=expected: len(starts) == expected)
        wait(futures, timeout=BOUNDED_WAIT)
    assert starts == pytest.approx([0, 5, 10, 15])


def test_rate_limit_with_burst(clock: FakeClock) -> None:
    starts: list[float] = []
    with BoundedExecutor(max_workers=4, rate=1, per=1, burst=3, clock=clock) as pool:
        for _ in range(5):
            pool.submit(record_starts(clock, starts))
        eventually(lambda: len(starts) == 3)
        clock.advance(1)
        eventually(lambda: len(starts) == 4)
        clock.advance(1)
        eventually(lambda: len(starts) == 5)
    assert starts == [0, 0, 0, 1, 2]


def test_strict_window_lets_the_limit_through_then_waits_a_window(clock: FakeClock) -> None:
    starts: list[float] = []
    with BoundedExecutor(max_workers=5, rate=3, per=60, strict=True, clock=clock) as pool:
        for _ in range(7):
            pool.submit(record_starts(clock, starts))
        eventually(lambda: len(starts) == 3)
        clock.advance(59)
        assert len(starts) == 3
        clock.advance(1)
        eventually(lambda: len(starts) == 6)
        clock.advance(60)
        eventually(lambda: len(starts) == 7)
    assert starts == [0, 0, 0, 60, 60, 60, 120]


def test_a_limiter_shared_by_two_executors(clock: FakeClock) -> None:
    shared = jobq.TokenBucket(rate=1, per=1, clock=clock)
    starts: list[float] = []
    with (
        BoundedExecutor(max_workers=2, limiter=shared, clock=clock) as a,
        BoundedExecutor(max_workers=2, limiter=shared, clock=clock) as b,
    ):
        for pool in (a, b, a, b):
            pool.submit(record_starts(clock, starts))
        for expected in (1, 2, 3, 4):
            eventually(lambda expected=expected: len(starts) == expected)
            clock.advance(1)
    assert starts == [0, 1, 2, 3]


def test_set_rate_at_run_time(clock: FakeClock) -> None:
    starts: list[float] = []
    with BoundedExecutor(max_workers=2, rate=1, per=100, clock=clock) as pool:
        for _ in range(3):
            pool.submit(record_starts(clock, starts))
        eventually(lambda: len(starts) == 1)
        pool.set_rate(1, per=1)  # waiting workers see the new rate
        clock.advance(1)
        eventually(lambda: len(starts) == 2)
        pool.set_rate(None)
        eventually(lambda: len(starts) == 3)
        assert pool.limiter is None


def test_max_workers_can_change_at_run_time(gate: Gate) -> None:
    with BoundedExecutor(max_workers=1) as pool:
        futures = [pool.submit(gate.task) for _ in range(4)]
        eventually(lambda: pool.running == 1)
        pool.max_workers = 3
        eventually(lambda: pool.running == 3)
        assert pool.waiting == 1
        with pytest.raises(ValueError, match="max_workers must be an integer of at least 1"):
            pool.max_workers = 0
        gate.open()
        wait(futures, timeout=BOUNDED_WAIT)


def test_pause_and_resume(gate: Gate) -> None:
    with BoundedExecutor(max_workers=2) as pool:
        pool.pause()
        assert pool.paused
        futures = [pool.submit(str, n) for n in range(3)]
        assert not pool.wait_empty(timeout=0.05)
        assert pool.waiting == 3
        assert pool.running == 0
        pool.resume()
        assert [f.result(BOUNDED_WAIT) for f in futures] == ["0", "1", "2"]
        assert not pool.paused


def test_clear_cancels_every_waiting_future(gate: Gate) -> None:
    with BoundedExecutor(max_workers=1) as pool:
        running = pool.submit(gate.task, "kept")
        eventually(lambda: pool.running == 1)
        waiting = [pool.submit(str, n) for n in range(5)]
        assert pool.clear() == 5
        assert pool.waiting == 0
        done, _ = wait(waiting, timeout=BOUNDED_WAIT)
        assert done == set(waiting)
        for future in waiting:
            assert future.cancelled()
            with pytest.raises(CancelledError):
                future.result(BOUNDED_WAIT)
        gate.open()
        assert running.result(BOUNDED_WAIT) == "kept"


def test_cancelling_a_waiting_future_removes_it(gate: Gate) -> None:
    ran: list[int] = []
    with BoundedExecutor(max_workers=1) as pool:
        pool.submit(gate.task)
        eventually(lambda: pool.running == 1)
        futures = [pool.submit(ran.append, n) for n in range(3)]
        assert futures[1].cancel()
        assert futures[1].cancel()  # cancelling twice is harmless
        assert pool.waiting == 2
        assert next(as_completed(futures, timeout=BOUNDED_WAIT)) is futures[1]
        gate.open()
    assert ran == [0, 2]


def test_waits_for_idle_empty_and_size(clock: FakeClock, gate: Gate) -> None:
    with BoundedExecutor(max_workers=1, clock=clock) as pool:
        assert pool.wait_idle(timeout=0)
        pool.submit(gate.task)
        for n in range(3):
            pool.submit(str, n)
        eventually(lambda: pool.running == 1)
        results: list[bool] = []
        waiter = threading.Thread(target=lambda: results.append(pool.wait_idle(timeout=5)))
        waiter.start()
        # Advance only once the waiter has read the clock, or its 5 s start later.
        eventually(lambda: pool._core.change_waiters == 1)
        clock.advance(5)
        waiter.join(BOUNDED_WAIT)
        assert results == [False]
        assert pool.wait_size_less_than(4, timeout=0)
        assert not pool.wait_size_less_than(3, timeout=0)
        gate.open()
        assert pool.wait_empty(timeout=BOUNDED_WAIT)
        assert pool.wait_idle(timeout=BOUNDED_WAIT)
        assert pool.running == 0


def test_max_queued_raise(gate: Gate) -> None:
    with BoundedExecutor(max_workers=1, max_queued=2, when_full="raise") as pool:
        pool.submit(gate.task)
        eventually(lambda: pool.running == 1)
        pool.submit(str, 1)
        pool.submit(str, 2)
        with pytest.raises(QueueFull, match="already holds 2 waiting tasks") as caught:
            pool.submit(str, 3)
        assert caught.value.max_queued == 2
        assert pool.waiting == 2  # nothing was added
        gate.open()


def test_max_queued_block_waits_for_room(gate: Gate) -> None:
    with BoundedExecutor(max_workers=1, max_queued=1) as pool:
        pool.submit(gate.task)
        eventually(lambda: pool.running == 1)
        pool.submit(str, "queued")
        submitted = threading.Event()

        def producer() -> None:
            pool.submit(str, "blocked")
            submitted.set()

        thread = threading.Thread(target=producer)
        thread.start()
        assert not submitted.wait(0.1)
        gate.open()
        assert submitted.wait(BOUNDED_WAIT)
        thread.join(BOUNDED_WAIT)


def test_shutdown_behaves_like_thread_pool_executor(gate: Gate) -> None:
    pool = BoundedExecutor(max_workers=1)
    running = pool.submit(gate.task, "done")
    eventually(lambda: pool.running == 1)
    queued = [pool.submit(str, n) for n in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        pool.submit(str, 1)
    assert all(f.cancelled() for f in queued)
    gate.open()
    assert running.result(BOUNDED_WAIT) == "done"
    pool.shutdown(wait=True)


def test_shutdown_drains_a_paused_executor() -> None:
    pool = BoundedExecutor(max_workers=2)
    pool.pause()
    futures = [pool.submit(str, n) for n in range(5)]
    pool.shutdown(wait=True)
    assert [f.result(0) for f in futures] == ["0", "1", "2", "3", "4"]


def test_done_callbacks_may_submit_more_work() -> None:
    results: list[Any] = []
    finished = threading.Event()
    with BoundedExecutor(max_workers=1) as pool:

        def chain(future: Any) -> None:
            pool.submit(str, future.result()).add_done_callback(
                lambda f: (results.append(f.result()), finished.set())
            )

        pool.submit(abs, -5).add_done_callback(chain)
        assert finished.wait(BOUNDED_WAIT)
    assert results == ["5"]


def test_signals_report_start_success_failure_and_idle(clock: FakeClock, gate: Gate) -> None:
    seen: list[tuple[str, Any]] = []
    pool = BoundedExecutor(max_workers=1, clock=clock)

    def on_started(sender: Any, **kw: Any) -> None:
        seen.append(("started", kw["fn"].__name__))

    def on_succeeded(sender: Any, **kw: Any) -> None:
        seen.append(("succeeded", kw["result"]))

    def on_failed(sender: Any, **kw: Any) -> None:
        seen.append(("failed", type(kw["exception"]).__name__))

    def on_idle(sender: Any, **kw: Any) -> None:
        seen.append(("idle", sender is pool))

    connections = [
        (signals.task_started, on_started),
        (signals.task_succeeded, on_succeeded),
        (signals.task_failed, on_failed),
        (signals.executor_idle, on_idle),
    ]
    for signal, receiver in connections:
        signal.connect(receiver, sender=pool)
    try:
        pool.submit(abs, -1).result(BOUNDED_WAIT)
        pool.wait_idle(BOUNDED_WAIT)
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result(BOUNDED_WAIT)
        pool.wait_idle(BOUNDED_WAIT)
        slow = pool.options(timeout=1).submit(gate.task)
        eventually(lambda: gate.entered == 1)
        clock.advance(1)
        with pytest.raises(TaskTimeout):
            slow.result(BOUNDED_WAIT)
        gate.open()
        pool.shutdown()
    finally:
        for signal, receiver in connections:
            signal.disconnect(receiver, sender=pool)
    assert seen == [
        ("started", "abs"),
        ("succeeded", 1),
        ("idle", True),
        ("started", "divmod"),
        ("failed", "ZeroDivisionError"),
        ("idle", True),
        ("started", "task"),
        ("failed", "TaskTimeout"),
        ("idle", True),
    ]


def test_a_receiver_that_raises_is_logged_and_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    later: list[Any] = []

    def broken(sender: Any, **kw: Any) -> None:
        raise RuntimeError("receiver bug")

    def fine(sender: Any, **kw: Any) -> None:
        later.append(kw["result"])

    with BoundedExecutor(max_workers=1) as pool:
        signals.task_succeeded.connect(broken, sender=pool)
        signals.task_succeeded.connect(fine, sender=pool)
        try:
            with caplog.at_level(logging.ERROR, logger="jobq.signals"):
                assert pool.submit(abs, -2).result(BOUNDED_WAIT) == 2
                assert pool.submit(abs, -3).result(BOUNDED_WAIT) == 3
                pool.wait_idle(BOUNDED_WAIT)
        finally:
            signals.task_succeeded.disconnect(broken, sender=pool)
            signals.task_succeeded.disconnect(fine, sender=pool)
    assert later == [2, 3]
    assert "receiver bug" in caplog.text


def test_a_forgotten_executor_is_collected_and_its_threads_end() -> None:
    pool = BoundedExecutor(max_workers=2, name="forgotten")
    future = pool.submit(str, "x")
    assert future.result(BOUNDED_WAIT) == "x"
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    eventually(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("jobq-forgotten")]
    )


def test_work_submitted_before_interpreter_exit_still_finishes(tmp_path: Any) -> None:
    script = textwrap.dedent(
        """
        import time, jobq
        pool = jobq.BoundedExecutor(max_workers=2, rate=20, per=1)
        for n in range(6):
            pool.submit(lambda n=n: (time.sleep(0.01), print("ran", n, flush=True)))
        # no shutdown: like ThreadPoolExecutor, exit waits for submitted work
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert sorted(done.stdout.split("\n")[:-1]) == [f"ran {n}" for n in range(6)]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_workers": 0}, ValueError, "max_workers must be an integer of at least 1, got 0"),
        ({"rate": -1}, ValueError, "rate must be a finite number greater than 0, got -1"),
        ({"rate": 1, "per": 0}, ValueError, "per must be a finite number of seconds .* got 0"),
        ({"timeout": 0}, ValueError, "timeout must be a finite number of seconds .* got 0"),
        # Non-finite limits are refused, as p-queue refuses a non-finite interval;
        # per=inf was accepted, and with strict=True raised OverflowError.
        ({"rate": 1, "per": float("inf")}, ValueError, "per must be a finite number .* got inf"),
        ({"rate": 1, "per": float("inf"), "strict": True}, ValueError, "per must be a finite"),
        ({"rate": 1, "per": float("nan")}, ValueError, "per must be a finite number .* got nan"),
        ({"rate": float("inf")}, ValueError, "rate must be a finite number .* got inf"),
        ({"rate": float("inf"), "strict": True}, ValueError, "rate must be a finite number"),
        ({"rate": 1, "burst": float("inf")}, ValueError, "burst must be an integer"),
        ({"timeout": float("inf")}, ValueError, "timeout must be a finite number .* got inf"),
        ({"max_queued": 0}, ValueError, "max_queued must be an integer of at least 1"),
        ({"when_full": "drop"}, ValueError, "when_full must be 'block' or 'raise'"),
        ({"burst": 3}, jobq.ConfigurationError, "only apply with a rate"),
        ({"rate": 2.5, "strict": True}, ValueError, "whole number of calls"),
        ({"rate": 2, "strict": True, "burst": 2}, jobq.ConfigurationError, "burst does not"),
        ({"rate": 2, "limiter": jobq.TokenBucket(1)}, jobq.ConfigurationError, "either"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        BoundedExecutor(**kwargs)


def test_options_validate() -> None:
    with BoundedExecutor(max_workers=1) as pool:
        with pytest.raises(TypeError, match="priority must be an integer"):
            pool.options(priority="high")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
            pool.options(timeout=-1)
        with pytest.raises(ValueError, match="timeout must be a finite number of seconds"):
            pool.options(timeout=float("inf"))
        with pytest.raises(ValueError, match="per must be a finite number of seconds"):
            pool.set_rate(1, per=float("inf"))


def test_repr_shows_state() -> None:
    with BoundedExecutor(max_workers=2, rate=5, name="api") as pool:
        assert "api max_workers=2" in repr(pool)
        assert "TokenBucket(rate=5" in repr(pool)


def _first_then_three_by_priority(warm: bool, rate_limited: bool) -> tuple[list[str], bool]:
    """Submit "first", then "low", "high", "medium" at once to one slot; return the order
    they ran in, and whether "first" had started when its submit returned."""
    clock = FakeClock()
    order: list[str] = []
    submitted = threading.Event()

    def first() -> None:
        order.append("first")
        submitted.wait(BOUNDED_WAIT)  # hold the slot until the others are in

    rate: dict[str, Any] = {"rate": 1, "per": 1.0} if rate_limited else {}
    pool = BoundedExecutor(max_workers=1, clock=clock, **rate)
    try:
        if warm:  # a worker thread exists and waits for work
            pool.submit(order.append, "warm-up").result(timeout=BOUNDED_WAIT)
            assert pool.wait_idle(timeout=BOUNDED_WAIT)
            clock.advance(1.0)
            order.clear()
        pool.submit(first)
        started_by_submit = pool.running == 1 and pool.waiting == 0
        for name, priority in (("low", 0), ("high", 10), ("medium", 5)):
            pool.options(priority=priority).submit(order.append, name)
        submitted.set()
        for count in (2, 3, 4):  # a token each runs the rest, in whatever order
            clock.advance(1.0)
            eventually(lambda count=count: len(order) >= count)
    finally:  # a failure must not leave tasks waiting for fake seconds that never come
        pool.shutdown(cancel_futures=True)
    return order, started_by_submit


@pytest.mark.parametrize("warm", [False, True], ids=["new thread", "idle thread"])
@pytest.mark.parametrize("rate_limited", [False, True], ids=["no rate", "rate 1/s"])
def test_a_task_that_can_start_at_once_is_not_overtaken_by_later_ones(
    warm: bool, rate_limited: bool
) -> None:
    # p-queue's "rate-limit with setPriority()" case, without the setPriority: with
    # one slot and a token free, "first" starts when submitted; the others wait
    # (for its slot, and a token each) and run by priority. Before, "first" sat in
    # the heap until a worker woke, and "high" and "medium", submitted just after,
    # often went first.
    for _ in range(30):
        order, started_by_submit = _first_then_three_by_priority(warm, rate_limited)
        assert order == ["first", "high", "medium", "low"]
        assert started_by_submit


def test_a_task_started_by_submit_runs_even_if_the_executor_is_paused_at_once() -> None:
    release = threading.Event()
    with BoundedExecutor(max_workers=2) as pool:
        blocker = pool.submit(release.wait, BOUNDED_WAIT)
        started = pool.submit(lambda: "ran")  # a slot is free: it starts now
        pool.pause()
        queued = pool.submit(lambda: "later")  # paused: it waits
        assert started.result(timeout=BOUNDED_WAIT) == "ran"
        assert pool.waiting == 1
        assert not queued.done()
        release.set()
        pool.resume()
        assert queued.result(timeout=BOUNDED_WAIT) == "later"
        assert blocker.result(timeout=BOUNDED_WAIT)
