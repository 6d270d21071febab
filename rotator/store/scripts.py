"""Lua scripts, loaded once from scripts/lua/ (shipped inside the wheel as rotator/lua/).

Callers send only the SHA1 (EVALSHA); on NOSCRIPT (Redis restarted or its
script cache flushed) the client resends the source once, which caches it again.
"""

from __future__ import annotations

import hashlib
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


@cache
def load(name: str) -> Script:
    source = (_lua_dir() / f"{name}.lua").read_bytes()
    return Script(name, source, hashlib.sha1(source).hexdigest())


def all_scripts() -> list[Script]:
    return [load(p.stem) for p in sorted(_lua_dir().glob("*.lua"))]
