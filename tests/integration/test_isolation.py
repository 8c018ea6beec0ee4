"""Tasks declared with ``isolation="process"``: real child processes, killed at the
task's timeout or on cancel; a crash fails only its attempt. No mocks: the tasks
block in C code (libc ``sleep``, a socket ``recv``) or crash for real."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

import jobq
from jobq import JobStatus
from jobq.testing import FakeClock
from jobq.worker.isolation import children
from tests.helpers import BOUNDED_WAIT, MakeQueue, eventually, wait_for

LIBC = ctypes.CDLL(None)


def gone(pid: int) -> bool:
    """True once process ``pid`` no longer runs (reaped, or a zombie nobody reaps)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or the read
        return True


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def settled(queue: jobq.DurableQueue, ids: list[int], timeout: float = 30.0) -> list[jobq.Job]:
    wait_for(
        lambda: all(queue.get(i).status.is_final for i in ids), "jobs final", timeout, interval=0.02
    )
    return [queue.get(i) for i in ids]


def test_a_task_blocked_in_c_code_is_killed_at_its_timeout_while_other_jobs_go_on(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("sleep_in_c", timeout=1, isolation="process", max_attempts=2, backoff=0)
    def sleep_in_c() -> None:
        jobq.current_job().set_progress({"pid": os.getpid()})
        LIBC.sleep(120)  # C code: no Python signal handler, no exception, ever

    @queue.task("quick", isolation="process")
    def quick(n: int) -> int:
        return n * 2

    @queue.task("threaded")
    def threaded(n: int) -> int:
        return n + 1

    hung = sleep_in_c.enqueue()
    others = [quick.enqueue(n).id for n in range(5)] + [threaded.enqueue(n).id for n in range(5)]
    pool = queue.start_workers(concurrency=2)
    try:
        done = settled(queue, others)
        assert [job.status for job in done] == [JobStatus.COMPLETED] * 10
        assert [job.decoded_result() for job in done] == [0, 2, 4, 6, 8, 1, 2, 3, 4, 5]
        [final] = settled(queue, [hung.id])
        # Every other job finished while the hung one still held its first child.
        assert max(job.finished_at or 0.0 for job in done) < final.finished_at
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert final.status is JobStatus.FAILED
    assert final.attempts == 2  # retried by the usual rules, then failed
    assert final.error is not None
    assert final.error.type == "TaskTimeout"
    assert "the child process running it was killed after 1 s" in final.error.message
    assert final.started_at is not None
    assert final.finished_at is not None
    assert 1.0 <= final.finished_at - final.started_at < 1.0 + BOUNDED_WAIT
    assert gone(final.decoded_progress()["pid"])


def test_the_timeout_is_met_on_the_queue_clock(tmp_path: Path) -> None:
    clock = FakeClock(1_800_000_000.0)
    queue = jobq.DurableQueue(
        tmp_path / "jobs.db", clock=clock, poll_interval=0.01, lease_seconds=100_000
    )
    left, right = socket.socketpair()  # nobody ever writes to `right`

    # Ten minutes on the queue's clock: only the fake clock's jump can end it in time.
    @queue.task("hung_read", timeout=600, isolation="process", max_attempts=1)
    def hung_read() -> None:
        jobq.current_job().set_progress(os.getpid())
        left.close()
        right.recv(1)  # a hung socket: blocks in the kernel

    job = hung_read.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        wait_for(lambda: queue.get(job.id).progress is not None, "the task started")
        pid = queue.get(job.id).decoded_progress()
        assert queue.get(job.id).status is JobStatus.PROCESSING
        [entry] = pool.running()
        assert (entry["isolation"], entry["child_pid"]) == ("process", pid)
        assert not pool.running()[0]["stuck"]
        clock.advance(601)
        [failed] = settled(queue, [job.id])
        assert failed.status is JobStatus.FAILED
        assert failed.error is not None
        assert failed.error.type == "TaskTimeout"
        eventually(lambda: gone(pid))
        assert pool.running() == []
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
        left.close()
        right.close()
        queue.close()


def test_a_crashed_child_fails_only_its_attempt(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("segfault", isolation="process", max_attempts=2, backoff=0)
    def segfault() -> None:
        ctypes.string_at(0)  # reads address 0: SIGSEGV

    @queue.task("leave", isolation="process", max_attempts=1)
    def leave() -> None:
        os._exit(3)

    @queue.task("whoami", isolation="process")
    def whoami() -> int:
        return os.getpid()

    crashed, left = segfault.enqueue(), leave.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        crash, exit3 = settled(queue, [crashed.id, left.id])
        after = [whoami.enqueue().id for _ in range(3)]
        pids = [job.decoded_result() for job in settled(queue, after)]
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert crash.status is JobStatus.FAILED
    assert crash.attempts == 2
    assert crash.error is not None
    assert crash.error.type == "ChildProcessDied"
    assert "the process running the task died with signal SIGSEGV" in crash.error.message
    assert exit3.error is not None
    assert "the process running the task exited with status 3" in exit3.error.message
    # The worker went on: a new child ran the next jobs, warm from one to the next.
    assert os.getpid() not in pids
    assert len(set(pids)) == 1


def test_results_errors_and_the_job_context_come_back(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("report", isolation="process")
    def report(items: list[int]) -> dict[str, Any]:
        job = jobq.current_job()
        job.set_progress({"done": len(items)})
        job.log("written in the child")
        return {"sum": sum(items), "id": job.id, "attempt": job.attempt, "name": job.job.name}

    @queue.task("refuse", isolation="process", max_attempts=1)
    def refuse(why: str) -> None:
        raise ValueError(f"refused: {why}")

    @queue.task("give_up", isolation="process")
    def give_up() -> None:
        raise jobq.Fail("no point in trying again")

    ok, bad, fail = report.enqueue([1, 2, 3]), refuse.enqueue("too big"), give_up.enqueue()
    pool = queue.start_workers(concurrency=2)
    try:
        done, refused, failed = settled(queue, [ok.id, bad.id, fail.id])
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert done.decoded_result() == {"sum": 6, "id": ok.id, "attempt": 1, "name": "report"}
    assert done.decoded_progress() == {"done": 3}
    assert [line.message for line in queue.job_logs(ok.id)] == ["written in the child"]
    assert refused.status is JobStatus.FAILED
    assert refused.error is not None
    assert (refused.error.type, refused.error.message) == ("ValueError", "refused: too big")
    assert refused.error.traceback is not None
    assert "in refuse" in refused.error.traceback
    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 1


def test_cancelling_a_running_isolated_job_kills_its_child(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01, lease_seconds=1.5)  # heartbeat every 0.5 s

    @queue.task("forever", isolation="process")
    def forever() -> None:
        jobq.current_job().set_progress(os.getpid())
        LIBC.sleep(120)

    job = forever.enqueue()
    pool = queue.start_workers(concurrency=1)
    try:
        wait_for(lambda: queue.get(job.id).progress is not None, "the task started")
        pid = queue.get(job.id).decoded_progress()
        queue.cancel(job.id)
        [cancelled] = settled(queue, [job.id])
        assert cancelled.status is JobStatus.CANCELLED
        eventually(lambda: gone(pid))
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_stopping_the_pool_ends_its_children(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("pid", isolation="process")
    def pid() -> int:
        return os.getpid()

    pool = queue.start_workers(concurrency=2)
    try:
        [job] = settled(queue, [pid.enqueue().id])
        assert pool.children.pids() == [job.decoded_result()]
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert gone(job.decoded_result())
    assert pool.children.pids() == []


def test_thread_isolation_stays_the_default(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("pid")
    def pid() -> int:
        return os.getpid()

    assert pid.isolation == "thread"
    pool = queue.start_workers(concurrency=1)
    try:
        [job] = settled(queue, [pid.enqueue().id])
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert job.decoded_result() == os.getpid()
    assert pool.children.pids() == []


@pytest.mark.parametrize("bad", ["processes", "", None, 1])
def test_a_bad_isolation_is_refused_naming_the_option(make_queue: MakeQueue, bad: Any) -> None:
    queue = make_queue()
    with pytest.raises(ValueError, match=r"isolation must be 'thread' or 'process', got"):
        queue.task("t", isolation=bad)
    assert queue.tasks == {}


def test_a_child_killed_while_idle_is_replaced(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("pid", isolation="process")
    def pid() -> int:
        return os.getpid()

    pool = queue.start_workers(concurrency=1)
    try:
        [first] = settled(queue, [pid.enqueue().id])
        os.kill(first.decoded_result(), signal.SIGKILL)  # as the OOM killer would
        eventually(lambda: gone(first.decoded_result()))
        [second] = settled(queue, [pid.enqueue().id])
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert second.status is JobStatus.COMPLETED
    assert second.attempts == 1
    assert second.decoded_result() != first.decoded_result()


def test_a_fork_server_killed_is_replaced(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)

    @queue.task("parent", isolation="process")
    def parent() -> int:
        return os.getppid()

    pool = queue.start_workers(concurrency=1)
    try:
        [first] = settled(queue, [parent.enqueue().id])
        server = first.decoded_result()
        os.kill(server, signal.SIGKILL)  # its child dies with it (PR_SET_PDEATHSIG)
        eventually(lambda: gone(server))
        [second] = settled(queue, [parent.enqueue().id])
        assert second.status is JobStatus.COMPLETED
        new_server = second.decoded_result()
        assert new_server != server
        assert parent_of(new_server) == os.getpid()  # a new server of this worker's
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_a_fork_server_that_does_not_answer_is_replaced(
    make_queue: MakeQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children, "ANSWER_TIMEOUT", 0.5)  # instead of 10 s
    queue = make_queue(poll_interval=0.01)

    @queue.task("parent", isolation="process")
    def parent() -> int:
        return os.getppid()

    pool = queue.start_workers(concurrency=1)
    try:
        [first] = settled(queue, [parent.enqueue().id])
        server = first.decoded_result()
        os.kill(server, signal.SIGSTOP)  # as if deadlocked right after its fork
        [child] = pool.children.pids()
        os.kill(child, signal.SIGKILL)  # the next job needs a new child from it
        eventually(lambda: gone(child))
        [second] = settled(queue, [parent.enqueue().id])
        assert second.status is JobStatus.COMPLETED
        assert second.attempts == 1
        assert second.decoded_result() != server
        eventually(lambda: gone(server))
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)


def test_tasks_registered_after_the_pool_started_still_run_isolated(make_queue: MakeQueue) -> None:
    queue = make_queue(poll_interval=0.01)
    pool = queue.start_workers(concurrency=1)
    try:
        # No isolated task when the pool started: its fork server starts now.
        @queue.task("early", isolation="process")
        def early() -> int:
            return os.getpid()

        [first] = settled(queue, [early.enqueue().id])

        # Unknown to that server: a new one is forked, which knows it.
        @queue.task("late", isolation="process")
        def late() -> int:
            return os.getpid()

        [second, third] = settled(queue, [late.enqueue().id, early.enqueue().id])
    finally:
        assert pool.stop(timeout=BOUNDED_WAIT)
    assert [job.status for job in (first, second, third)] == [JobStatus.COMPLETED] * 3
    assert os.getpid() not in {first.decoded_result(), second.decoded_result()}
    assert third.decoded_result() == second.decoded_result()  # the new child, kept warm
