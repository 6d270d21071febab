"""Lua scripts, loaded once from scripts/lua/ (shipped inside the wheel as rotator/lua/).

Callers send only the SHA1 (EVALSHA); on NOSCRIPT (Redis restarted or its
script cache flushed) the client resends the source once, which caches it again.

A script that needs steps shared with others says `-- include: <name>` on a line of its
header; scripts/lua/lib/<name>.lua is then prepended to it here, so the shared rule is
written once and the script still runs as one atomic unit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class Script:
    name: str
    source: bytes
    sha: str


def _lua_dir() -> Path:
    packaged = resources.files("rotator") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    # editable install / source checkout: the files live at the repository root
    return Path(__file__).resolve().parents[2] / "scripts" / "lua"


_INCLUDE = re.compile(rb"^-- include: ([a-z_]+)$", re.MULTILINE)


@cache
def load(name: str) -> Script:
    own = (_lua_dir() / f"{name}.lua").read_bytes()
    libs = [(_lua_dir() / "lib" / f"{lib.decode()}.lua").read_bytes() for lib in
            _INCLUDE.findall(own)]  # fmt: skip
    source = b"".join(libs) + own
    return Script(name, source, hashlib.sha1(source).hexdigest())
