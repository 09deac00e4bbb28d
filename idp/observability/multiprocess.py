"""The directory gunicorn's workers share their metrics through (prometheus_client's multiprocess mode).

``onecard serve`` prepares it in the master before the first fork: the operator's
``PROMETHEUS_MULTIPROC_DIR``, emptied of an earlier run's files (counters would otherwise start from where
the last run stopped, or from another deployment's), or a fresh private temporary directory that it removes
again when the master exits. A worker that exits has its live-gauge files dropped (``worker_exited``); its
counters stay, so totals never go down when gunicorn replaces a worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import multiprocess

from idp.observability.metrics import MULTIPROCESS_ENV, use_multiprocess_mode


@dataclass(frozen=True)
class MultiprocessDirectory:
    path: Path
    owned: bool  # made by us, so ours to remove

    def worker_exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]

    def remove(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)


def prepare_multiprocess_directory() -> MultiprocessDirectory:
    """Switch this process (and the workers it will fork) to multiprocess mode, in a clean directory."""
    given = os.environ.get(MULTIPROCESS_ENV)
    if given:
        path = Path(given)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink(missing_ok=True)
        directory = MultiprocessDirectory(path, owned=False)
    else:
        # mkdtemp: mode 0700, so no other local user reads (or plants) metric files.
        directory = MultiprocessDirectory(Path(tempfile.mkdtemp(prefix="onecard-metrics-")), owned=True)
    use_multiprocess_mode(str(directory.path))
    return directory
