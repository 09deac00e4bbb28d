"""Issue #16's figures table from one command: every bench module that contributes, one table.

    .venv/bin/python -m bench.table [--quick] [--postgres] [--check] [--record]

Calls ``bench.side_by_side.figures`` (token endpoint, discovery, JWKS beside node-oidc-provider) and, where
they exist, ``bench.bench_gate.figures``, ``bench.bench_card_login.figures``, ``bench.bench_scale.figures``
and ``bench.soak.figures`` (the 10-minute RSS run; ~30 s with ``--quick``) — each ``figures(quick: bool)
-> list[Figure]``, bench.figures — then prints the table.

``--quick`` is the few-seconds variant (``make bench-smoke``); ``--check`` then fails (exit 1) when a figure
is worse than half its value in ``bench/recorded.json`` (below half for "higher is better", above twice for
"lower is better"); figures not recorded there are shown and not checked. ``--record`` writes the measured
values into that file (run on a quiet machine, full length).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.figures import TABLE_HEADER, Figure

RECORDED = Path(__file__).resolve().parent / "recorded.json"
# Written by other work in parallel; each is called if it is there.
OPTIONAL_MODULES = ("bench.bench_gate", "bench.bench_card_login", "bench.bench_scale", "bench.soak")


def collect(*, quick: bool, postgres: bool) -> list[Figure]:
    from bench import side_by_side

    rows = side_by_side.figures(quick, postgres=postgres)
    for name in OPTIONAL_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        contribute: Callable[[bool], list[Figure]] | None = getattr(module, "figures", None)
        if contribute is not None:
            rows += contribute(quick)
    return rows


def regressions(rows: Sequence[Figure], recorded: dict[str, float]) -> list[str]:
    """The figures worse than half their recorded value, in words."""
    found = []
    for row in rows:
        before = recorded.get(row.key)
        if before is None or before <= 0:
            continue
        worse = row.value < before / 2 if row.better == "higher" else row.value > before * 2
        if worse:
            found.append(f"{row.key}: {row.value:,.1f} {row.unit}, recorded {before:,.1f} {row.unit}")
    return found


def render(rows: Sequence[Figure]) -> str:
    lines = [TABLE_HEADER, *(row.row() for row in rows)]
    notes = [f"- {row.label}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds per figure")
    parser.add_argument("--postgres", action="store_true", help="the token figure on PostgreSQL + Redis too")
    parser.add_argument("--check", action="store_true", help="fail below half of bench/recorded.json")
    parser.add_argument("--record", action="store_true", help="write the figures into bench/recorded.json")
    args = parser.parse_args(argv)
    rows = collect(quick=args.quick, postgres=args.postgres)
    print(f"{os.cpu_count()} CPUs on this machine; servers pinned to one core, load from the other")
    print(render(rows))
    recorded: dict[str, float] = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    if args.record:
        recorded.update({row.key: round(row.value, 1) for row in rows})
        RECORDED.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    if args.check:
        worse = regressions(rows, recorded)
        for line in worse:
            print("below half of the recorded figure:", line, file=sys.stderr)
        return 1 if worse else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
