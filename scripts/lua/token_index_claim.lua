-- token_index_claim: point an imported token's index entry at its owner, unless another owner
-- holds it or is importing it. One key, its own slot (the index is global: a token names no
-- tenant). An entry is "<owner> <ms> <nonce>" from this claim until the owner, its hash
-- written, confirms it (token_index_swap.lua), then "<owner>" (store/token_index.py).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the owner: "<tenant>" (client token) or "<tenant>:<app id>" (app token)
-- ARGV[2] the entry the caller found stale ('' = none), whole: replaced only if it is still
--         there, so two tenants importing one token concurrently cannot both win, and not
--         while it is a claim younger than ARGV[3] ms: an import between its two writes,
--         whose owner does not hold the token yet
-- ARGV[3] that window in ms (IMPORT_CLAIM_PENDING_MS)
-- ARGV[4] now in ms ('' = this node's clock, as in production: one clock judges the claims)
-- ARGV[5] a nonce: two claims of one owner in one ms are still two entries
-- returns {1, the entry written}; {0, owner} held by another owner: the caller checks
--         whether it is stale
local now = clock_ms(ARGV[4])
local current = redis.call('GET', KEYS[1])
local written = ARGV[1] .. ' ' .. now .. ' ' .. ARGV[5]
if not current then
  redis.call('SET', KEYS[1], written)
  return {1, written}
end
local owner = string.match(current, '^%S+')
local claimed = tonumber(string.match(current, '^%S+ (%d+)'))
local pending = claimed ~= nil and math.abs(now - claimed) < tonumber(ARGV[3])
if owner == ARGV[1] or (ARGV[2] ~= '' and current == ARGV[2] and not pending) then
  redis.call('SET', KEYS[1], written)
  return {1, written}
end
return {0, owner}
