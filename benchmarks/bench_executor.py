"""Benchmark jobq's BoundedExecutor and rate limiters against their peers, side by side.

Run from the repository root (needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python benchmarks/bench_executor.py           # full run, well under 2 minutes
    python benchmarks/bench_executor.py --quick   # a few seconds; just checks it works

Contestants of one benchmark are interleaved (each round runs every contestant
once, in a rotated order) and every figure is the median over the rounds, so a
noisy neighbour hurts all of them alike. A ratio is the median of the per-round
ratios jobq/peer, both measured in this same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import metadata
from typing import NamedTuple

import jobq

try:
    import limits
    import pyrate_limiter
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"missing a peer library ({exc.name}); install them with: pip install -e '.[bench]'")

HUGE = 10**9  # a limit far above any rate reached here: every call should be granted
WORKERS = 4
THREADS = 4
BATCH = 64  # calls between two looks at the clock in the time-boxed loops

HEADER = ("measurement", "jobq", "peer", "peer value", "ratio", "goal", "met?")


@dataclass(frozen=True)
class Settings:
    rounds: int
    tasks: int  # tasks per submit-then-collect run
    acquire_seconds: float  # length of one single-thread acquire run
    contended_seconds: float  # length of one run with THREADS threads
    strict_rate: int
    strict_per: float
    strict_tasks: int


FULL = Settings(
    rounds=7,
    tasks=20_000,
    acquire_seconds=0.2,
    contended_seconds=0.3,
    strict_rate=20,
    strict_per=0.5,
    strict_tasks=100,
)
QUICK = Settings(
    rounds=2,
    tasks=2_000,
    acquire_seconds=0.02,
    contended_seconds=0.03,
    strict_rate=10,
    strict_per=0.2,
    strict_tasks=30,
)


class Sample(NamedTuple):
    micros: float  # microseconds per task or per call
    refused: float = 0.0  # fraction of calls refused


def interleave(
    contestants: dict[str, Callable[[], Sample]], rounds: int
) -> dict[str, list[Sample]]:
    """Run every contestant once per round, rotating the order from round to round."""
    names = list(contestants)
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            samples[name].append(contestants[name]())
    return samples


def median(samples: list[Sample]) -> float:
    return statistics.median(sample.micros for sample in samples)


def median_refused(samples: list[Sample]) -> float:
    return statistics.median(sample.refused for sample in samples)


def paired_ratio(ours: list[Sample], theirs: list[Sample]) -> float:
    return statistics.median(a.micros / b.micros for a, b in zip(ours, theirs, strict=True))


# -- 1. submit everything, then collect every result -------------------------------------------


def noop() -> None:
    return None


Submit = Callable[[int], Future[None]]


def plain(make: Callable[[], Executor]) -> Callable[[], tuple[Executor, Submit]]:
    def setup() -> tuple[Executor, Submit]:
        executor = make()
        submit = executor.submit
        return executor, lambda i: submit(noop)

    return setup


def with_priorities() -> tuple[Executor, Submit]:
    executor = jobq.BoundedExecutor(max_workers=WORKERS)
    submits = [executor.options(priority=p).submit for p in range(8)]
    return executor, lambda i: submits[i & 7](noop)


def submit_then_collect(
    setup: Callable[[], tuple[Executor, Submit]], n: int
) -> Callable[[], Sample]:
    def run() -> Sample:
        executor, submit = setup()
        try:
            for future in [submit(i) for i in range(2 * WORKERS)]:  # threads exist before timing
                future.result()
            start = time.perf_counter()
            futures = [submit(i) for i in range(n)]
            for future in futures:
                future.result()
            elapsed = time.perf_counter() - start
        finally:
            executor.shutdown(wait=True)
        return Sample(elapsed / n * 1e6)

    return run


def bench_executors(settings: Settings) -> dict[str, list[Sample]]:
    n = settings.tasks
    contestants = {
        "ThreadPoolExecutor": plain(lambda: ThreadPoolExecutor(max_workers=WORKERS)),
        "BoundedExecutor": plain(lambda: jobq.BoundedExecutor(max_workers=WORKERS)),
        "BoundedExecutor rate=1e9": plain(
            lambda: jobq.BoundedExecutor(max_workers=WORKERS, rate=HUGE)
        ),
        "BoundedExecutor rate=1e9 strict": plain(
            lambda: jobq.BoundedExecutor(max_workers=WORKERS, rate=HUGE, strict=True)
        ),
        "BoundedExecutor options(priority=i%8)": with_priorities,
    }
    return interleave(
        {name: submit_then_collect(setup, n) for name, setup in contestants.items()},
        settings.rounds,
    )


# -- 2 and 3. rate-limiter acquire, one thread and THREADS threads ------------------------------

Call = Callable[[], object]  # one non-blocking acquire; falsy means refused
MakeLimiter = Callable[[], tuple[Call, Callable[[], None]]]  # a fresh (call, close) per run


def _nothing() -> None:
    return None


def make_token_bucket() -> tuple[Call, Callable[[], None]]:
    return jobq.TokenBucket(rate=1e12, per=1).try_acquire, _nothing


def make_sliding_window() -> tuple[Call, Callable[[], None]]:
    return jobq.SlidingWindowLimiter(HUGE, per=1).try_acquire, _nothing


def make_pyrate(blocking: bool) -> MakeLimiter:
    def make() -> tuple[Call, Callable[[], None]]:
        limiter = pyrate_limiter.Limiter(
            pyrate_limiter.InMemoryBucket(
                [pyrate_limiter.Rate(HUGE, pyrate_limiter.Duration.SECOND)]
            )
        )
        acquire = limiter.try_acquire
        return (lambda: acquire("key", blocking=blocking)), limiter.close

    return make


def make_limits(strategy: type[limits.strategies.RateLimiter]) -> MakeLimiter:
    def make() -> tuple[Call, Callable[[], None]]:
        hit = strategy(MemoryStorage()).hit
        item = limits.RateLimitItemPerSecond(HUGE)
        return (lambda: hit(item, "key")), _nothing

    return make


def time_boxed(call: Call, seconds: float) -> tuple[int, int]:
    """Call ``call`` until ``seconds`` have passed; return (calls, refused)."""
    calls = refused = 0
    deadline = time.perf_counter() + seconds
    while True:
        for _ in range(BATCH):
            if not call():
                refused += 1
        calls += BATCH
        if time.perf_counter() >= deadline:
            return calls, refused


def one_thread(make: MakeLimiter, seconds: float) -> Callable[[], Sample]:
    def run() -> Sample:
        call, close = make()
        try:
            start = time.perf_counter()
            calls, refused = time_boxed(call, seconds)
            elapsed = time.perf_counter() - start
        finally:
            close()
        return Sample(elapsed / calls * 1e6, refused / calls)

    return run


def many_threads(make: MakeLimiter, seconds: float) -> Callable[[], Sample]:
    def run() -> Sample:
        call, close = make()
        results: list[tuple[int, int]] = []
        barrier = threading.Barrier(THREADS + 1)

        def hammer() -> None:
            barrier.wait()
            results.append(time_boxed(call, seconds))

        threads = [threading.Thread(target=hammer) for _ in range(THREADS)]
        try:
            for thread in threads:
                thread.start()
            start = time.perf_counter()
            barrier.wait()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
        finally:
            close()
        calls = sum(c for c, _ in results)
        refused = sum(r for _, r in results)
        # Per-call cost as seen by the callers: wall time * threads / calls.
        return Sample(elapsed * THREADS / calls * 1e6, refused / calls)

    return run


LIMITERS: dict[str, MakeLimiter] = {
    "TokenBucket": make_token_bucket,
    "SlidingWindowLimiter": make_sliding_window,
    "pyrate-limiter": make_pyrate(blocking=False),
    "pyrate-limiter blocking": make_pyrate(blocking=True),
    "limits fixed window": make_limits(FixedWindowRateLimiter),
    "limits moving window": make_limits(MovingWindowRateLimiter),
}


def bench_limiters(settings: Settings, contended: bool) -> dict[str, list[Sample]]:
    if contended:
        runs = {
            name: many_threads(make, settings.contended_seconds) for name, make in LIMITERS.items()
        }
    else:  # blocking only matters when a lock is contended
        runs = {
            name: one_thread(make, settings.acquire_seconds)
            for name, make in LIMITERS.items()
            if name != "pyrate-limiter blocking"
        }
    return interleave(runs, settings.rounds)


# -- 4. strict=True over real time ------------------------------------------------------------


class RecordingClock:
    """The system clock, remembering per thread the last time it told."""

    def __init__(self) -> None:
        self._local = threading.local()

    def now(self) -> float:
        self._local.last = now = time.monotonic()
        return now

    def last(self) -> float:
        return float(self._local.last)

    def wait(self, condition: threading.Condition, timeout: float | None) -> None:
        condition.wait(timeout)


class RecordingLimiter:
    """Wraps a limiter and notes the time at which it granted each start: the time it
    read itself, not a later reading, which could be tens of microseconds late."""

    def __init__(self, inner: jobq.RateLimiter, clock: RecordingClock) -> None:
        self.inner = inner
        self.clock = clock
        self.grants: list[float] = []

    def reserve(self, tokens: int = 1) -> float:
        delay = self.inner.reserve(tokens)
        if delay == 0.0:
            self.grants.append(self.clock.last())
        return delay

    def try_acquire(self, tokens: int = 1) -> bool:
        return self.reserve(tokens) == 0.0

    def acquire(self, tokens: int = 1, timeout: float | None = None) -> bool:
        granted = self.inner.acquire(tokens, timeout)
        if granted:
            self.grants.append(self.clock.last())
        return granted


def most_in_window(times: list[float], per: float) -> int:
    """Most times in any half-open window [t, t + per); 1 ns of float slack, as jobq allows."""
    times = sorted(times)
    most = first = 0
    for last, stamp in enumerate(times):
        while stamp - times[first] >= per - 1e-9:
            first += 1
        most = max(most, last - first + 1)
    return most


class StrictResult(NamedTuple):
    granted: int  # most grants in any window
    observed: int  # most task starts, as seen by the tasks, in any window
    seconds: float


def bench_strict(settings: Settings) -> StrictResult:
    rate, per = settings.strict_rate, settings.strict_per
    # What BoundedExecutor(rate=rate, per=per, strict=True) builds, wrapped to record grants.
    clock = RecordingClock()
    limiter = RecordingLimiter(jobq.SlidingWindowLimiter(rate, per, clock=clock), clock)
    observed: list[float] = []

    def task() -> None:
        observed.append(time.monotonic())

    executor = jobq.BoundedExecutor(max_workers=WORKERS, limiter=limiter)
    start = time.monotonic()
    futures = [executor.submit(task) for _ in range(settings.strict_tasks)]
    for future in futures:
        future.result()
    seconds = time.monotonic() - start
    executor.shutdown(wait=True)
    return StrictResult(most_in_window(limiter.grants, per), most_in_window(observed, per), seconds)


# -- report -----------------------------------------------------------------------------------


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def environment() -> list[str]:
    try:
        usable = str(len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        usable = "?"
    return [
        f"Python {platform.python_version()} ({platform.python_implementation()}) "
        f"on {platform.system()} {platform.machine()}",
        f"CPUs: {os.cpu_count()} (usable by this process: {usable}); "
        f"thread switch interval {sys.getswitchinterval() * 1e3:g} ms",
        f"jobq {version('jobq')}, pyrate-limiter {version('pyrate-limiter')}, "
        f"limits {version('limits')}",
    ]


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]

    def line(row: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    print(line(HEADER))
    print("-+-".join("-" * width for width in widths))
    for row in rows:
        print(line(row).rstrip())


def us(value: float) -> str:
    return f"{value:.2f} us"


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def yes_no(met: bool) -> str:
    return "yes" if met else "NO"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, only to see it works")
    parser.add_argument("--rounds", type=int, help="rounds per contestant (default 7, quick 2)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.rounds:
        settings = replace(settings, rounds=args.rounds)

    for text in environment():
        print(text)
    print(
        f"{settings.rounds} rounds per contestant, interleaved; figures are medians"
        f"{' (--quick: too short to trust)' if args.quick else ''}"
    )
    print(flush=True)
    began = time.perf_counter()

    executors = bench_executors(settings)
    single = bench_limiters(settings, contended=False)
    contended = bench_limiters(settings, contended=True)
    strict = bench_strict(settings)

    rows: list[tuple[str, ...]] = []
    tpe = executors["ThreadPoolExecutor"]
    for name, samples in executors.items():
        if name == "ThreadPoolExecutor":
            continue
        ratio = round(paired_ratio(samples, tpe), 2)  # judged as printed
        is_goal = name == "BoundedExecutor"
        rows.append(
            (
                f"submit+collect per no-op task, {name}",
                us(median(samples)),
                "ThreadPoolExecutor",
                us(median(tpe)),
                f"{ratio:.2f}x",
                "<= 1.25x" if is_goal else "(info)",
                yes_no(ratio <= 1.25) if is_goal else "-",
            )
        )

    peers_single = ["pyrate-limiter", "limits fixed window", "limits moving window"]
    pairs_single = [("TokenBucket", peer) for peer in peers_single]
    pairs_single.append(("SlidingWindowLimiter", "limits moving window"))
    for ours, peer in pairs_single:
        value = median(single[ours])
        rows.append(
            (
                f"acquire, 1 thread, {ours}",
                us(value),
                peer,
                us(median(single[peer])),
                f"{paired_ratio(single[ours], single[peer]):.2f}x",
                "< 1 us",
                yes_no(value < 1.0),
            )
        )

    peers_contended = [
        "pyrate-limiter",
        "pyrate-limiter blocking",
        "limits fixed window",
        "limits moving window",
    ]
    pairs = [("TokenBucket", peer) for peer in peers_contended]
    pairs.append(("SlidingWindowLimiter", "limits moving window"))
    for ours, peer in pairs:
        rows.append(
            (
                f"acquire, {THREADS} threads, {ours}",
                us(median(contended[ours])),
                peer,
                us(median(contended[peer])),
                f"{paired_ratio(contended[ours], contended[peer]):.2f}x",
                "(info)",
                "-",
            )
        )
    for ours, peer in pairs:
        if peer == "pyrate-limiter blocking":
            continue  # blocks instead of refusing
        refused = max(sample.refused for sample in contended[ours])
        rows.append(
            (
                f"false refusals, {THREADS} threads, {ours}",
                pct(refused),
                peer,
                pct(median_refused(contended[peer])),
                "-",
                "0%",
                yes_no(refused == 0),
            )
        )

    window = f"{settings.strict_rate}/{settings.strict_per:g}s"
    limit = settings.strict_rate
    rows.append(
        (
            f"strict {window}: most grants in a window",
            str(strict.granted),
            "limit",
            str(limit),
            "-",
            f"<= {limit}",
            yes_no(strict.granted <= limit),
        )
    )
    rows.append(
        (
            f"strict {window}: most starts seen in tasks (+jitter)",
            str(strict.observed),
            "limit",
            str(limit),
            "-",
            "(info)",
            "-",
        )
    )

    print_table(rows)
    print(
        "ratio = jobq / peer, median of the per-round ratios (below 1: jobq is faster); "
        "jobq refusals: worst round, peers: median"
    )
    print()
    print("Spread over rounds, us per task or call: median [min - max]")
    for title, results in (
        ("submit+collect", executors),
        ("acquire, 1 thread", single),
        (f"acquire, {THREADS} threads", contended),
    ):
        for name, samples in results.items():
            values = [sample.micros for sample in samples]
            note = ""
            if any(sample.refused for sample in samples):
                note = f"  refused {pct(median_refused(samples))}"
            print(
                f"  {title}, {name}: {us(statistics.median(values))} "
                f"[{min(values):.2f} - {max(values):.2f}]{note}"
            )
    print(f"  strict: {settings.strict_tasks} tasks at {window} took {strict.seconds:.2f} s")
    print(f"\nfinished in {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
