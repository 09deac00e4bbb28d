"""One figure of issue #16's table, as every bench module reports it, and the table they make together.

Each bench module that contributes to the table exposes ``figures(quick: bool) -> list[Figure]``: ``quick``
is the few-seconds variant ``make bench-smoke`` runs; otherwise the full measurement. ``bench.table`` calls
them all and prints one table; the smoke run compares each figure with its recorded value
(``bench/recorded.json``) and fails below half of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    """A measured figure, with the peer's figure beside it where one was measured in the same run."""

    key: str  # stable name, the key in bench/recorded.json, e.g. "token.sqlite"
    label: str  # what a reader sees, e.g. "token endpoint, client_credentials ES256 JWT, SQLite"
    value: float
    unit: str  # "req/s", "ms", "x", "MiB", ...
    better: Better = "higher"
    peer: float | None = None  # the peer's figure in the same run (node-oidc-provider, raw Ed25519, 10 k …)
    target: str = ""  # the target, as text, e.g. ">= 1.0 x peer", "p99 <= 20 ms"
    met: bool | None = None  # None: the target is not a yes/no on this figure
    note: str = ""  # what each side does that the other doesn't, or the measured reason a target is missed

    @property
    def ratio(self) -> float | None:
        if self.peer is None or self.peer == 0:
            return None
        return self.value / self.peer

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f} x"
        peer = "" if self.peer is None else f"{self.peer:,.1f}"
        met = {True: "met", False: "NOT met", None: ""}[self.met]
        return f"| {self.label} | {self.value:,.1f} {self.unit} | {peer} | {ratio} | {self.target} | {met} |"


TABLE_HEADER = "| figure | OneCard | peer | ratio | target | |\n|---|---|---|---|---|---|"
