"""TokenResolver's cache (rotator/store/token_resolver.py), against a stub index: bounded,
owners and unknown tokens each trusted for their time, malformed tokens never looked up."""

from __future__ import annotations

from rotator.domain import tokens
from rotator.domain.clock import FakeClock
from rotator.store.token_resolver import TokenResolver

T = "0123456789abcdef"


class Index:
    """Stands for the store: token hash -> owner; counts the lookups."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = {tokens.hash_imported(t): o for t, o in owners.items()}
        self.calls = 0

    async def evalsha(self, script, keys, args):
        self.calls += 1
        owner = self.owners.get(keys[0].removeprefix("kr:tok:"))
        return owner.encode() if owner else None


def token(n: int) -> str:
    return f"hosted-token-number-{n:06d}"


async def test_owners_and_unknowns_are_cached_for_their_time():
    index = Index({token(1): T, token(2): f"{T}:7"})
    clock = FakeClock(1_000_000)
    resolver = TokenResolver(index, clock, ttl_ms=5_000, unknown_ttl_ms=1_000)
    client = await resolver.resolve(token(1))
    app = await resolver.resolve(token(2))
    assert (client.kind, client.tenant, client.app) == (tokens.CLIENT, T, "")
    assert (app.kind, app.tenant, app.app) == (tokens.APP, T, "7")
    assert client.secret_hash == tokens.hash_imported(token(1))
    assert await resolver.resolve(token(3)) is None
    assert index.calls == 3
    for t in (token(1), token(2), token(3)):
        await resolver.resolve(t)
    assert index.calls == 3
    clock.advance(ms=1_000)  # the unknown one is asked again, the owners are not yet
    assert await resolver.resolve(token(3)) is None and index.calls == 4
    await resolver.resolve(token(1))
    assert index.calls == 4
    clock.advance(ms=4_000)
    await resolver.resolve(token(1))
    assert index.calls == 5


async def test_malformed_tokens_cost_no_lookup():
    index = Index({})
    resolver = TokenResolver(index, FakeClock(0))
    for bad in ("", "short", "x" * 201, "with space but long enough", "é" * 25):
        assert await resolver.resolve(bad) is None
    assert index.calls == 0


async def test_the_cache_is_bounded_least_recently_used_first():
    index = Index({token(n): T for n in range(10)})
    resolver = TokenResolver(index, FakeClock(0), max_entries=3)
    for n in range(3):
        await resolver.resolve(token(n))
    await resolver.resolve(token(0))  # used again: now the most recent
    await resolver.resolve(token(3))  # evicts token(1), the least recently used
    assert index.calls == 4
    await resolver.resolve(token(0))
    assert index.calls == 4
    await resolver.resolve(token(1))
    assert index.calls == 5


async def test_an_entry_this_code_never_writes_is_refused():
    resolver = TokenResolver(Index({token(1): "NOT A TENANT"}), FakeClock(0))
    assert await resolver.resolve(token(1)) is None
