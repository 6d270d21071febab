"""What the machine's CPUs did meanwhile: /proc/stat (host-wide and per CPU) and /proc/<pid>.

A measurement is only as good as the machine was quiet. Two things take CPU from the
processes under test, and both are read here, before and after each measurement:
- other processes on this machine: the host's process time (user + nice + system)
  minus what wrk, the server under test and Valkey used (their /proc/<pid>/stat);
- the hypervisor: `steal`, time a vCPU was ready to run while the host ran something
  else (another VM). Read per CPU, so only the CPUs the bench runs on count.
What neither shows (a neighbour's cache and memory bandwidth, frequency changes) the
bench catches by measuring the bare handler again and again (bench/disturbance.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class HostCpu:
    """Cumulative CPU seconds since boot, as /proc/stat counts them."""

    busy_s: float
    """Every CPU's user + nice + system (guest time is inside user)."""
    irq_s: float
    """irq + softirq: loopback networking runs there, charged to no process."""
    steal_s: dict[int, float] = field(default_factory=dict)
    """Per CPU number: time stolen by the hypervisor."""

    @classmethod
    def sample(cls, text: str | None = None) -> HostCpu:
        """Now (or from a /proc/stat text, for tests)."""
        if text is None:
            with open("/proc/stat") as f:
                text = f.read()
        busy = irq = 0.0
        steal: dict[int, float] = {}
        for line in text.splitlines():
            if not line.startswith("cpu"):
                continue
            name, *raw = line.split()
            v = [int(x) for x in raw] + [0] * 10
            if name == "cpu":
                busy = (v[0] + v[1] + v[2]) * TICK_S
                irq = (v[5] + v[6]) * TICK_S
            else:
                steal[int(name[3:])] = v[7] * TICK_S
        return cls(busy, irq, steal)

    def steal_on(self, cpus: Iterable[int] | None = None) -> float:
        """Stolen seconds summed over `cpus` (all when None)."""
        wanted = self.steal_s.keys() if cpus is None else cpus
        return sum(self.steal_s.get(cpu, 0.0) for cpu in wanted)


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of live processes (from /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * TICK_S
