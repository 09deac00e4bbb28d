"""Where one OneCard worker spends its time under load: py-spy samples it while wrk drives one endpoint.

    .venv/bin/python -m bench.profile --endpoint token [--full-path] [--server gunicorn] [--postgres]

The server is pinned to one core and wrk to the other, as in bench.side_by_side. Prints the share of
samples by the package of the innermost frame (where the CPU was) and the top frames by self time; these
are the tables in bench/README.md. ``--full-path`` turns the lean path off (ONECARD_LEAN_PATH=false), to
profile what Flask + Authlib cost on the same request. py-spy needs ptrace (root, or
kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.bench_token import seed
from bench.server import SERVERS, descendants, running_server
from bench.side_by_side import (
    FIGURES,
    SERVER_CPU,
    Side,
    check_token,
    postgres_and_redis,
    run_wrk,
)
from idp.serve_cli import DEFAULT_SERVER

ENDPOINTS = {"token": FIGURES[0], "discovery": FIGURES[1], "jwks": FIGURES[2]}
# The innermost frame's file, mapped to who it belongs to (first match wins).
AREAS = (
    ("gunicorn", "gunicorn"),
    ("granian", "granian"),
    ("sqlalchemy", "sqlalchemy"),
    ("psycopg", "psycopg / redis client"),
    ("redis", "psycopg / redis client"),
    ("werkzeug", "Flask / Werkzeug"),
    ("flask", "Flask / Werkzeug"),
    ("authlib", "Authlib"),
    ("jwt/", "PyJWT + cryptography (signing)"),
    ("cryptography", "PyJWT + cryptography (signing)"),
    ("prometheus_client", "prometheus_client (metrics)"),
    ("/idp/", "OneCard (idp/, sdk/)"),
    ("/sdk/", "OneCard (idp/, sdk/)"),
    ("json", "json"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)(?::\d+)?\)$")


def area_of(frame: str) -> str:
    for needle, area in AREAS:
        if needle in frame:
            return area
    return "other (stdlib, socket, threading)"


def summarise(collapsed: str, *, top: int = 15) -> str:
    leaf_areas: collections.Counter[str] = collections.Counter()
    leaf_frames: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame for frame in stack.split(";") if not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        leaf = frames[-1]
        if "(idle)" in leaf:  # py-spy leaves out idle threads unless --idle; belt and braces
            continue
        total += count
        leaf_areas[area_of(leaf)] += count
        match = _FRAME.match(leaf)
        short = leaf if match is None else f"{match['function']} ({Path(match['file']).name})"
        leaf_frames[short] += count
    if total == 0:
        return "no samples"
    lines = [f"{total} samples on CPU", "", "| where the CPU was | share |", "|---|---|"]
    lines += [f"| {area} | {count / total:.0%} |" for area, count in leaf_areas.most_common()]
    lines += ["", "| top frames (self) | share |", "|---|---|"]
    lines += [f"| `{frame}` | {count / total:.1%} |" for frame, count in leaf_frames.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", choices=sorted(ENDPOINTS), default="token")
    parser.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER)
    parser.add_argument("--full-path", action="store_true", help="the lean path off: Flask + Authlib")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    figure = ENDPOINTS[args.endpoint]
    with ExitStack() as stack:
        extra_env = stack.enter_context(postgres_and_redis()) if args.postgres else {}
        if args.full_path:
            extra_env = {**extra_env, "ONECARD_LEAN_PATH": "false"}
        running = stack.enter_context(
            running_server(seed, extra_env=extra_env, cpu=SERVER_CPU, server=args.server)
        )
        side = Side("OneCard", running.base_url, running.seeded["client_id"], running.seeded["secret"])
        check_token(side)
        worker = (descendants(running.process.pid) or [running.process.pid])[-1]
        output = Path(tempfile.mkdtemp(prefix="onecard-profile-")) / "stacks.txt"
        py_spy = str(Path(sys.executable).with_name("py-spy"))
        spy = subprocess.Popen(
            [py_spy, "record", "--pid", str(worker), "--duration", str(args.seconds), "--rate", "250",
             "--format", "raw", "--nonblocking", "--output", str(output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        result = run_wrk(side, figure, seconds=args.seconds, connections=16)
        spy.wait(60)
    path = "full path (Flask + Authlib)" if args.full_path else "lean path"
    database = "PostgreSQL + Redis" if args.postgres else "SQLite"
    print(f"{args.endpoint}, {path}, {args.server}, {database}: {result.requests_per_second:,.0f} req/s")
    print(summarise(output.read_text() if output.exists() else ""))


if __name__ == "__main__":
    main()
