"""The multi-process directory's lifecycle, for `rotator serve` (imports no prometheus-client:
it reads PROMETHEUS_MULTIPROC_DIR once, when imported, and must find it set).

Every API process writes its metrics as mmap files there; the directory is emptied when
serve starts (a previous run's files would be added to this one's counts) and a
temporary one is removed when serve stops.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_TEMP_PREFIX = "rotator-metrics-"


def prepare() -> Path:
    """Before the API's processes start. An operator's PROMETHEUS_MULTIPROC_DIR is used as
    given (emptied of metrics files); else a new temporary directory."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
        os.environ[ENV] = str(path)
    return path


def remove(path: Path) -> None:
    """After the API's processes stopped: a temporary directory made by prepare() goes."""
    if path.name.startswith(_TEMP_PREFIX) and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)
