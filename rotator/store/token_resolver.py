"""Finding the tenant of an imported token on the request path (GET /v1/next, POST /v1/report).

Our tokens name their tenant; an imported one is looked up in the index (token_index.py), and
the answer is remembered in the process, so the usual request still costs one round trip (the
delivery script). The cache decides nothing: the script compares the token's hash with the one
stored on the tenant or app, so a revoked token is refused on the very next request even while
its owner is cached here. What is cached (tuning.py has the figures):

- owners: bounded LRU, each trusted for IMPORTED_CACHE_TTL_MS (a token given up by one tenant
  and imported by another reaches the new one within that, with no signal between processes);
- unknown tokens: for IMPORTED_UNKNOWN_TTL_MS, so a client repeating a bad token costs no round
  trip, and a random one costs one lookup and no script call.

Keys of the cache are the tokens' SHA-256, so no token is kept in clear.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import KW_ONLY, dataclass, field

from rotator.domain import tokens
from rotator.domain.clock import Clock
from rotator.domain.tokens import ParsedToken
from rotator.store.scripts import token_index as scripts
from rotator.store.scripts.call import ScriptClient, run
from rotator.tuning import IMPORTED_CACHE_ENTRIES, IMPORTED_CACHE_TTL_MS, IMPORTED_UNKNOWN_TTL_MS


def _parsed(owner: str, token_hash: str) -> ParsedToken:
    tenant, _, app_id = owner.partition(":")
    return ParsedToken(tokens.APP if app_id else tokens.CLIENT, tenant, app_id, token_hash)


@dataclass(slots=True, eq=False)
class TokenResolver:
    """One per API process, on the hot path's client."""

    client: ScriptClient
    clock: Clock
    _: KW_ONLY
    max_entries: int = IMPORTED_CACHE_ENTRIES
    ttl_ms: int = IMPORTED_CACHE_TTL_MS
    unknown_ttl_ms: int = IMPORTED_UNKNOWN_TTL_MS
    _cache: OrderedDict[str, tuple[int, ParsedToken | None]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    """sha256 hex -> (valid until ms, the token parsed | None for unknown), LRU order."""
    lookups: int = field(default=0, init=False)
    """Round trips spent on the index (observability; tests count them)."""

    async def resolve(self, token: str) -> ParsedToken | None:
        """The imported `token` as a ParsedToken (its tenant and app, the hash the script
        compares), or None when it is not one (the caller answers `403 invalid token`).
        Call it only for a token `tokens.parse` refused: a string of our form is ours."""
        if not tokens.could_be_imported(token):
            return None
        token_hash = tokens.hash_imported(token)
        now_ms = self.clock()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[0] > now_ms:
            self._cache.move_to_end(token_hash)
            return cached[1]
        self.lookups += 1
        owner = await run(self.client, scripts.lookup(token_hash))
        parsed = _parsed(owner, token_hash) if owner else None
        if parsed is not None and not tokens.valid_tenant_id(parsed.tenant):
            parsed = None  # an entry this code never writes: refuse rather than guess
        ttl_ms = self.ttl_ms if parsed else self.unknown_ttl_ms
        self._cache[token_hash] = (now_ms + ttl_ms, parsed)
        self._cache.move_to_end(token_hash)
        if len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return parsed
