"""Seeding: tenants, services and provider keys written straight in the schema of
rotator/store/keys.py (fields as the management store writes them), with pipelines,
so 10,000 tenants take seconds rather than 10,000 management round trips.

Each tenant gets three services, one per policy (`usage`, `manual`, `time`), with
KEYS_PER_SERVICE keys each, realistic secrets (sealed with AES-GCM under the API's
master key, AAD bound to the record) and a client token. Seeding runs in three
phases (tenants, services, keys) and reads `used_memory` after each, which gives
Redis memory per tenant and per stored provider key.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from rotator.crypto import KeyRing, aad_for_key
from rotator.domain import tokens
from rotator.domain.masking import mask
from rotator.store import keys

KEYS_PER_SERVICE = 3
TIME_TTL_MS = 24 * 3_600_000
"""Time policy: keys valid for a day, so none expires during a run."""
POLICIES = ("usage", "manual", "time")
SECRET_PREFIX = "sk-proj-"
SECRET_LEN = 56
"""An OpenAI-style project key of 56 characters (sealed: 94 bytes with a fingerprint key id)."""
_CHUNK = 500  # tenants per pipeline


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(48)[: SECRET_LEN - len(SECRET_PREFIX)]


@dataclass
class Population:
    """A set of seeded tenants; tokens[i] is the client token of tenants[i]."""

    name: str
    tenants: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    demo: bool = False

    def paths(self, service: str, *, masked: bool = False) -> list[str]:
        """Request paths of /v1/next, one per tenant (the wrk script cycles through them)."""
        suffix = "&mask=1" if masked else ""
        return [f"/v1/next?service={service}&token={tok}{suffix}" for tok in self.tokens]


@dataclass
class SeedReport:
    tenants: int
    keys: int
    seconds: float
    used_memory: dict[str, int]
    """used_memory (bytes) before seeding and after each phase: start, tenants, services, keys."""

    @property
    def bytes_per_tenant(self) -> float:
        """Everything of one tenant: its hash, 3 services, their 9 keys, registries."""
        return (self.used_memory["keys"] - self.used_memory["start"]) / self.tenants

    @property
    def bytes_per_tenant_record(self) -> float:
        """The tenant alone (hash, seq, service set, registry entry), before services."""
        return (self.used_memory["tenants"] - self.used_memory["start"]) / self.tenants

    @property
    def bytes_per_service(self) -> float:
        """One service hash with no key yet."""
        services = self.tenants * len(POLICIES)
        return (self.used_memory["services"] - self.used_memory["tenants"]) / services

    @property
    def bytes_per_key(self) -> float:
        """One stored provider key: its fields in the service hash (sealed secret, label, ...)."""
        return (self.used_memory["keys"] - self.used_memory["services"]) / self.keys

    def to_json(self) -> dict:
        return {
            "tenants": self.tenants,
            "keys": self.keys,
            "seconds": round(self.seconds, 2),
            "used_memory": self.used_memory,
            "bytes_per_tenant": round(self.bytes_per_tenant, 1),
            "bytes_per_tenant_record": round(self.bytes_per_tenant_record, 1),
            "bytes_per_service": round(self.bytes_per_service, 1),
            "bytes_per_key": round(self.bytes_per_key, 1),
        }


@dataclass
class _Tenant:
    tid: str
    token: str
    client_hash: str
    admin_hash: str
    keys: dict[str, list[tuple[int, str, bytes, str]]]
    """policy -> [(key id, label, sealed secret, masked form)]"""


def _make_tenant(ring: KeyRing) -> _Tenant:
    tid = tokens.new_tenant_id()
    client = tokens.mint_client(tid)
    admin = tokens.mint_admin(tid)
    per_service: dict[str, list[tuple[int, str, bytes, str]]] = {}
    key_id = 0
    for slug in POLICIES:
        rows = []
        for n in range(KEYS_PER_SERVICE):
            key_id += 1
            secret = new_secret()
            sealed = ring.seal(secret.encode(), aad_for_key(tid, slug, key_id))
            rows.append((key_id, f"{slug} key {n + 1}", sealed, mask(secret)))
        per_service[slug] = rows
    return _Tenant(tid, client.token, client.secret_hash, admin.secret_hash, per_service)


def _chunks(items: list[_Tenant]) -> Iterator[list[_Tenant]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def seed(
    r: redis.Redis,
    ring: KeyRing,
    count: int,
    *,
    name: str,
    demo: bool = False,
    now_ms: int | None = None,
) -> tuple[Population, SeedReport]:
    """Write `count` tenants with their services and keys; measure memory per phase."""
    started = time.perf_counter()
    now = str(now_ms if now_ms is not None else int(time.time() * 1000))
    made = [_make_tenant(ring) for _ in range(count)]
    memory = {"start": _used_memory(r)}

    # phase 1: tenants as create_tenant writes them, plus the id sequence and service set
    for chunk in _chunks(made):
        pipe = r.pipeline(transaction=False)
        for t in chunk:
            pipe.hset(keys.tenant(t.tid), mapping={
                "name": f"bench {t.tid}", "demo": "1" if demo else "0", "created_ms": now,
                "admin": t.admin_hash, "client": t.client_hash, "allow": "",
                "allow_src": "[]", "wh_url": "", "events": "",
            })
            pipe.sadd(keys.TENANTS, t.tid)
            pipe.set(keys.seq(t.tid), len(POLICIES) * KEYS_PER_SERVICE)
            pipe.sadd(keys.services(t.tid), *POLICIES)
        pipe.execute()
    memory["tenants"] = _used_memory(r)

    # phase 2: services as service_create.lua writes them (with copies of tenant fields)
    for chunk in _chunks(made):
        pipe = r.pipeline(transaction=False)
        for t in chunk:
            for slug in POLICIES:
                pipe.hset(keys.service(t.tid, slug), mapping={
                    "policy": slug, "max": "",
                    "ttl_ms": str(TIME_TTL_MS) if slug == "time" else "",
                    "created_ms": now, "ids": "",
                    "@client": t.client_hash, "@demo": "1" if demo else "0",
                    "@allow": "", "@events": "",
                })
            pipe.sadd(keys.TIME_SERVICES, keys.time_service_member(t.tid, "time"))
        pipe.execute()
    memory["services"] = _used_memory(r)

    # phase 3: keys as key_add.lua writes them (and `cur`, as after a first delivery)
    for chunk in _chunks(made):
        pipe = r.pipeline(transaction=False)
        for t in chunk:
            for slug, rows in t.keys.items():
                mapping: dict[str, str | bytes] = {"ids": ",".join(str(k[0]) for k in rows)}
                if slug != "usage":
                    mapping["cur"] = str(rows[0][0])
                for key_id, label, sealed, masked in rows:
                    mapping.update({
                        f"l:{key_id}": label, f"c:{key_id}": sealed, f"a:{key_id}": "1",
                        f"m:{key_id}": "", f"n:{key_id}": now, f"k:{key_id}": masked,
                    })
                pipe.hset(keys.service(t.tid, slug), mapping=mapping)
        pipe.execute()
    memory["keys"] = _used_memory(r)

    population = Population(name, [t.tid for t in made], [t.token for t in made], demo)
    report = SeedReport(
        tenants=count,
        keys=count * len(POLICIES) * KEYS_PER_SERVICE,
        seconds=time.perf_counter() - started,
        used_memory=memory,
    )
    return population, report


def subscribe(r: redis.Redis, population: Population, events: str) -> None:
    """Set every tenant's `events` field (",key.delivered," makes each delivery an XADD),
    and its copies in the service hashes, as tenant_update.lua does."""
    for i in range(0, len(population.tenants), 2000):
        pipe = r.pipeline(transaction=False)
        for tid in population.tenants[i : i + 2000]:
            pipe.hset(keys.tenant(tid), "events", events)
            for slug in POLICIES:
                pipe.hset(keys.service(tid, slug), "@events", events)
        pipe.execute()


def memory_sample(r: redis.Redis, population: Population, day: int, sample: int = 50) -> dict:
    """MEMORY USAGE of a sample of each key type, and how the hashes are encoded."""
    tids = population.tenants[:sample]
    kinds = {
        "tenant hash": [keys.tenant(t) for t in tids],
        "service hash (3 keys)": [keys.service(t, "usage") for t in tids],
        "usage hash (today)": [keys.usage(t, day) for t in tids],
        "event stream": [keys.events(t) for t in tids],
    }
    out: dict[str, dict] = {}
    for kind, names in kinds.items():
        pipe = r.pipeline(transaction=False)
        for n in names:
            pipe.memory_usage(n, samples=0)
            pipe.object("encoding", n)
            pipe.ttl(n)
        replies = pipe.execute()
        sizes = [s for s in replies[0::3] if s]
        if not sizes:
            continue
        encodings = sorted({(e.decode() if isinstance(e, bytes) else str(e))
                            for e in replies[1::3] if e})
        ttls = [t for t, s in zip(replies[2::3], replies[0::3], strict=True) if s]
        out[kind] = {
            "keys": len(sizes),
            "mean_bytes": round(sum(sizes) / len(sizes), 1),
            "encoding": ",".join(encodings),
            "expires": all(t > 0 for t in ttls),
        }
    return out
