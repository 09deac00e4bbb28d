"""The worker's memory under a long mixed load (issue 16: "RSS of one worker after each load — reported; no
growth over a 10-minute run").

    .venv/bin/python -m bench.soak [--minutes 10] [--interval 20] [--postgres] [--server granian]
        [--token-rate 150 --discovery-rate 25 --jwks-rate 25 --gate-rate 50]

ONE worker (bench.server) pinned to core 0; the open-loop generator (bench.openloop), the code issuance and
this script on core 1. Four streams at fixed offered rates, all at once: client_credentials tokens at
``/token``, the discovery document, the JWKS (the side-by-side bench's requests and checks) and online gate
verifications (``/api/v1/gate/verify``, a fresh code per request, every answer checked to be a pass, as in
bench.bench_gate). The rates are moderate on purpose: a worker that falls behind queues requests, and the
queue's memory is not a leak. Every answer is checked; a wrong one counts as an error.

The load runs in rounds of ``--interval`` seconds; the worker's RSS is sampled after each. Growth is the RSS
at the end minus the RSS after the first minute (warm-up: caches, the SQLite page cache of each thread's
connection, the allocator's arenas), in MiB and per cent. ``figures(quick)`` gives the table's ``rss.soak``
rows (bench.table): the full run is ``--minutes 10``, the quick one 30 s.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.bench_card_login import cpu_seconds
from bench.bench_gate import _passed, issue_codes
from bench.bench_gate import seed as seed_gate
from bench.bench_token import seed as seed_token
from bench.figures import Figure
from bench.openloop import Check, OpenLoopResult, run_open_loop
from bench.server import SERVERS, descendants, running_server
from bench.side_by_side import (
    FIGURE_KEYS,
    FIGURES,
    LOAD_CPU,
    SERVER_CPU,
    Side,
    check_token,
    postgres_and_redis,
)
from idp.serve_cli import DEFAULT_SERVER  # what ``onecard serve`` ships
from wallet.qr.service import CODE_LIFETIME

# Offered requests/s per stream: about a third of one core on this machine (bench/README.md), so the worker
# keeps up even while other work shares its core.
DEFAULT_RATES = {"token": 150.0, "discovery": 25.0, "jwks": 25.0, "gate": 50.0}
WARMUP_SECONDS = 60.0
# "No growth": a leak of 40 bytes per request is 5 MiB after 10 minutes at the default rates; allocator
# noise over a run is a few MiB either way.
GROWTH_TOLERANCE_MIB = 5.0


@dataclass(frozen=True)
class Load:
    """One stream of the mixed load: what ``run_open_loop`` sends, and how each answer is checked."""

    name: str
    url: str
    rate: float
    check: Check
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    bodies: Sequence[bytes] = (b"",)


@dataclass(frozen=True)
class Sample:
    seconds: float  # since the load started
    rss_mib: float
    requests: int  # answers so far, right or wrong
    errors: int


@dataclass(frozen=True)
class SoakResult:
    database: str
    server: str
    rates: dict[str, float]
    samples: list[Sample]  # samples[0] is before the load
    warmup: int  # the index of the sample after the warm-up
    per_stream: dict[str, tuple[int, int]]  # name -> (answers, errors)
    worker_cpu_share: float  # the worker's CPU seconds per second of the run
    load_average: tuple[float, float]  # the machine's 1-minute load average at the start and at the end
    error_samples: list[str] = field(default_factory=list)

    @property
    def growth_mib(self) -> float:
        return self.samples[-1].rss_mib - self.samples[self.warmup].rss_mib

    @property
    def growth_percent(self) -> float:
        return 100 * self.growth_mib / self.samples[self.warmup].rss_mib

    @property
    def requests_per_second(self) -> float:
        return self.samples[-1].requests / self.samples[-1].seconds

    def table(self) -> str:
        lines = [f"{'minute':>6s} {'RSS MiB':>8s} {'requests':>9s} {'errors':>6s}"]
        for index, sample in enumerate(self.samples):
            mark = "  <- after the warm-up" if index == self.warmup else ""
            lines.append(
                f"{sample.seconds / 60:6.2f} {sample.rss_mib:8.1f} {sample.requests:9d} "
                f"{sample.errors:6d}{mark}"
            )
        return "\n".join(lines)

    def summary(self) -> str:
        start, warm, end = self.samples[0], self.samples[self.warmup], self.samples[-1]
        streams = ", ".join(
            f"{name} {answers / end.seconds:.0f}/s ({errors} errors)"
            for name, (answers, errors) in self.per_stream.items()
        )
        return (
            f"RSS at start {start.rss_mib:.1f} MiB, after the warm-up ({warm.seconds / 60:.1f} min) "
            f"{warm.rss_mib:.1f} MiB, at the end {end.rss_mib:.1f} MiB: growth {self.growth_mib:+.1f} MiB "
            f"({self.growth_percent:+.1f} %); {end.requests} requests in {end.seconds:.0f} s "
            f"({self.requests_per_second:.0f}/s: {streams}), errors {end.errors}; worker CPU "
            f"{100 * self.worker_cpu_share:.0f} % of its core; load average {self.load_average[0]:.1f} "
            f"at the start, {self.load_average[1]:.1f} at the end"
        )


def _seed(app: Any) -> dict[str, Any]:
    """The token bench's operator client and the gate bench's venue, citizen and e-card, in one database."""
    return {"token": seed_token(app), "gate": seed_gate(app)}


def _contains(needle: bytes) -> Check:
    return lambda _status, body: needle in body


def http_loads(side: Side, rates: dict[str, float]) -> list[Load]:
    """The side-by-side bench's token, discovery and JWKS requests and its checks (bench/wrk/checked.lua)."""
    loads = []
    for figure in FIGURES:
        headers = [("Content-Type", "application/x-www-form-urlencoded")] if figure.body else []
        if figure.authenticated:
            headers.append(("Authorization", side.basic))
        name = FIGURE_KEYS[figure.name]
        check = _contains(figure.expect.encode())
        body = figure.body.encode()
        loads.append(Load(name, figure.url(side), rates[name], check, figure.method, tuple(headers), (body,)))
    return loads


