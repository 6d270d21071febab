-- token_index_claim: point an imported token's index entry at its owner, unless another owner
-- holds it. One key, its own slot (the index is global: a token names no tenant).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the owner: "<tenant>" (client token) or "<tenant>:<app id>" (app token)
-- ARGV[2] the entry the caller found stale ('' = none): replaced only if it is still there, so
--         two tenants importing one token concurrently cannot both win
-- returns 1 the entry is ARGV[1] now (or already was); 0 held by another owner: the current
--         entry is in the reply's second element, for the caller to check whether it is stale
local current = redis.call('GET', KEYS[1])
if not current or current == ARGV[1] or (ARGV[2] ~= '' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return {1, ARGV[1]}
end
return {0, current}
