"""DurableQueue's API, driven one step at a time with run_until_empty and a fake clock."""

from __future__ import annotations

import pytest

import jobq
from jobq import DurableQueue, JobStatus
from jobq.testing import FakeClock
from tests.helpers import MakeQueue

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    return make_queue(clock=clock)


def test_enqueue_then_run(queue: DurableQueue) -> None:
    seen: list[tuple[int, str]] = []

    @queue.task()
    def greet(user_id: int, greeting: str = "hello") -> str:
        seen.append((user_id, greeting))
        return f"{greeting} {user_id}"

    job = greet.enqueue(7, greeting="hi")
    assert job.status is JobStatus.PENDING
    assert job.name == "tests.unit.test_durable_queue.greet" or job.name.endswith(".greet")
    assert greet(1) == "hello 1"  # calling the task calls the function
    assert queue.run_until_empty() == 1
    done = queue.get(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.decoded_result() == "hi 7"
    assert seen == [(1, "hello"), (7, "hi")]


def test_wrong_arguments_and_non_json_are_refused_before_writing(queue: DurableQueue) -> None:
    @queue.task("notify")
    def notify(user_id: int) -> None: ...

    with pytest.raises(TypeError, match="cannot enqueue notify: missing a required argument"):
        notify.enqueue()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="cannot enqueue notify: got an unexpected keyword"):
        notify.enqueue(1, colour="red")  # type: ignore[call-arg]
    with pytest.raises(jobq.PayloadError, match=r"notify arguments\['args'\]\[0\] is a set"):
        notify.enqueue({1, 2})  # type: ignore[arg-type]
    assert queue.list() == []


def test_enqueue_by_name_and_unknown_names(queue: DurableQueue) -> None:
    @queue.task("add")
    def add(a: int, b: int) -> int:
        return a + b

    job = queue.enqueue("add", 2, b=3)
    queue.run_until_empty()
    assert queue.get(job.id).decoded_result() == 5
    with pytest.raises(jobq.UnknownTask, match=r"no task named 'sub' is registered.*'add'"):
        queue.enqueue("sub", 1, 2)


def test_submit_needs_a_configured_queue(queue: DurableQueue) -> None:
    @queue.task("ping")
    def ping() -> str:
        return "pong"

    jobq.configure(None)
    with pytest.raises(jobq.NotConfigured, match="no default queue is configured"):
        jobq.submit("ping")
    jobq.configure(queue)
    try:
        job = jobq.submit(ping)
        assert queue.get(job.id).status is JobStatus.PENDING
    finally:
        jobq.configure(None)


def test_priority_then_run_at_order(queue: DurableQueue, clock: FakeClock) -> None:
    order: list[str] = []

    @queue.task("record")
    def record(label: str) -> None:
        order.append(label)

    record.enqueue("a")
    clock.advance(1)
    record.options(priority=5).enqueue("b")
    record.enqueue("c")
    record.options(priority=-1).enqueue("d")
    queue.run_until_empty()
    assert order == ["b", "a", "c", "d"]


def test_delay_and_run_at(queue: DurableQueue, clock: FakeClock) -> None:
    ran: list[float] = []

    @queue.task("tick")
    def tick() -> None:
        ran.append(clock.now())

    tick.options(delay=60).enqueue()
    tick.options(run_at=START + 30).enqueue()
    assert queue.run_until_empty() == 0
    assert queue.stats().queues["default"].scheduled == 2
    clock.advance(30)
    assert queue.run_until_empty() == 1
    clock.advance(30)
    assert queue.run_until_empty() == 1
    assert ran == [START + 30, START + 60]
    with pytest.raises(ValueError, match="either delay= or run_at="):
        tick.options(delay=1, run_at=START)


