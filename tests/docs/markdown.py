"""The shell blocks of the documentation, as the docs tests read them.

A block is a fenced code block whose info string is `sh`. One the tests cannot run (a
server that runs until Ctrl-C, Docker, a long benchmark) is marked on the line before its
fence, with the reason:

    <!-- docs-test: skip (serves until Ctrl-C) -->
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w-]*)\s*$")
SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->\s*$")
MARKER = re.compile(r"docs-test:")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    """1-based line of the opening fence."""
    text: str
    skip: str | None
    """Why the tests do not run it (the marker's reason), or None."""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def sh_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start, end = i, i + 1
        while end < len(lines) and not FENCE.match(lines[end]):
            end += 1
        if opening["info"] == "sh":
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            skip = SKIP.match(before)
            body = textwrap.dedent("\n".join(lines[start + 1 : end]))
            found.append(Block(path, start + 1, body, skip["reason"].strip() if skip else None))
        i = end + 1
    return found


def markers(path: Path) -> list[tuple[int, str]]:
    """Every line that mentions the marker, so a mistyped one is noticed."""
    return [
        (n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if MARKER.search(line)
    ]
