-- token_index_confirm: after the owner's hash is written, its claim becomes a plain entry
-- ("<owner> <ms>" -> "<owner>"): no longer an import in progress, and the form a release
-- removes.
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the entry the claim wrote; ARGV[2] the owner
-- returns 1 the entry names the owner; 0 it names another (taken over: the claim waited
--         longer than IMPORT_CLAIM_PENDING_MS between its writes)
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] or not current then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return string.match(current, '^%S+') == ARGV[2] and 1 or 0