def test_retries_with_backoff_then_final_failure(queue: DurableQueue, clock: FakeClock) -> None:
    attempts: list[int] = []

    @queue.task("flaky", max_attempts=3, backoff=10)
    def flaky() -> None:
        attempts.append(jobq.current_job().attempt)
        raise ConnectionError("smtp down")

    job = flaky.enqueue()
    assert queue.run_until_empty() == 1
    retrying = queue.get(job.id)
    assert retrying.status is JobStatus.PENDING
    assert retrying.run_at == START + 10
    assert retrying.error is not None
    assert retrying.error.type == "ConnectionError"
    clock.advance(9)
    assert queue.run_until_empty() == 0
    clock.advance(1)
    assert queue.run_until_empty() == 1
    clock.advance(10)
    assert queue.run_until_empty() == 1
    final = queue.get(job.id)
    assert final.status is JobStatus.FAILED
    assert final.attempts == 3
    assert final.error is not None
    assert final.error.message == "smtp down"
    assert final.error.traceback is not None
    assert "ConnectionError: smtp down" in final.error.traceback
    assert attempts == [1, 2, 3]


def test_fail_and_retry_control_exceptions(queue: DurableQueue, clock: FakeClock) -> None:
    calls: list[str] = []

    @queue.task("polite", max_attempts=2)
    def polite(mode: str) -> str:
        calls.append(mode)
        if mode == "fail":
            raise jobq.Fail("bad address, do not retry")
        if len(calls) < 4:
            raise jobq.Retry(delay=5)  # does not use up an attempt
        return "sent"

    failing = polite.enqueue("fail")
    queue.run_until_empty()
    assert queue.get(failing.id).status is JobStatus.FAILED
    assert queue.get(failing.id).attempts == 1

    snoozing = polite.enqueue("snooze")
    for _ in range(3):
        queue.run_until_empty()
        clock.advance(5)
    queue.run_until_empty()
    done = queue.get(snoozing.id)
    assert done.status is JobStatus.COMPLETED
    assert done.attempts == 1  # three snoozes, one real attempt


def test_cancel_pending_and_retry_failed(queue: DurableQueue) -> None:
    @queue.task("boom", max_attempts=1)
    def boom() -> None:
        raise RuntimeError("boom")

    pending = boom.enqueue()
    assert queue.cancel(pending.id).status is JobStatus.CANCELLED
    assert queue.run_until_empty() == 0
    failed = boom.enqueue()
    queue.run_until_empty()
    assert queue.get(failed.id).status is JobStatus.FAILED
    again = queue.retry(failed.id)
    assert again.status is JobStatus.PENDING
    assert again.attempts == 0
    with pytest.raises(ValueError, match="is pending; only failed or cancelled"):
        queue.retry(again.id)
    with pytest.raises(jobq.JobNotFound, match="no job with id 999"):
        queue.get(999)
    with pytest.raises(jobq.JobNotFound):
        queue.cancel(999)


def test_cancel_of_a_running_job_reaches_the_handler(queue: DurableQueue) -> None:
    @queue.task("long")
    def long_job() -> str:
        context = jobq.current_job()
        queue.cancel(context.id)  # as if an operator clicked "cancel" meanwhile
        # The worker learns of it on its next heartbeat; inline, ask the context directly.
        context.request_cancel()
        assert context.cancel_requested
        return "stopped early"

    job = long_job.enqueue()
    queue.run_until_empty()
    assert queue.get(job.id).status is JobStatus.CANCELLED


def test_progress_is_visible(queue: DurableQueue) -> None:
    @queue.task("export")
    def export() -> None:
        jobq.current_job().set_progress({"done": 40, "of": 100})

    job = export.enqueue()
    queue.run_until_empty()
    assert queue.get(job.id).decoded_progress() == {"done": 40, "of": 100}
    with pytest.raises(RuntimeError, match="outside a job"):
        jobq.current_job()


