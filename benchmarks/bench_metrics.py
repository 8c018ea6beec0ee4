"""What the Prometheus metrics cost: the same jobs through a real worker pool with the
metrics off and on, in one run, interleaved, with ratios.

    python benchmarks/bench_metrics.py                 # 5,000 jobs, 5 rounds, ~30 s
    python benchmarks/bench_metrics.py --quick         # a few seconds, to check it runs
    python benchmarks/bench_metrics.py --multiprocess  # counters in PROMETHEUS_MULTIPROC_DIR files
    python benchmarks/bench_metrics.py --job-ms 1      # jobs that sleep 1 ms instead of no-ops
    python benchmarks/bench_metrics.py --tracing       # "on" traces every job too (otel extra)

Each round and mode gets a fresh SQLite database: N no-op jobs are enqueued one by one
(enqueue jobs/s), then a pool of 4 threads runs them until the database says all are
completed (processing jobs/s). "off" connects no receiver to the signals (the
default); "on" connects :func:`jobq.metrics.connect_metrics` to the queue, and each
round also renders one scrape (not timed); with ``--tracing``, "on" also traces
every enqueue and run (``bench_tracing.tracing("on")``: the SDK, every span recorded,
a batch processor and an exporter that drops them). Medians over the rounds; compare the
ratios, not the absolute figures, on a shared machine. Goal: "on" within 15% of
"off" (the issue's budget for Prometheus and tracing together).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

THREADS = 4
GOAL = 0.85  # "on" keeps at least 85% of "off"'s throughput


def _run(
    folder: Path, jobs: int, metrics_on: bool, job_seconds: float, trace: bool = False
) -> tuple[float, float, float, float]:
    """(enqueue jobs/s, processing jobs/s, enqueue CPU us/job, processing CPU us/job) of
    one round; CPU time is the process's, every thread included."""
    import jobq
    from jobq.job import JobStatus

    queue = jobq.DurableQueue(folder / "jobq.db")

    @queue.task("noop")
    def noop(i: int) -> None:
        if job_seconds:
            time.sleep(job_seconds)

    connection = None
    if metrics_on:
        from jobq.metrics import JobMetrics, connect_metrics, render_metrics

        connection = connect_metrics(queue, metrics=JobMetrics())
    provider = None
    if metrics_on and trace:
        from bench_tracing import tracing

        provider = tracing("on")
    try:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(jobs):
            noop.enqueue(i)
        enqueue_rate = jobs / (time.perf_counter() - start)
        enqueue_cpu = (time.process_time() - cpu) / jobs * 1e6

        start, cpu = time.perf_counter(), time.process_time()
        pool = queue.start_workers(concurrency=THREADS)
        try:
            deadline = time.monotonic() + 120
            while True:
                counts = queue.stats().queues["default"].counts
                if counts[JobStatus.COMPLETED] == jobs:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not all {jobs} jobs completed in 120 s: {counts}")
                time.sleep(0.002)
            process_rate = jobs / (time.perf_counter() - start)
            process_cpu = (time.process_time() - cpu) / jobs * 1e6
        finally:
            pool.stop(timeout=10)
        if metrics_on:
            assert b"jobq_jobs_completed_total" in render_metrics(queue)
    finally:
        if connection is not None:
            connection.disconnect()
        if provider is not None:
            from bench_tracing import tracing

            tracing("off")
            provider.shutdown()
        queue.close()
    return enqueue_rate, process_rate, enqueue_cpu, process_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode (default 5)")
    parser.add_argument("--quick", action="store_true", help="500 jobs, 2 rounds")
    parser.add_argument(
        "--job-ms",
        type=float,
        default=0.0,
        help="milliseconds each job sleeps (default 0: no-op jobs, the worst case)",
    )
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="set PROMETHEUS_MULTIPROC_DIR (a temporary folder), as under gunicorn",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help='"on" traces every job too, with OpenTelemetry (the otel extra and its SDK)',
    )
    args = parser.parse_args(argv)
    jobs, rounds = (500, 2) if args.quick else (args.jobs, args.rounds)
    with tempfile.TemporaryDirectory(prefix="jobq-bench-metrics-") as tmp:
        if args.multiprocess:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp, "prometheus"))
            Path(tmp, "prometheus").mkdir()
        results: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "on": []}
        for round_number in range(rounds):
            for mode in ("off", "on") if round_number % 2 == 0 else ("on", "off"):
                folder = Path(tmp, f"{mode}-{round_number}")
                folder.mkdir()
                results[mode].append(
                    _run(folder, jobs, mode == "on", args.job_ms / 1000, args.tracing)
                )
    from importlib.metadata import version

    print(
        f"jobq metrics overhead: {jobs} jobs of {args.job_ms:g} ms, {THREADS} threads, "
        f"{rounds} rounds, medians; Python {sys.version.split()[0]}, prometheus_client "
        f"{version('prometheus_client')}, {os.cpu_count()} CPUs, multiprocess mode "
        f'{"on" if args.multiprocess else "off"}; "on" = metrics'
        f"{' and tracing' if args.tracing else ''}"
    )
    print(f"{'workload':<26}{'metrics off':>13}{'metrics on':>13}{'on/off':>9}  goal")
    met = True
    rows = (
        ("enqueue, jobs/s", 0, True),
        ("process, jobs/s", 1, True),
        ("enqueue, CPU us/job", 2, False),
        ("process, CPU us/job", 3, False),
    )
    for workload, index, is_rate in rows:
        off = statistics.median(r[index] for r in results["off"])
        on = statistics.median(r[index] for r in results["on"])
        ratio = on / off
        # Throughput must keep GOAL of itself; CPU per job may grow by as much.
        ok = ratio >= GOAL if is_rate else ratio <= 1 / GOAL
        met = met and ok
        goal = f">= {GOAL}" if is_rate else f"<= {1 / GOAL:.2f}"
        verdict = "met" if ok else "NOT met"
        print(f"{workload:<26}{off:>13,.0f}{on:>13,.0f}{ratio:>9.2f}  {goal} {verdict}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
