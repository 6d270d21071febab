"""Error replies of a store that is up but cannot serve now, for a caller the same as a
store that cannot be reached: answered `503 store unavailable`, exit 2, a deferral.

- `OOM`: maxmemory reached (noeviction): every write refused until memory is freed;
- `READONLY`: the address now names a replica (a failover demoted the primary);
- `BUSY`: a script ran past busy-reply-threshold; only SCRIPT KILL or SHUTDOWN answer;
- `LOADING`: reading its AOF/RDB after a restart;
- `MISCONF`: it cannot persist (disk full, AOF/RDB write errors) and refuses writes;
- `MASTERDOWN`, `NOREPLICAS`: a replica cut off from its primary, too few replicas;
- `TRYAGAIN`, `CLUSTERDOWN`: a cluster migrating or healing.

Each passes by itself or by an operator's action, without a restart of ours; none is a
bug of the caller (which stays a 500). Lua scripts never half-apply on them: a script's
first write is refused, and these states do not change in the middle of a script.
"""

from __future__ import annotations

import re

from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError, TryAgainError

from rotator.domain.errors import StoreUnavailable

CODES = (
    "OOM", "READONLY", "BUSY", "LOADING", "MISCONF", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN",
    "CLUSTERDOWN",
)  # fmt: skip

_CODE = re.compile(r"\(?['\"]?(" + "|".join(CODES) + r")\b")
"""At the start of the reply: the whole message, or what follows redis-py's last "of
pipeline caused error: " (a pipeline's first error, raised after its command line, whose
arguments, a label for one, may hold any text)."""
_PIPELINE = "of pipeline caused error: "

_CLASSES = {OutOfMemoryError: "OOM", ReadOnlyError: "READONLY", TryAgainError: "TRYAGAIN"}
"""redis-py's classes for codes it strips from the message."""


def code_of_reply(message: str) -> str | None:
    """The refusal code of a raw error reply (hiredis: "OOM command not allowed …")."""
    match = _CODE.match(message)
    return match.group(1) if match else None


def code_of(exc: BaseException) -> str | None:
    """The refusal code of a redis-py ResponseError, None for any other error."""
    if not isinstance(exc, ResponseError):
        return None
    for cls, code in _CLASSES.items():
        if isinstance(exc, cls):
            return code
    text = str(exc)
    _, found, reply = text.rpartition(_PIPELINE)
    match = _CODE.match(reply if found else text)
    return match.group(1) if match else None


class StoreRefused(StoreUnavailable):
    """The store answered a refusal (CODES). A client sees `store unavailable`; the log
    says which refusal, and never the command line redis-py puts in its message (a
    pipeline's arguments)."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def __str__(self) -> str:
        return f"it answered {self.code}"
