"""Chain steps and dependency options, driven one step at a time with a fake clock:
what a step stores, delays and expiry inside a chain, inline mode, and options checks."""

from __future__ import annotations

import json

import pytest

import jobq
from jobq import DurableQueue, JobOptions, JobStatus
from jobq.chains import Chain, result_argument
from jobq.task_options import dependency_ids
from jobq.testing import FakeClock
from tests.helpers import MakeQueue

START = 1_800_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def queue(make_queue: MakeQueue, clock: FakeClock) -> DurableQueue:
    return make_queue(clock=clock)


def test_a_step_stores_its_own_arguments_and_takes_the_result_only_after_a_step(
    queue: DurableQueue,
) -> None:
    @queue.task("pair", queue="q", priority=2)
    def pair(first: object, second: int = 0) -> list[object]:
        return [first, second]

    step = pair.s(second=5)
    assert repr(step) == "pair.s(second=5)"
    assert repr(pair.si(1)) == "pair.si(1)"
    with pytest.raises(TypeError, match="first"):
        step.new_job(after_step=False)  # the first step gets no result: `first` is missing
    later = step.new_job(after_step=True)  # checked with a stand-in for the result
    assert later.takes_result
    assert json.loads(later.payload) == {"args": [], "kwargs": {"second": 5}}
    assert (later.queue, later.priority) == ("q", 2)
    alone = pair.si(1).new_job(after_step=True)
    assert not alone.takes_result
    assert json.loads(alone.payload) == {"args": [1], "kwargs": {}}


def test_a_step_delay_counts_from_the_enqueue_and_after_the_step_before(
    queue: DurableQueue, clock: FakeClock
) -> None:
    ran: list[str] = []

    @queue.task("note")
    def note(previous: object = None, *, name: str = "") -> str:
        ran.append(name)
        return name

    chain = queue.chain(note.s(name="a"), note.s(name="b").options(delay=60))
    assert queue.get(chain.last_id).run_at == START + 60  # the time it asked for
    assert queue.run_until_empty() == 1
    assert ran == ["a"]
    assert queue.get(chain.last_id).status is JobStatus.PENDING  # released, not yet due
    clock.advance(60)
    assert queue.run_until_empty() == 1
    assert ran == ["a", "b"]


def test_an_expiring_step_ends_cancelled_and_so_do_the_steps_after_it(
    queue: DurableQueue, clock: FakeClock
) -> None:
    @queue.task("slow")
    def slow(previous: object = None) -> None: ...

    chain = queue.chain(slow.s(), slow.s().options(expires_in=10), slow.s())
    clock.advance(20)
    assert queue.storage.expire_jobs(now=clock.now()) == [chain.job_ids[1]]
    statuses = [queue.get(job_id).status for job_id in chain.job_ids]
    assert statuses == [JobStatus.PENDING, JobStatus.CANCELLED, JobStatus.CANCELLED]


def test_an_inline_queue_runs_a_whole_chain_at_enqueue(make_queue: MakeQueue) -> None:
    queue = make_queue(inline=True)

    @queue.task("inc")
    def inc(x: int) -> int:
        return x + 1

    chain = queue.chain(inc.s(1), inc.s(), inc.s())
    assert queue.get(chain.last_id).decoded_result() == 4


def test_dependency_options_take_jobs_or_ids_and_refuse_the_rest(queue: DurableQueue) -> None:
    @queue.task("t")
    def t() -> None: ...

    job = t.enqueue()
    assert dependency_ids([job, 7, job.id, Chain((8, 9))]) == (job.id, 7, 9)
    assert dependency_ids(None) is None
    assert JobOptions(depends_on=[job]).depends_on == (job.id,)  # type: ignore[list-item]
    for bad in ("12", [0], [True], [1.5], 3):
        with pytest.raises(TypeError, match="depends_on"):
            dependency_ids(bad)
    with pytest.raises(ValueError, match="at most 1000"):
        JobOptions(depends_on=tuple(range(1, 1002)))
    with pytest.raises(ValueError, match="on_dependency_failure"):
        JobOptions(on_dependency_failure="skip")
    assert result_argument(None) is None
    assert result_argument('{"a": [1]}') == {"a": [1]}


def test_a_chain_handle_names_its_first_and_last_jobs() -> None:
    chain = Chain((4, 5, 6))
    assert (chain.first_id, chain.last_id, chain.id) == (4, 6, 6)
    assert isinstance(chain, tuple)
    assert jobq.Chain is Chain
