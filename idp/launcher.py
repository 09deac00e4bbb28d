"""The ``onecard`` console script's entry point: ``idp.cli`` if the server extra is installed, else one line.

One distribution carries the SDK and the server, so ``pip install onecard`` (the SDK alone) also installs
this script. Without ``onecard[server]`` importing ``idp.cli`` fails on Flask, SQLAlchemy, click…; the
launcher turns that into the line ``SERVER_EXTRA_MISSING`` on stderr and exit status 2 (a usage mistake, as
click's) instead of a traceback. It imports nothing of the server at module level.

A missing module is blamed on the extra only when the installed metadata says a requirement of the
``server`` extra is absent; any other import error (a bug) is raised as it is.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

DISTRIBUTION = "onecard"
SERVER_EXTRA = "server"
SERVER_EXTRA_MISSING = "the onecard server needs: pip install 'onecard[server]'"
EXIT_USAGE = 2

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def missing_requirements(extra: str, *, distribution: str = DISTRIBUTION) -> list[str]:
    """The distributions ``extra`` of ``distribution`` requires that are not installed (names as written)."""
    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return [f"{distribution}[{extra}]"]  # run from a source tree that was never installed
    missing = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if extra not in _EXTRA_MARKER.findall(marker):
            continue
        name = _NAME.match(spec.strip())
        if name is None:
            continue
        try:
            metadata.distribution(name.group())
        except metadata.PackageNotFoundError:
            missing.append(name.group())
    return missing


def main() -> None:
    """The ``onecard`` command."""
    try:
        from idp.cli import main as onecard_main
    except ModuleNotFoundError:
        if not missing_requirements(SERVER_EXTRA):
            raise
        print(SERVER_EXTRA_MISSING, file=sys.stderr)
        sys.exit(EXIT_USAGE)
    onecard_main()


if __name__ == "__main__":
    main()
