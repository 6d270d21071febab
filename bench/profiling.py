"""Where the API worker's time goes under load: py-spy samples, summarised by frame.

py-spy attaches to the running worker (no restart, `--nonblocking` so sampling does
not pause it) and writes collapsed stacks; `summarise` ranks frames by self time
(the sample's innermost Python frame, including the C code it calls) and by
inclusive time, and groups self time by component (our code, Litestar, uvicorn,
uvloop's C loop, ...). Idle time in the event loop's poll is not sampled.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)")

COMPONENTS = (
    ("rotator/", "rotator (our code)"),
    ("litestar", "litestar"),
    ("uvicorn", "uvicorn"),
    ("granian", "granian"),
    ("httptools", "httptools"),
    ("msgspec", "msgspec"),
    ("cryptography", "cryptography"),
    ("uvloop", "uvloop"),
    ("asyncio", "asyncio"),
)


def py_spy() -> str | None:
    """py-spy from the venv (pip install py-spy) or PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def record(
    spy: str, pids: list[int], duration_s: int, out: Path, *, cpus: set[int] | None = None
) -> str:
    """Sample the worker(s) for duration_s; returns py-spy's collapsed (raw) stacks."""
    texts = []
    for i, pid in enumerate(pids):
        target = out.with_suffix(f".{i}.txt")
        cmd = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(duration_s),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(target),
            "--nonblocking",
        ]
        subprocess.run(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        if target.exists():
            texts.append(target.read_text())
    return "".join(texts)


def _frames(stack: str) -> list[tuple[str, str]]:
    frames = []
    for part in stack.split(";"):
        match = _FRAME.fullmatch(part.strip())
        if match:
            frames.append((match["func"], match["file"]))
    return frames


EVENT_LOOP = "event loop (uvloop's C code: socket I/O, scheduling)"
_BOOTSTRAP = (
    "<frozen runpy>",
    "click/",
    "uvicorn/main.py",
    "uvicorn/__main__.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
)
"""Frames every sample of the main loop passes through: left out of the inclusive ranking."""


def component(path: str, func: str = "") -> str:
    # uvloop runs in C under asyncio's Runner.run: a sample whose innermost Python frame
    # is Runner.run was inside the loop itself
    if func == "Runner.run" and "asyncio/runners.py" in path:
        return EVENT_LOOP
    for needle, name in COMPONENTS:
        if needle in path:
            return name
    return "other (stdlib, redis client, ...)"


def summarise(raw: str, top: int = 15) -> dict:
    """Top frames by self and inclusive samples, and self samples by component."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames:
            continue
        total += n
        func, path = frames[-1]
        self_counts[f"{func} ({path})"] += n
        components[component(path, func)] += n
        for name in {f"{f} ({p})" for f, p in frames if not p.startswith(_BOOTSTRAP)}:
            inclusive[name] += n

    def ranked(counter: Counter[str]) -> list[dict]:
        return [
            {"frame": name, "samples": n, "percent": round(100 * n / total, 1)}
            for name, n in counter.most_common(top)
        ]

    return {
        "samples": total,
        "self": ranked(self_counts) if total else [],
        "inclusive": ranked(inclusive) if total else [],
        "components": ranked(components) if total else [],
    }
