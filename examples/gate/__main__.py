"""``python -m examples.gate``: verify scanned codes at a venue gate (see ``examples.gate.gate``)."""

from __future__ import annotations

import sys

from examples.gate.gate import main

if __name__ == "__main__":
    sys.exit(main())
