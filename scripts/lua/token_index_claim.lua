-- token_index_claim: point an imported token's index entry at its owner, unless another owner
-- holds it. One key, its own slot (the index is global: a token names no tenant).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the owner: "<tenant>" (client token) or "<tenant>:<app id>" (app token)
-- ARGV[2] the entry the caller found stale ('' = none), whole: replaced only if it is still
--         there, so two tenants importing one token concurrently cannot both win
-- ARGV[3] ms now (the caller's clock): the entry is "<owner> <ms>", so that a claim whose
--         owner has not written its hash yet is not taken for a stale one (token_index.py)
-- returns {1, owner} the entry names ARGV[1] now; {0, owner} held by another owner: the
--         caller checks whether it is stale
local current = redis.call('GET', KEYS[1])
local owner = current and string.match(current, '^%S+')
if not current or owner == ARGV[1] or (ARGV[2] ~= '' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3])
  return {1, ARGV[1]}
end
return {0, owner}
