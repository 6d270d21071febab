"""Redis cost of a measured window: commands per delivery, script time, CPU per delivery.

`CONFIG RESETSTAT` before the window, `INFO commandstats`/`stats`/`cpu` after.
`total_reads_processed` (INFO stats) counts the reads Valkey made from client sockets:
script calls per read is how many deliveries the API's write batching puts in one
batch, as the server sees it (the bench's own INFO/CONFIG reads are a handful).
INFO commandstats (and total_commands_processed) count the commands a Lua script
runs as well as the client's EVALSHA, so client (top-level) commands are computed
as every command *not* named in scripts/lua/*.lua (EVALSHA, EVAL, PING, ...) minus the
bench's own INFO/CONFIG; the script-internal ones are reported separately, per
script call. CPU comes from `INFO cpu` (getrusage of the server process: main thread,
network handling and the AOF fsync thread) as a delta over the window, since RESETSTAT
does not reset it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import redis

LUA_DIR = Path(__file__).resolve().parent.parent / "scripts" / "lua"
SCRIPT_CALLERS = frozenset(("evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"))
BENCH_OWN = frozenset(("info", "config|resetstat"))
"""Commands the bench itself sends around a window (not the API's)."""


def script_commands(lua_dir: Path = LUA_DIR) -> frozenset[str]:
    """Every command name a script of ours calls (lower case), read from the sources."""
    found: set[str] = set()
    for path in lua_dir.glob("*.lua"):
        found.update(m.lower() for m in re.findall(r"redis\.p?call\(\s*'(\w+)'", path.read_text()))
    return frozenset(found)


@dataclass
class CpuSnapshot:
    total_s: float
    main_s: float


def cpu(r: redis.Redis) -> CpuSnapshot:
    info = r.info("cpu")
    return CpuSnapshot(
        total_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        main_s=float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"]),
    )


def begin(r: redis.Redis) -> CpuSnapshot:
    """Open a window: reset command stats, snapshot CPU."""
    r.config_resetstat()
    return cpu(r)


@dataclass
class RedisCost:
    """What the server did in one window; per-delivery figures need the deliveries count."""

    script_calls: int
    script_usec: float
    internal: dict[str, int]
    top_level: dict[str, int]
    cpu_s: float
    cpu_main_s: float
    failed_calls: int = 0
    reads: int = 0
    per: dict[str, float] = field(default_factory=dict)

    @property
    def script_usec_per_call(self) -> float:
        return self.script_usec / self.script_calls if self.script_calls else 0.0

    @property
    def top_level_calls(self) -> int:
        return sum(self.top_level.values())

    @property
    def internal_calls(self) -> int:
        return sum(self.internal.values())

    def per_delivery(self, deliveries: int, requests: int) -> dict[str, float]:
        """Figures per request and per successful delivery.

        Every request costs exactly one script call, so the server's script calls are its
        request count (wrk's count misses the requests still in flight when it stops, which
        the server did run); per delivery = per request / the fraction answered 200.
        """
        calls = max(self.script_calls, 1)
        success = deliveries / requests if requests else 0.0
        per_request = {
            "commands": self.top_level_calls / calls,
            "cpu_us": self.cpu_s * 1e6 / calls,
        }
        self.per = {
            "commands_per_request": per_request["commands"],
            "commands_per_delivery": per_request["commands"] / success if success else 0.0,
            "internal_commands_per_script_call": self.internal_calls / calls,
            "script_usec_per_call": self.script_usec_per_call,
            "cpu_us_per_request": per_request["cpu_us"],
            "cpu_us_per_delivery": per_request["cpu_us"] / success if success else 0.0,
            "cpu_main_us_per_request": self.cpu_main_s * 1e6 / calls,
            "script_calls_per_read": self.script_calls / self.reads if self.reads else 0.0,
        }
        return self.per

    def to_json(self) -> dict:
        return {
            "script_calls": self.script_calls,
            "script_usec_per_call": round(self.script_usec_per_call, 2),
            "failed_calls": self.failed_calls,
            "reads": self.reads,
            "top_level": self.top_level,
            "internal": self.internal,
            "cpu_s": round(self.cpu_s, 4),
            "cpu_main_s": round(self.cpu_main_s, 4),
            **{k: round(v, 3) for k, v in self.per.items()},
        }


def parse(
    commandstats: dict,
    before: CpuSnapshot,
    after: CpuSnapshot,
    internal_names: frozenset[str],
    reads: int = 0,
) -> RedisCost:
    """Split INFO commandstats into client and script-internal commands."""
    internal: dict[str, int] = {}
    top: dict[str, int] = {}
    script_calls = 0
    script_usec = 0.0
    failed = 0
    for key, stats in commandstats.items():
        name = key.removeprefix("cmdstat_").lower()
        calls = int(stats["calls"])
        if name in BENCH_OWN:
            continue
        if name in SCRIPT_CALLERS:
            script_calls += calls
            script_usec += float(stats["usec"])
            failed += int(stats.get("failed_calls", 0))
        if name in internal_names and name not in SCRIPT_CALLERS:
            internal[name] = calls
        else:
            top[name] = calls
    return RedisCost(
        script_calls=script_calls,
        script_usec=script_usec,
        internal=dict(sorted(internal.items())),
        top_level=dict(sorted(top.items())),
        cpu_s=after.total_s - before.total_s,
        cpu_main_s=after.main_s - before.main_s,
        failed_calls=failed,
        reads=reads,
    )


def end(r: redis.Redis, before: CpuSnapshot, internal_names: frozenset[str]) -> RedisCost:
    """Close a window opened by `begin`."""
    after = cpu(r)
    reads = int(r.info("stats")["total_reads_processed"])
    return parse(r.info("commandstats"), before, after, internal_names, reads)