def test_unique_key_returns_the_live_job(queue: DurableQueue) -> None:
    @queue.task("sync")
    def sync(account: int) -> None: ...

    first = sync.options(unique_key="sync-1").enqueue(1)
    second = sync.options(unique_key="sync-1").enqueue(1)
    assert second.id == first.id
    queue.run_until_empty()
    third = sync.options(unique_key="sync-1").enqueue(1)
    assert third.id != first.id


def test_unknown_task_fails_clearly_and_the_queue_keeps_working(
    queue: DurableQueue, make_queue: MakeQueue, clock: FakeClock
) -> None:
    other = make_queue("jobs", clock=clock)

    @other.task("only-elsewhere")
    def elsewhere() -> None: ...

    @queue.task("here")
    def here() -> str:
        return "ok"

    orphan = elsewhere.enqueue()
    fine = here.enqueue()
    queue.run_until_empty()
    failed = queue.get(orphan.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert "no task named 'only-elsewhere' is registered" in failed.error.message
    assert queue.get(fine.id).status is JobStatus.COMPLETED
    other.close()


def test_non_json_result_fails_with_a_clear_error(queue: DurableQueue) -> None:
    @queue.task("returns_set", max_attempts=5)
    def returns_set() -> object:
        return {1, 2}

    job = returns_set.enqueue()
    queue.run_until_empty()
    failed = queue.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 1  # retrying cannot help
    assert failed.error is not None
    assert "result of returns_set is a set" in failed.error.message


def test_enqueue_many_in_one_call(queue: DurableQueue) -> None:
    @queue.task("mail")
    def mail(to: str, subject: str = "news") -> None: ...

    ids = mail.enqueue_many([(f"user{n}@example.com",) for n in range(1000)])
    assert len(ids) == 1000
    assert queue.stats().queues["default"].counts[JobStatus.PENDING] == 1000
    with pytest.raises(TypeError, match="cannot enqueue mail"):
        mail.enqueue_many([("a@example.com",), {"subject": "missing to"}])
    assert queue.stats().queues["default"].counts[JobStatus.PENDING] == 1000


def test_list_with_filters_and_cursor(queue: DurableQueue) -> None:
    @queue.task("a")
    def a() -> None: ...

    @queue.task("b", queue="other")
    def b() -> None: ...

    ids = [a.enqueue().id for _ in range(5)] + [b.enqueue().id for _ in range(2)]
    first_page = queue.list(limit=3)
    assert [j.id for j in first_page] == ids[:3]
    assert [j.id for j in queue.list(limit=3, after=first_page[-1].id)] == ids[3:6]
    assert [j.id for j in queue.list(queue="other")] == ids[5:]
    assert [j.id for j in queue.list(name="b", status="pending")] == ids[5:]


def test_pause_and_resume_a_queue(queue: DurableQueue) -> None:
    @queue.task("p")
    def p() -> None: ...

    queue.pause("default")
    p.enqueue()
    assert queue.run_until_empty() == 0
    queue.resume("default")
    assert queue.run_until_empty() == 1


def test_purge_and_stats(queue: DurableQueue, clock: FakeClock) -> None:
    @queue.task("work")
    def work(ok: bool) -> None:
        if not ok:
            raise jobq.Fail("no")

    work.enqueue(True)
    work.enqueue(False)
    queue.run_until_empty()
    stats = queue.stats()
    assert stats.completed_last_minute == 1
    assert stats.failed_last_minute == 1
    clock.advance(3600)
    assert queue.purge(older_than=1800, statuses=["completed"]) == 1
    assert queue.purge(older_than=1800) == 1
    assert queue.list() == []


def test_inline_mode_runs_at_enqueue(make_queue: MakeQueue, clock: FakeClock) -> None:
    queue = make_queue("inline", inline=True, clock=clock)

    @queue.task("double")
    def double(n: int) -> int:
        if n < 3:
            double.enqueue(n + 1)  # nested enqueues run after, not inside
        return n * 2

    job = double.enqueue(1)
    assert job.status is JobStatus.COMPLETED
    assert job.decoded_result() == 2
    assert [j.status for j in queue.list()] == [JobStatus.COMPLETED] * 3
    queue.close()


def test_task_registration_errors(queue: DurableQueue) -> None:
    @queue.task("dup")
    def one() -> None: ...

    with pytest.raises(jobq.ConfigurationError, match="already registered as task 'dup'"):

        @queue.task("dup")
        def two() -> None: ...

    with pytest.raises(TypeError, match="with parentheses"):
        queue.task(one)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_attempts must be an integer of at least 1"):
        queue.task("x", max_attempts=0)


def test_testing_helpers_check_what_was_enqueued(queue: DurableQueue) -> None:
    from jobq.testing import assert_enqueued, assert_not_enqueued, enqueued

    @queue.task("welcome")
    def welcome(email: str, *, plan: str = "free") -> None: ...

    @queue.task("other")
    def other() -> None: ...

    assert_not_enqueued(queue, welcome)
    job = welcome.enqueue("ada@example.com", plan="pro")
    assert assert_enqueued(queue, welcome, "ada@example.com", plan="pro").id == job.id
    assert assert_enqueued(queue, "welcome", "ada@example.com", plan="pro").id == job.id
    with pytest.raises(AssertionError, match="no pending welcome job with arguments"):
        assert_enqueued(queue, welcome, "ada@example.com")
    with pytest.raises(AssertionError, match="1 pending job"):
        assert_not_enqueued(queue, welcome)
    other.enqueue()
    assert [j.name for j in enqueued(queue)] == ["welcome", "other"]
    assert [j.name for j in enqueued(queue, other)] == ["other"]


def test_unknown_task_can_wait_for_a_worker_that_knows_it(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    producer = make_queue("deploy", clock=clock)
    old_worker = make_queue("deploy", clock=clock, unknown_tasks="wait")

    @producer.task("new-feature")
    def new_feature() -> str:
        return "done"

    job = new_feature.enqueue()
    assert old_worker.run_until_empty() == 1
    waiting = old_worker.get(job.id)
    assert waiting.status is JobStatus.PENDING
    assert waiting.attempts == 0  # waiting used no attempt
    assert waiting.run_at == START + 60
    clock.advance(60)
    assert producer.run_until_empty() == 1
    assert producer.get(job.id).status is JobStatus.COMPLETED
    producer.close()
    old_worker.close()


def test_a_dead_workers_job_is_rescued_after_its_lease(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task("resilient")
    def resilient() -> str:
        return f"attempt {jobq.current_job().attempt}"

    job = resilient.enqueue()
    # A worker claims the job, then dies without a word.
    claimed = queue.storage.claim(
        ["default"], owner="dead-worker", now=clock.now(), lease_seconds=queue.lease_seconds
    )
    assert [j.id for j in claimed] == [job.id]
    clock.advance(queue.lease_seconds - 1)
    assert queue.run_until_empty() == 0  # the lease still holds: nobody else runs it
    clock.advance(1)
    assert queue.run_until_empty() == 1
    done = queue.get(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.decoded_result() == "attempt 2"  # the lost attempt counted
    assert done.error is not None
    assert done.error.type == "LeaseExpired"


def test_oversized_arguments_are_refused_and_nothing_is_stored(
    make_queue: MakeQueue, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock, max_payload_bytes=1000)

    @queue.task("store")
    def store(text: str) -> None: ...

    store.enqueue("x" * 900)
    with pytest.raises(jobq.PayloadError, match="over this queue's limit of 1,000"):
        store.enqueue("é" * 600)  # 600 characters, 1,200 bytes of UTF-8
    with pytest.raises(jobq.PayloadError, match="max_payload_bytes"):
        store.enqueue_many([("small",), ("y" * 2000,)])
    assert [job.payload for job in queue.list()] == [store.encode(("x" * 900,), {})]
    with pytest.raises(ValueError, match="max_payload_bytes"):
        make_queue("other", max_payload_bytes=0)
