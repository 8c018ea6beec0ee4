"""What OpenTelemetry tracing costs jobq: the same workloads with tracing off and on, in one run.

Run from the repository root (needs the ``otel`` extra and ``opentelemetry-sdk``,
both in ``dev``)::

    python benchmarks/bench_tracing.py            # about a minute
    python benchmarks/bench_tracing.py --quick    # a few seconds, to check it runs

"on" is ``jobq.tracing.instrument()`` with the SDK's ``TracerProvider``, every span
sampled, and a ``BatchSpanProcessor`` handing the spans to an exporter that drops
them (so the figure is jobq's spans and the SDK, not a collector's network).
Workloads, on a fresh SQLite file each round: enqueue one by one (jobs/s), enqueue
in bulk with ``enqueue_many`` (ms), run those no-op jobs through a real pool of 4
threads (``start_workers(concurrency=4)``, from start until the last job returned,
jobs/s), then jobs that wait 1 ms (as on a server), enqueued in bulk to the running
pool (jobs/s, enqueue included). "on, 10% sampled" samples one trace in ten
(``ParentBased(TraceIdRatioBased(0.1))``), as production setups often do. The modes
alternate, ``--rounds`` times; medians and each mode's cost against "off" are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import jobq

try:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    import jobq.tracing
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(f"missing {exc.name}; install it with: pip install -e '.[dev]'")

WAIT = 120.0  # seconds the pool may take, at most, to run one round's jobs


class DroppingExporter(SpanExporter):
    """Takes every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


MODES = ("off", "on", "on, 10% sampled")


def tracing(mode: str) -> TracerProvider | None:
    """Turn tracing on (with a fresh provider, returned to be shut down) or off."""
    if mode == "off":
        jobq.tracing.uninstrument()
        return None
    ratio = 0.1 if "10%" in mode else 1.0
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(DroppingExporter()))
    jobq.tracing.instrument(tracer_provider=provider)
    return provider


def one_round(folder: Path, jobs: int, mode: str) -> tuple[float, float, float, float]:
    """(enqueue jobs/s, enqueue_many ms, no-op jobs/s, 1 ms jobs/s) in tracing ``mode``."""
    provider = tracing(mode)
    done = threading.Event()
    left = [0]
    lock = threading.Lock()

    def noop(n: int) -> None:
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    def wait_a_millisecond(n: int) -> None:  # like a job waiting on a server
        time.sleep(0.001)
        noop(n)

    def run_all(pool_start: Callable[[], object], count: int) -> float:
        left[0] = count
        done.clear()
        started = time.perf_counter()
        pool_start()
        if not done.wait(WAIT):
            raise SystemExit(f"the pool did not run {count} jobs in {WAIT:g} s")
        return count / (time.perf_counter() - started)

    try:
        with tempfile.TemporaryDirectory(dir=folder) as where:
            queue = jobq.DurableQueue(Path(where) / "jobs.db")
            queue.task("noop")(noop)
            queue.task("io")(wait_a_millisecond)
            started = time.perf_counter()
            for n in range(jobs):
                queue.enqueue("noop", n)
            enqueue_rate = jobs / (time.perf_counter() - started)
            started = time.perf_counter()
            queue.enqueue_many("noop", [[n] for n in range(jobs)])
            bulk_ms = (time.perf_counter() - started) * 1000
            pools = []
            noop_rate = run_all(lambda: pools.append(queue.start_workers(concurrency=4)), 2 * jobs)
            io_rate = run_all(lambda: queue.enqueue_many("io", [[n] for n in range(jobs)]), jobs)
            pools[0].stop()
            queue.close()
    finally:
        if provider is not None:
            provider.shutdown()
        jobq.tracing.uninstrument()
    return enqueue_rate, bulk_ms, noop_rate, io_rate


def measure(jobs: int, rounds: int, folder: Path) -> dict[str, list[tuple[float, ...]]]:
    """Every round runs each mode once, starting with a different one each round."""
    figures: dict[str, list[tuple[float, ...]]] = {mode: [] for mode in MODES}
    for index in range(rounds):
        for mode in MODES[index % 3 :] + MODES[: index % 3]:
            figures[mode].append(one_round(folder, jobs, mode))
    return figures


def table(figures: dict[str, list[tuple[float, ...]]]) -> list[list[str]]:
    names = [
        "enqueue, jobs/s",
        "enqueue_many, ms",
        "pool of 4 threads, no-op jobs/s",
        "pool of 4 threads, 1 ms jobs/s",
    ]
    higher_is_better = [True, False, True, True]
    rows = [["workload", *MODES, *(f"cost {mode}" for mode in MODES[1:])]]
    for column, (name, higher) in enumerate(zip(names, higher_is_better, strict=True)):
        medians = [statistics.median(f[column] for f in figures[mode]) for mode in MODES]
        off = medians[0]
        costs = [(off / m - 1) if higher else (m / off - 1) for m in medians[1:]]
        rows.append([name, *(f"{m:,.0f}" for m in medians), *(f"{c:+.0%}" for c in costs)])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per workload (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="off/on pairs, medians (5)")
    parser.add_argument("--quick", action="store_true", help="200 jobs, 1 round")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    args = parser.parse_args(argv)
    jobs, rounds = (200, 1) if args.quick else (args.jobs, args.rounds)
    folder = args.dir or Path(tempfile.gettempdir())
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("opentelemetry-api", "opentelemetry-sdk")
    )
    python = sys.version.split()[0]
    print(f"{jobs} jobs per workload, {rounds} rounds, medians; {versions}; Python {python}")
    rows = table(measure(jobs, rounds, folder))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