def _stream_in_child(load: Load, seconds: float, out: Any) -> None:
    result = run_open_loop(
        load.url,
        rate=load.rate,
        seconds=seconds,
        method=load.method,
        headers=load.headers,
        bodies=load.bodies,
        check=load.check,
        processes=1,  # a few hundred requests/s: one asyncio loop is plenty, and leaves CPU 1 room
        cpus={LOAD_CPU},
    )
    out.put((load.name, result))


def mixed_round(
    loads: Sequence[Load], seconds: float, meanwhile: Callable[[], list[bytes]]
) -> tuple[dict[str, OpenLoopResult], list[bytes]]:
    """Every stream for ``seconds`` at once, each open loop in a process of its own; ``meanwhile`` (the next
    round's gate codes) runs here while they do. Processes, not threads: the open loop forks its children,
    and a fork from a threaded process can copy a lock another thread holds."""
    context = mp.get_context("fork")
    queue: Any = context.Queue()
    children = [context.Process(target=_stream_in_child, args=(load, seconds, queue)) for load in loads]
    for child in children:
        child.start()
    made = meanwhile()
    results = dict(queue.get(timeout=seconds + 120) for _ in children)
    for child in children:
        child.join(10)
    return results, made


@contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """This process (and what it starts) on ``cpu`` for a while: the code issuance stays off the server's
    core. ``taskset`` in bench.server pins the server itself."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def soak(
    *,
    minutes: float,
    interval: float = 20.0,
    rates: dict[str, float] | None = None,
    postgres: bool = False,
    server: str = DEFAULT_SERVER,
    threads: int = 8,
    report: Callable[[str], None] = lambda _line: None,
) -> SoakResult:
    """Run the mixed load for ``minutes`` in rounds of about ``interval`` s, the worker's RSS after each;
    ``report`` gets a line per sample as it is taken."""
    rates = {**DEFAULT_RATES, **(rates or {})}
    total = minutes * 60
    rounds = max(2, round(total / interval))
    seconds = total / rounds
    # A round's codes are made at the start of the round before it, so the last is used two rounds later.
    if 2 * seconds + 5 > CODE_LIFETIME:
        raise ValueError(f"rounds of {seconds:.0f} s outlive the gate codes' {CODE_LIFETIME} s")
    warmup_seconds = min(WARMUP_SECONDS, total / 2)
    with ExitStack() as stack:
        stack.enter_context(_pinned(LOAD_CPU))
        extra_env = stack.enter_context(postgres_and_redis()) if postgres else {}
        running = stack.enter_context(
            running_server(_seed, threads=threads, extra_env=extra_env, cpu=SERVER_CPU, server=server)
        )
        token, gate = running.seeded["token"], running.seeded["gate"]
        side = Side("OneCard", running.base_url, token["client_id"], token["secret"])
        check_token(side)
        venue = base64.b64encode(f"{gate['client_id']}:{gate['secret']}".encode()).decode()
        gate_load = Load(
            "gate",
            f"{running.base_url}/api/v1/gate/verify",
            rates["gate"],
            _passed,
            "POST",
            (("Authorization", f"Basic {venue}"), ("Content-Type", "application/json")),
        )

        def fresh_codes() -> list[bytes]:
            codes = issue_codes(gate["database_url"], gate["citizen_id"], math.ceil(rates["gate"] * seconds))
            return [json.dumps({"code": code, "gate_id": "bench-soak"}).encode() for code in codes]

        http = http_loads(side, rates)
        worker = descendants(running.process.pid) or [running.process.pid]
        load_at_start = os.getloadavg()[0]
        samples = [Sample(0.0, running.worker_rss_mib(), 0, 0)]
        report(f"{0:6.2f} min  RSS {samples[0].rss_mib:7.1f} MiB  (before the load)")
        per_stream = {load.name: (0, 0) for load in [*http, gate_load]}
        error_samples: list[str] = []
        codes = fresh_codes()
        cpu_before = cpu_seconds(worker)
        started = time.monotonic()
        for index in range(rounds):
            last = index == rounds - 1
            loads = [*http, dataclasses.replace(gate_load, bodies=codes)]
            results, codes = mixed_round(loads, seconds, (lambda: []) if last else fresh_codes)
            for name, result in results.items():
                answers, errors = per_stream[name]
                per_stream[name] = (answers + result.ok + result.errors, errors + result.errors)
                error_samples += result.error_samples[: 5 - len(error_samples)]
            sample = Sample(
                time.monotonic() - started,
                running.worker_rss_mib(),
                sum(answers for answers, _ in per_stream.values()),
                sum(errors for _, errors in per_stream.values()),
            )
            samples.append(sample)
            report(
                f"{sample.seconds / 60:6.2f} min  RSS {sample.rss_mib:7.1f} MiB  requests {sample.requests}  "
                f"errors {sample.errors}"
            )
        cpu_share = (cpu_seconds(worker) - cpu_before) / samples[-1].seconds
    warmup = next(i for i, s in enumerate(samples) if i > 0 and s.seconds >= warmup_seconds - 1)
    return SoakResult(
        database="PostgreSQL + Redis" if postgres else "SQLite",
        server=server,
        rates=rates,
        samples=samples,
        warmup=min(warmup, len(samples) - 2),
        per_stream=per_stream,
        worker_cpu_share=cpu_share,
        load_average=(load_at_start, os.getloadavg()[0]),
        error_samples=error_samples,
    )


def figures(quick: bool) -> list[Figure]:
    """The table's ``rss.soak`` rows (bench.table): the worker's RSS at the end of the mixed load on SQLite
    and, for the full 10-minute run, its growth since the warm-up. A 30 s run says nothing about growth over
    10 minutes, so the quick one gives only the RSS (its growth in the note)."""
    result = soak(minutes=0.5 if quick else 10.0, interval=15.0 if quick else 20.0)
    minutes = result.samples[-1].seconds / 60
    note = f"{result.server}, one worker, {minutes:.1f} min; {result.summary()}"
    rows = [
        Figure(
            key="rss.soak.sqlite",
            label=f"OneCard worker RSS after {minutes:.1f} min of token, discovery, JWKS, gate load, SQLite",
            value=result.samples[-1].rss_mib,
            unit="MiB",
            better="lower",
            target="reported",
            note=note,
        )
    ]
    if not quick:
        rows.append(
            Figure(
                key="rss.soak.sqlite.growth",
                label="OneCard worker RSS growth over 10 min of mixed load (end minus after 1 min), SQLite",
                value=result.growth_mib,
                unit="MiB",
                better="lower",
                target=f"no growth (<= {GROWTH_TOLERANCE_MIB:g} MiB), zero errors",
                met=result.growth_mib <= GROWTH_TOLERANCE_MIB and result.samples[-1].errors == 0,
                note=f"{result.growth_percent:+.1f} %",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--interval",
        type=float,
        default=20.0,
        help="seconds between RSS samples (15-25: the codes live 60 s)",
    )
    for name, rate in DEFAULT_RATES.items():
        parser.add_argument(f"--{name}-rate", type=float, default=rate, help=f"{name} requests/s offered")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL + Redis instead of SQLite")
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER, help="the WSGI server")
    parser.add_argument("--threads", type=int, default=8, help="the worker's threads")
    args = parser.parse_args()
    rates = {name: getattr(args, f"{name}_rate") for name in DEFAULT_RATES}
    offered = ", ".join(f"{name} {rate:g}/s" for name, rate in rates.items())
    print(
        f"one {args.server} worker on CPU {SERVER_CPU}, the open loops on CPU {LOAD_CPU} "
        f"({os.cpu_count()} CPUs); offered: {offered}; {args.minutes:g} min",
        flush=True,
    )
    result = soak(
        minutes=args.minutes,
        interval=args.interval,
        rates=rates,
        postgres=args.postgres,
        server=args.server,
        threads=args.threads,
        report=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"{result.database}, {result.server}")
    print(result.table())
    print(result.summary())
    for sample in result.error_samples:
        print("error:", sample)
    start, warm, end = result.samples[0], result.samples[result.warmup], result.samples[-1]
    print(
        json.dumps(
            {
                "database": result.database,
                "server": result.server,
                "rates": result.rates,
                "rss_mib": {"start": start.rss_mib, "after_warmup": warm.rss_mib, "end": end.rss_mib},
                "growth_mib": round(result.growth_mib, 2),
                "growth_percent": round(result.growth_percent, 2),
                "requests": end.requests,
                "requests_per_second": round(result.requests_per_second, 1),
                "errors": end.errors,
                "samples": [dataclasses.asdict(sample) for sample in result.samples],
            }
        )
    )


if __name__ == "__main__":
    main()
