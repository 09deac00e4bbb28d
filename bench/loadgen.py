"""A small closed-loop HTTP load generator: N processes, each with one keep-alive connection, sending the
same request for a fixed time; prints requests/s and latency percentiles. Runs in processes of its own so
the server under test keeps its core. Bounded by time and count; it stops by itself."""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    expect: int = 200


def _worker(request: Request, seconds: float, max_requests: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    parts = urlsplit(request.url)
    host = parts.hostname or "127.0.0.1"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(host, parts.port, timeout=10)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
        started = time.perf_counter()
        try:
            connection.request(request.method, path, body=request.body or None, headers=dict(request.headers))
            response = connection.getresponse()
            response.read()
            if response.status != request.expect:
                errors += 1
                continue
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()
            connection = http.client.HTTPConnection(host, parts.port, timeout=10)
            continue
        latencies.append(time.perf_counter() - started)
    out.put((latencies, errors))


def run_load(
    request: Request, *, concurrency: int, seconds: float, max_requests: int = 1_000_000
) -> dict[str, float]:
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    workers = [
        mp.Process(target=_worker, args=(request, seconds, max_requests // concurrency, queue))
        for _ in range(concurrency)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=seconds + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    elapsed = time.perf_counter() - started
    latencies = sorted(lat for part, _ in results for lat in part)
    errors = sum(err for _, err in results)
    if not latencies:
        return {"requests": 0, "errors": errors, "rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(run_load(Request("GET", args.url), concurrency=args.concurrency, seconds=args.seconds)))


if __name__ == "__main__":
    main()
