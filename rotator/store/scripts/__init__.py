"""The script layer: every Lua script, loaded once, called through one typed wrapper each.

Layout: this module loads scripts/lua/<name>.lua (shipped inside the wheel as rotator/lua/)
with scripts/lua/lib/prelude.lua, the steps every script shares, prepended, and any
`-- include: <name>` library of its header (scripts/lua/lib/<name>.lua) after it, so each rule
is written once and a script still runs as one atomic unit; its SHA is of the combined
source. `call.py` is the one call path (EVALSHA, NOSCRIPT answered once by resending the
source; a durable variant followed by WAITAOF on the same connection). The other modules
hold the wrappers, one per script, grouped by family: each owns its script's KEYS/ARGV
layout and decodes its reply into a typed result, and nothing else calls the script.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

PRELUDE = "prelude"
"""scripts/lua/lib/prelude.lua: prepended to every script."""


@dataclass(frozen=True)
class Script:
    name: str
    source: bytes
    sha: str


def lua_dir() -> Path:
    packaged = resources.files("rotator") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    # editable install / source checkout: the files live at the repository root
    return Path(__file__).resolve().parents[3] / "scripts" / "lua"


_INCLUDE = re.compile(rb"^-- include: ([a-z_]+)$", re.MULTILINE)


def _lib(name: str) -> bytes:
    return (lua_dir() / "lib" / f"{name}.lua").read_bytes()


AUDIT = "audit"
"""scripts/lua/lib/audit.lua: wraps a write script's body in its audited variant."""


@cache
def load_audited(name: str) -> Script:
    """The write script `name` recording its audit record in the same run: its body becomes
    a function whose reply `audit_finish` reads (a record iff the script changed something)
    and returns as `{recorded, reply}`; the caller appends the audit KEYS/ARGV after its own,
    which `audit_take` removes before the body runs (rotator/store/scripts/audit.py)."""
    own = (lua_dir() / f"{name}.lua").read_bytes()
    assert not own.startswith(b"#!"), f"{name} is flagged (read-only?): not a write script"
    libs = [_lib(lib.decode()) for lib in _INCLUDE.findall(own)]
    source = b"".join(
        [
            _lib(PRELUDE),
            *libs,
            _lib(AUDIT),
            b"local audit_args = audit_take()\n",
            b"local function audited_body()\n",
            own,
            b"\nend\n",
            b"return audit_finish(audit_args, audited_body())\n",
        ]
    )
    return Script(name + "+audit", source, hashlib.sha1(source).hexdigest())


@cache
def load(name: str) -> Script:
    """The script `name` as sent to the server: prelude, included libraries, its own text."""
    own = (lua_dir() / f"{name}.lua").read_bytes()
    libs = [_lib(lib.decode()) for lib in _INCLUDE.findall(own)]
    # a shebang line (`#!lua flags=no-writes`) must stay the source's first line
    shebang, own = own.split(b"\n", 1) if own.startswith(b"#!") else (b"", own)
    source = b"".join([shebang + b"\n" if shebang else b"", _lib(PRELUDE), *libs, own])
    return Script(name, source, hashlib.sha1(source).hexdigest())
