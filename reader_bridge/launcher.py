"""The ``onecard-bridge`` console script's entry point: ``reader_bridge.cli``, a missing pyscard as one line.

pyscard comes with ``onecard[bridge]``. The bridge imports it only when it opens a real PC/SC reader
(``reader_bridge.transport``), so ``--help``, ``emulate`` and ``serve --dev --virtual-card`` work without
it; a command that needs it gets the line ``BRIDGE_EXTRA_MISSING`` on stderr and exit status 2 instead of a
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

PYSCARD_MODULE = "smartcard"
BRIDGE_EXTRA_MISSING = "the card reader bridge needs pyscard: pip install 'onecard[bridge]'"
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """The ``onecard-bridge`` command."""
    from reader_bridge.cli import main as bridge_main

    try:
        return bridge_main(argv)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] != PYSCARD_MODULE:
            raise
        print(BRIDGE_EXTRA_MISSING, file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
