-- token_index_swap: replace an imported token's index entry only if it is still exactly the
-- one the caller knows: a claim confirmed ("<owner> <ms> <nonce>" -> "<owner>"), a release's
-- mark dropped (-> nothing), a takeover undone (our claim -> the entry it replaced), a
-- deleting tenant's confirmed entry removed ("<owner>" -> nothing). Another value is another
-- caller's, and left alone (store/token_index.py).
-- KEYS[1] kr:tok:<sha256 hex of the whole token>
-- ARGV[1] the entry expected; ARGV[2] its replacement ('' = delete the entry)
-- returns 1 replaced, 0 the entry was something else (left alone)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
