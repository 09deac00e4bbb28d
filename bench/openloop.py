"""An open-loop HTTP load generator: a fixed offered rate, every request's latency measured from the time it
was *scheduled* to be sent, so a slow server cannot slow the generator down and hide its own queue
(coordinated omission, Gil Tene's "How NOT to measure latency").

    .venv/bin/python bench/openloop.py URL --rate 500 --seconds 10 [--method POST --body '{...}'
        --header 'Authorization: Basic ...' --expect 200 --expect-contains '"verdict"' --processes 2]

Request ``i`` is due at ``start + i / rate``; the processes take every ``processes``-th slot each, so
together they offer one even stream. Each process runs an asyncio loop over up to ``connections`` keep-alive
connections: a request that is due while all of them are busy opens another (up to the cap) or waits for one
— and that wait is part of its latency, as it would be for a real gate. Every response is checked (status,
and ``check(status, body)`` when given): a fast wrong answer is an error. Bounded by ``seconds``,
``max_requests`` and a per-request ``timeout``; it stops by itself.

``schedule_lag_ms`` says how late the generator itself sent its requests (its own CPU, not the server's);
if that is large the figures measure the generator, and the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

Check = Callable[[int, bytes], bool]


@dataclass(frozen=True)
class OpenLoopResult:
    offered_rps: float
    achieved_rps: float  # responses (right or wrong) per second of the run
    requests: int  # scheduled and sent
    ok: int
    errors: int  # wrong status, failed check, connection error or timeout
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    schedule_lag_ms: float  # p99 of (task start - scheduled send): the generator's own lateness
    error_samples: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"offered {self.offered_rps:,.0f}/s  achieved {self.achieved_rps:,.0f}/s  "
            f"requests {self.requests}  errors {self.errors}  p50 {self.p50_ms:.1f} ms  "
            f"p90 {self.p90_ms:.1f} ms  p99 {self.p99_ms:.1f} ms  max {self.max_ms:.1f} ms  "
            f"(send lag p99 {self.schedule_lag_ms:.1f} ms)"
        )


@dataclass(frozen=True)
class _Plan:
    host: str
    port: int
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    bodies: Sequence[bytes]
    expect: int
    check: Check | None
    rate: float
    start: float  # time.monotonic() of slot 0 (CLOCK_MONOTONIC is one clock for every process)
    slots: range  # the slot numbers this process sends
    connections: int
    timeout: float


# A kept-alive connection idle longer than this is closed rather than reused: servers drop idle ones
# (gunicorn after 2 s), and a request sent into a connection the server is closing is lost, which would
# count as the server's error.
MAX_IDLE = 1.0


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < MAX_IDLE
        )

    def close(self) -> None:
        self.writer.close()


async def _exchange(conn: _Connection, request: bytes) -> tuple[int, bytes, bool]:
    """Send one request and read one response; (status, body, server keeps the connection open)."""
    conn.writer.write(request)
    await conn.writer.drain()
    head = await conn.reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    if "content-length" in headers:
        body = await conn.reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await conn.reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await conn.reader.read()
        keep = False
    return status, body, keep


async def _run_plan(plan: _Plan) -> dict[str, Any]:
    head = f"{plan.method} {plan.path} HTTP/1.1\r\nHost: {plan.host}:{plan.port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in plan.headers
    )
    idle: list[_Connection] = []
    opened = 0
    freed = asyncio.Condition()
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0
    samples: list[str] = []

    async def acquire() -> _Connection:
        nonlocal opened
        async with freed:
            while True:
                while idle and not idle[-1].reusable():
                    idle.pop().close()
                    opened -= 1
                if idle or opened < plan.connections:
                    break
                await freed.wait()
            if idle:
                return idle.pop()
            opened += 1
        try:
            reader, writer = await asyncio.open_connection(plan.host, plan.port)
        except BaseException:
            async with freed:
                opened -= 1
                freed.notify()
            raise
        return _Connection(reader, writer)

    async def release(conn: _Connection | None) -> None:
        nonlocal opened
        async with freed:
            if conn is None:
                opened -= 1
            else:
                conn.idle_since = time.monotonic()
                idle.append(conn)
            freed.notify()

    def fail(reason: str) -> None:
        nonlocal errors
        errors += 1
        if len(samples) < 5:
            samples.append(reason[:300])

    async def one(slot: int, due: float) -> None:
        body = plan.bodies[slot % len(plan.bodies)]
        request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        conn: _Connection | None = None
        lags.append(time.monotonic() - due)
        try:
            async with asyncio.timeout(plan.timeout):
                conn = await acquire()
                status, data, keep = await _exchange(conn, request)
        except (
            OSError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
            TimeoutError,
        ) as exc:
            latencies.append(time.monotonic() - due)
            if conn is not None:  # acquired: give its slot back (acquire() undoes its own failures)
                conn.close()
                await release(None)
            fail(f"{type(exc).__name__}: {exc}")
            return
        latencies.append(time.monotonic() - due)
        if not keep:
            conn.close()
            conn = None
        await release(conn)
        if status != plan.expect:
            fail(f"status {status}: {data[:200]!r}")
        elif plan.check is not None and not plan.check(status, data):
            fail(f"check failed: {data[:200]!r}")

    tasks = []
    for slot in plan.slots:
        due = plan.start + slot / plan.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(slot, due)))
    if tasks:
        await asyncio.wait(tasks)
    for conn in idle:
        conn.close()
    return {"latencies": latencies, "lags": lags, "errors": errors, "samples": samples, "sent": len(tasks)}


def _child(plan: _Plan, cpus: set[int] | None, out: Any) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    out.put(asyncio.run(_run_plan(plan)))


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] * 1000


def run_open_loop(
    url: str,
    *,
    rate: float,
    seconds: float,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    bodies: Sequence[bytes] = (b"",),
    expect: int = 200,
    check: Check | None = None,
    max_requests: int = 1_000_000,
    processes: int = 2,
    connections: int = 64,
    timeout: float = 10.0,
    cpus: set[int] | None = None,
) -> OpenLoopResult:
    """Offer ``rate`` requests/s for ``seconds`` (at most ``max_requests``); request ``i`` sends
    ``bodies[i % len(bodies)]`` (give distinct bodies where each request must be fresh, e.g. one-time
    codes). ``cpus`` pins the generator's processes (keep them off the server's core)."""
    if rate <= 0 or seconds <= 0 or not bodies:
        raise ValueError("rate and seconds must be positive, bodies non-empty")
    parts = urlsplit(url)
    total = min(max_requests, int(rate * seconds))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = mp.get_context("fork")  # the check may be a closure; the children only run asyncio
    queue: Any = context.Queue()
    start = time.monotonic() + 0.3 + 0.05 * processes  # every child is up before slot 0
    workers = []
    for k in range(processes):
        plan = _Plan(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 80,
            method=method,
            path=path,
            headers=tuple(headers),
            bodies=bodies,
            expect=expect,
            check=check,
            rate=rate,
            start=start,
            slots=range(k, total, processes),
            connections=max(1, connections // processes),
            timeout=timeout,
        )
        workers.append(context.Process(target=_child, args=(plan, cpus, queue)))
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + timeout + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    elapsed = max(time.monotonic() - start, 1e-9)
    latencies = sorted(x for r in results for x in r["latencies"])
    lags = sorted(x for r in results for x in r["lags"])
    errors = sum(r["errors"] for r in results)
    return OpenLoopResult(
        offered_rps=rate,
        achieved_rps=len(latencies) / elapsed,
        requests=sum(r["sent"] for r in results),
        ok=len(latencies) - errors,
        errors=errors,
        p50_ms=_percentile(latencies, 0.50),
        p90_ms=_percentile(latencies, 0.90),
        p99_ms=_percentile(latencies, 0.99),
        max_ms=latencies[-1] * 1000 if latencies else 0.0,
        schedule_lag_ms=_percentile(lags, 0.99),
        error_samples=[s for r in results for s in r["samples"]][:5],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="offered requests per second")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--body", default="", help="the request body (the same for every request)")
    parser.add_argument("--expect", type=int, default=200, help="the status every response must have")
    parser.add_argument("--expect-contains", default=None, help="text every response body must contain")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--cpus", default=None, help="cores for the generator, e.g. '0' or '0,1'")
    args = parser.parse_args()
    headers = [tuple(h.split(":", 1)) for h in args.header]
    needle = args.expect_contains.encode() if args.expect_contains else None
    result = run_open_loop(
        args.url,
        rate=args.rate,
        seconds=args.seconds,
        method=args.method,
        headers=[(k.strip(), v.strip()) for k, v in headers],
        bodies=[args.body.encode()],
        expect=args.expect,
        check=(lambda _s, body: needle in body) if needle else None,
        processes=args.processes,
        connections=args.connections,
        max_requests=args.max_requests,
        cpus={int(c) for c in args.cpus.split(",")} if args.cpus else None,
    )
    print(result.line())
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
