"""A three-primary Valkey Cluster from the bundled binary, for tests (no valkey-cli needed).

`valkey_cluster` (session scope) starts it once; tests that need a clean one call
`valkey_cluster.flush()` (FLUSHALL and SCRIPT FLUSH on every primary). Slots are
assigned and nodes met from Python; each node's cluster bus uses port + 10000, so
ports are picked with both free. Helpers move a slot between nodes, in one go or in
the steps that make servers answer ASK and then MOVED.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rotator.embedded import EmbeddedValkey, free_port

CLUSTER_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "2000",
)  # fmt: skip
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
BUS_PORT_OFFSET = 10000


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_ports(count: int) -> list[int]:
    """Ports whose cluster bus ports (+10000) are free too, none colliding with another's."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(1000):
        port = free_port()
        bus = port + BUS_PORT_OFFSET
        if bus > 65535 or {port, bus} & taken or not _bindable(bus):
            continue
        chosen.append(port)
        taken |= {port, bus}
        if len(chosen) == count:
            return chosen
    raise RuntimeError("no free port pairs (port, port+10000) for a test cluster")


class ValkeyCluster:
    """Three cluster-enabled valkey-server children, one per third of the slots."""

    def __init__(
        self,
        base_dir: Path,
        *,
        appendonly: bool = False,
        node_args: Callable[[int], tuple[str, ...]] = lambda port: (),
    ) -> None:
        """`node_args(port)`: more valkey-server arguments for the node on `port`."""
        ports = cluster_ports(len(SLOT_RANGES))
        self.nodes = [
            EmbeddedValkey(
                base_dir / f"node{i}",
                port=p,
                appendonly=appendonly,
                extra_args=(*CLUSTER_ARGS, *node_args(p)),
            )
            for i, p in enumerate(ports)
        ]
        self.clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        """Any one node, which is all a cluster client needs."""
        return self.nodes[0].url

    def start(self, timeout_s: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        self.clients = [redis.Redis(host=n.host, port=n.port) for n in self.nodes]
        for index, (first, last) in enumerate(SLOT_RANGES):
            client = self.clients[index]
            # distinct config epochs up front, as valkey-cli does, instead of collisions
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", index + 1)
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for node in self.nodes[1:]:
            self.clients[0].execute_command("CLUSTER", "MEET", node.host, node.port)
        self.wait_ok(timeout_s)

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Until every node reports cluster_state:ok and knows every other node."""
        self._wait(lambda: all(self._healthy(i) for i in self._all), timeout_s)

    def _healthy(self, index: int) -> bool:
        info = self._info(index)
        return info["cluster_state"] == "ok" and info["cluster_known_nodes"] == str(len(self.nodes))

    def flush(self) -> None:
        """An empty cluster: FLUSHALL and SCRIPT FLUSH on every primary."""
        for client in self.clients:
            client.flushall()
            client.script_flush()

    def node_id(self, index: int) -> str:
        return _text(self.clients[index].execute_command("CLUSTER", "MYID"))

    def owner(self, slot: int, seen_by: int = 0) -> int:
        """Index of the node serving `slot` (as node `seen_by` sees it)."""
        slots = self.clients[seen_by].execute_command("CLUSTER", "SLOTS")
        for start, end, primary, *_ in slots:
            if start <= slot <= end:
                port = int(primary[1])
                return next(i for i, node in enumerate(self.nodes) if node.port == port)
        raise LookupError(f"slot {slot} is not served")

    # --- moving a slot: begin (source answers ASK for moved keys), move keys, finish -------
    def begin_migration(self, slot: int, source: int, target: int) -> None:
        self.clients[target].execute_command(
            "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source)
        )
        self.clients[source].execute_command(
            "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target)
        )

    def move_keys(self, slot: int, source: int, target: int) -> None:
        src = self.clients[source]
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 10_000)
        if keys:
            dst = self.nodes[target]
            src.execute_command("MIGRATE", dst.host, dst.port, "", 0, 5000, "KEYS", *keys)

    def finish_migration(self, slot: int, target: int) -> None:
        """Give the slot to `target` on every node, and wait until they all agree.

        Ownership changed by SETSLOT NODE is defended by config epochs only: a gossip
        packet of the old owner, sent just before, wins the slot back when its epoch is
        higher. So once every node knows the same current epoch, the target takes a new
        highest one (BUMPEPOCH) before it is given the slot; then no stale claim can win.
        """
        self._wait(lambda: len({self._info(i)["cluster_current_epoch"] for i in self._all}) == 1)
        target_id = self.node_id(target)
        self.clients[target].execute_command("CLUSTER", "BUMPEPOCH")
        self.clients[target].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for index in self._all:
            if index != target:
                self.clients[index].execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self._wait(lambda: all(self.owner(slot, seen_by=i) == target for i in self._all))

    @property
    def _all(self) -> range:
        return range(len(self.nodes))

    def _info(self, index: int) -> dict[str, str]:
        text = _text(self.clients[index].execute_command("CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    @staticmethod
    def _wait(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not settle")
            time.sleep(0.02)

    def migrate_slot(self, slot: int, source: int, target: int, attempts: int = 5) -> None:
        """Move `slot` from `source` to `target`: from its owner as the cluster settled, which
        is `source` but for one race seen in full runs. Just after a finish_migration, with
        every node agreeing on the new owner, a node can still take a stale claim and change
        its mind; SETSLOT MIGRATING then answers "not the owner". Gossip is outside the
        harness's control, so a refused start is undone and tried again once settled."""
        for attempt in range(attempts):
            self._wait(lambda: len({self.owner(slot, seen_by=i) for i in self._all}) == 1)
            owner = self.owner(slot, seen_by=source)
            if owner == target:
                return
            try:
                self.begin_migration(slot, owner, target)
            except redis.ResponseError:
                if attempt == attempts - 1:
                    raise
                for index in (owner, target):
                    self.clients[index].execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
                time.sleep(0.1)  # a gossip round: let the stale claim settle
                continue
            self.move_keys(slot, owner, target)
            self.finish_migration(slot, target)
            return

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        for node in self.nodes:
            node.stop()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """One cluster per test session; call .flush() for a clean one."""
    cluster = ValkeyCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
